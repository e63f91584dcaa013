"""The images ``csl embed`` reads: every image file of a directory or a zip (recursively, in sorted
path order), or every sample of a shard set (``index.json`` + tar shards, local or ``s3://``).
Each image is named by its path inside the input (``train/cat/0001.jpg``; for shards
``shard-000003.tar#17``) so that an embedding can always be traced back to its image."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

import numpy as np

from csl.errors import DataError


@dataclass
class ImageInput:
    """``names`` in reading order; :meth:`read(start, stop)` the encoded bytes of that range."""

    location: str
    kind: str  # "directory" | "zip" | "shards"
    names: list[str]
    _reader: object

    def listing_sha256(self) -> str:
        """Identifies the input (its kind and names, in order): a resumed run must read the same images."""
        h = hashlib.sha256(self.kind.encode())
        for n in self.names:
            h.update(n.encode() + b"\0")
        return h.hexdigest()

    def read(self, start: int, stop: int) -> Iterator[bytes]:
        if self.kind == "shards":
            yield from _read_shards(self.location, self._reader, start, stop)  # type: ignore[arg-type]
            return
        from csl.data.imagefolder import _Source

        src = self._reader
        assert isinstance(src, _Source)
        for name in self.names[start:stop]:
            yield src.read(PurePosixPath(name))


def open_input(location: str) -> ImageInput:
    """Refuses a missing location, a corrupt zip and an input without images."""
    if location.startswith("s3://") or (Path(location) / "index.json").is_file():
        from csl.data.shards import read_index

        index = read_index(location)
        names = [f"{s['name']}#{i}" for s in index["shards"] for i in range(int(s["samples"]))]
        inp = ImageInput(location, "shards", names, index)
    else:
        from csl.data.imagefolder import EXTENSIONS, _Source

        path = Path(location)
        if not path.exists():
            raise DataError(f"{location} does not exist; give a directory of images, a .zip, or a shard directory "
                            "(index.json)")
        src = _Source(path)
        names = [str(f) for f in src.files]
        inp = ImageInput(location, "zip" if src.zip is not None else "directory", names, src)
        if not names:
            raise DataError(f"{location} holds no images ({', '.join(sorted(EXTENSIONS))})")
    if not inp.names:
        raise DataError(f"{location} holds no images")
    return inp


def _read_shards(root: str, index: dict, start: int, stop: int) -> Iterator[bytes]:
    from csl.data.shards import iter_shard

    offset = 0
    for shard in index["shards"]:
        n = int(shard["samples"])
        if offset + n <= start:
            offset += n
            continue
        if offset >= stop:
            return
        for i, (jpeg, _) in enumerate(iter_shard(f"{root.rstrip('/')}/{shard['name']}", n)):
            if start <= offset + i < stop:
                yield jpeg
        offset += n


def decode(data: bytes, name: str) -> np.ndarray:
    """One image as it is -> ``uint8 (C, H, W)``: greyscale modes give 1 channel, every other mode RGB
    (any other conversion is adaptation, done by the caller); a corrupt file names itself."""
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        mode = "L" if img.mode in ("L", "1", "I;16", "I", "F", "LA") else "RGB"
        a = np.asarray(img.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot decode image {name} ({e}); the file is corrupt") from None
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
