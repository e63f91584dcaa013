"""CIFAR-10 (Krizhevsky, 2009): 50k/10k 32x32 RGB, 10 classes.

Sources: torchvision's format (the ``cifar-10-batches-py`` pickles), or an ImageFolder
directory or zip such as the JPEG release (``train/<class>/*.jpg``, ``test/<class>/*.jpg``).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from csl.data import imagefolder
from csl.data.dataset import RawDataset, Split
from csl.errors import DataError

BATCHES = "cifar-10-batches-py"


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e} (corrupt or truncated; re-download it)") from None


def _load_pickles(d: Path) -> RawDataset:
    names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in names + ["test_batch", "batches.meta"] if not (d / n).is_file()]
    if missing:
        raise DataError(f"{d} is missing CIFAR-10 files: {', '.join(missing)}")

    def split(files: list[str]) -> Split:
        imgs, labels = [], []
        for n in files:
            b = _unpickle(d / n)
            data = np.asarray(b["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise DataError(f"{d / n}: unexpected data shape {data.shape}; the file is corrupt")
            imgs.append(data.reshape(-1, 3, 32, 32))
            labels.extend(b["labels"])
        return Split(np.concatenate(imgs), np.asarray(labels, dtype=np.int64))

    classes = list(_unpickle(d / "batches.meta")["label_names"])
    return RawDataset("cifar10", str(d), classes, split(names), split(["test_batch"]))


def _download(root: Path) -> Path:
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
    except Exception as e:
        raise DataError(f"downloading CIFAR-10 failed ({type(e).__name__}: {e}); set data.source to "
                        "a cifar-10-batches-py directory or an ImageFolder directory/zip") from None
    return root / BATCHES


def load(source: str, download: bool, download_root: Path, seed: int) -> RawDataset:
    if source == "auto":
        d = download_root / BATCHES
        if not d.is_dir():
            if not download:
                raise DataError(
                    "CIFAR-10 not found. Set data.source to one of:\n"
                    "  - a directory holding cifar-10-batches-py (torchvision's format)\n"
                    "  - an ImageFolder directory or zip with train/<class>/ and test/<class>/\n"
                    "    (e.g. cifar10-jpeg.zip)\n"
                    "or, with internet access, set data.download: true"
                )
            d = _download(download_root)
        return _load_pickles(d)
    path = Path(source)
    if path.is_dir() and (path / BATCHES).is_dir():
        return _load_pickles(path / BATCHES)
    if path.is_dir() and (path / "data_batch_1").is_file():
        return _load_pickles(path)
    if not path.exists():
        raise DataError(f"data.source {source!r} does not exist")
    raw = imagefolder.load(path, "cifar10", test_fraction=0.0, seed=seed, image_size=32)
    return raw
