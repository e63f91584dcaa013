"""ImageFolder datasets from a directory or a zip: ``[split/]<class>/<image>``.

If the root (or the zip) has ``train/`` and ``test/`` (or ``val/``) folders they are the
splits; otherwise every image is in one pool that is split with a seeded, stratified
``test_fraction``. Images are decoded once with PIL at prepare time, never in training.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from csl.data.dataset import RawDataset, Split
from csl.errors import DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


class _Source:
    """Uniform listing/reading over a directory or a zip file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f"{path} is not a readable zip file ({e}); re-download it") from None
            self.files = [PurePosixPath(n) for n in self.zip.namelist() if not n.endswith("/")]
        elif path.is_dir():
            self.files = [PurePosixPath(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file()]
        else:
            raise DataError(f"ImageFolder source {path} does not exist; give a directory or a .zip")
        self.files = sorted(f for f in self.files if f.suffix.lower() in EXTENSIONS)
        # a zip often wraps everything in one top folder: strip it
        tops = {f.parts[0] for f in self.files if len(f.parts) > 2}
        self.prefix = len(tops) == 1 and all(len(f.parts) > 2 for f in self.files) and not (
            tops & {"train", "test", "val"}
        )

    def rel(self, f: PurePosixPath) -> tuple[str, ...]:
        return f.parts[1:] if self.prefix else f.parts

    def read(self, f: PurePosixPath) -> bytes:
        if self.zip is not None:
            try:
                return self.zip.read(str(f))
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise DataError(f"{self.path}: cannot read member {f} ({e}); the zip is corrupt") from None
        return (self.path / f).read_bytes()


def _decode(src: _Source, files: list[PurePosixPath], mode: str, size: tuple[int, int] | None, desc: str) -> np.ndarray:
    out: np.ndarray | None = None
    for i, f in enumerate(tqdm(files, desc=desc, unit="img", mininterval=2.0)):
        try:
            img = Image.open(io.BytesIO(src.read(f))).convert(mode)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{src.path}: cannot decode image {f} ({e}); the file is corrupt") from None
        if size is None:
            size = img.size
        if img.size != size:
            img = img.resize(size, Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        if out is None:
            out = np.empty((len(files), *arr.shape), dtype=np.uint8)
        out[i] = arr
    assert out is not None
    return out


def load(path: Path, name: str, test_fraction: float, seed: int, image_size: int | None) -> RawDataset:
    src = _Source(path)
    if not src.files:
        raise DataError(f"{path} holds no images ({', '.join(sorted(EXTENSIONS))}) in <class>/ folders")
    by_split: dict[str, list[tuple[str, PurePosixPath]]] = {}
    splits_present = {src.rel(f)[0] for f in src.files if len(src.rel(f)) == 3}
    has_splits = "train" in splits_present and bool(splits_present & {"test", "val"})
    for f in src.files:
        parts = src.rel(f)
        if has_splits and len(parts) == 3 and parts[0] in ("train", "test", "val"):
            by_split.setdefault("train" if parts[0] == "train" else "test", []).append((parts[1], f))
        elif not has_splits and len(parts) == 2:
            by_split.setdefault("all", []).append((parts[0], f))
    classes = sorted({c for items in by_split.values() for c, _ in items})
    if len(classes) < 2:
        raise DataError(f"{path}: found {len(classes)} class folder(s); an ImageFolder needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    # colour mode and size from the first image
    first = Image.open(io.BytesIO(src.read(src.files[0])))
    mode = "L" if first.mode in ("L", "1", "I;16") else "RGB"
    size = (image_size, image_size) if image_size else first.size
    if not has_splits:
        items = by_split["all"]
        labels = np.array([index[c] for c, _ in items])
        rng = np.random.default_rng(seed)
        test_mask = np.zeros(len(items), dtype=bool)
        for k in range(len(classes)):  # stratified: test_fraction of each class
            idx = np.flatnonzero(labels == k)
            rng.shuffle(idx)
            test_mask[idx[: int(round(test_fraction * len(idx)))]] = True
        by_split = {
            "train": [it for it, m in zip(items, test_mask) if not m],
            "test": [it for it, m in zip(items, test_mask) if m],
        }
    result = {}
    for split in ("train", "test"):
        items = by_split.get(split, [])
        if not items:
            raise DataError(f"{path}: the {split} split is empty")
        images = _decode(src, [f for _, f in items], mode, size, f"decode {split}")
        result[split] = Split(images, np.array([index[c] for c, _ in items], dtype=np.int64))
    return RawDataset(name, str(path), classes, result["train"], result["test"])
