"""Fashion-MNIST (Xiao et al., 2017, arXiv 1708.07747): 60k/10k 28x28 grayscale, 10 classes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from csl.data.dataset import RawDataset, Split
from csl.data.idx import read_idx
from csl.errors import DataError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
ENV_VAR = "CSL_FASHION_MNIST_DIR"


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_files(directory: Path) -> bool:
    return all(_find(directory, stem) for stem in FILES.values())


def candidate_dirs(download_root: Path) -> list[Path]:
    """Where Fashion-MNIST is looked for when ``source: auto``, in order."""
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]))
    dirs += [DEBIAN_DIR, download_root / "FashionMNIST" / "raw"]
    return dirs


def missing_message(searched: list[Path]) -> str:
    where = "\n".join(f"  - {d}" for d in searched)
    return (
        "Fashion-MNIST was not found. Searched:\n"
        f"{where}\n"
        "Provide it in one of these ways:\n"
        "  1. Debian/Ubuntu (offline-capable): sudo apt-get install dataset-fashion-mnist\n"
        f"  2. a directory holding the four IDX files (.gz or not): export {ENV_VAR}=/path/to/dir\n"
        "     or set data.source: /path/to/dir in params.yaml\n"
        "  3. with internet access: set data.download: true (torchvision downloads it)"
    )


def locate(source: str, download: bool, download_root: Path) -> Path:
    """The directory with the IDX files: ``source`` itself, or the first candidate found."""
    if source != "auto":
        d = Path(source)
        if not d.is_dir() or not _has_files(d):
            missing = [s for s in FILES.values() if not (d.is_dir() and _find(d, s))]
            raise DataError(
                f"data.source {source!r} does not hold the Fashion-MNIST IDX files "
                f"(missing: {', '.join(missing)}).\n" + missing_message([d])
            )
        return d
    searched = candidate_dirs(download_root)
    for d in searched:
        if d.is_dir() and _has_files(d):
            return d
    if download:
        return _download(download_root)
    raise DataError(missing_message(searched))


def _download(root: Path) -> Path:
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as e:  # network errors come in many types
        raise DataError(
            f"downloading Fashion-MNIST failed ({type(e).__name__}: {e}).\n"
            + missing_message(candidate_dirs(root))
        ) from None
    return root / "FashionMNIST" / "raw"


def load(directory: Path) -> RawDataset:
    arrays = {}
    for key, stem in FILES.items():
        path = _find(directory, stem)
        assert path is not None
        arrays[key] = read_idx(path)
    splits = {}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match"
            )
        if labels.max(initial=0) >= len(CLASSES):
            raise DataError(f"{directory}: {split} labels out of range 0-9; the file is corrupt")
        splits[split] = Split(np.ascontiguousarray(images[:, None]), labels.astype(np.int64))
    return RawDataset("fashion-mnist", str(directory), CLASSES, splits["train"], splits["test"])
