"""A collection of image files without labels: a directory or zip (read recursively) or an
``s3://`` prefix.

Every file with an image extension (:data:`csl.data.image_file.EXTENSIONS`, any case) is a
sample, at any depth; hidden files and folders (``.name``) and other extensions are ignored
and counted. Folder names are never labels unless ``labels: folders`` says so; then the
first folder under the root is the class (``<class>/.../<image>``) and a file outside a
folder is an error.

The held-out split is a function of each file's relative path alone (its sha1, compared with
``test_fraction``), not of the listing: when the collection grows, every image already in
it keeps its split, so the held-out images of last week's version are still held out.

:func:`fingerprint` is a cheap digest of what the source holds now (paths, sizes and modification
times; an S3 prefix's keys, sizes and ETags); ``prepare`` records it, and ``csl run`` prepares
again when it changed: DVC cannot see into a folder or bucket that is not one of its outputs.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from csl.data.image_file import EXTENSIONS
from csl.errors import DataError


@dataclass(frozen=True)
class Item:
    """One file of the collection: its path relative to the root, and its class (or None)."""

    path: str
    label: str | None = None


@dataclass
class Listing:
    root: str
    items: list[Item]
    ignored: int  # files without an image extension, and hidden files
    read: Callable[[str], bytes]  # relative path -> the file's bytes


def held_out(path: str, test_fraction: float) -> bool:
    """Whether ``path`` belongs to the held-out split: the first 8 bytes of its sha1 as a number
    in [0, 1) below ``test_fraction`` (stable across listings and versions)."""
    h = int.from_bytes(hashlib.sha1(path.encode("utf-8")).digest()[:8], "big")
    return h / 2.0**64 < test_fraction


def _hidden(rel: PurePosixPath) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in rel.parts)


def _split_names(names: list[str]) -> tuple[list[str], int]:
    keep = [n for n in names if not _hidden(PurePosixPath(n)) and PurePosixPath(n).suffix.lower() in EXTENSIONS]
    return sorted(keep), len(names) - len(keep)


def _read_file(root: Path) -> Callable[[str], bytes]:
    def read(rel: str) -> bytes:
        try:
            return (root / rel).read_bytes()
        except OSError as e:
            raise DataError(f"{root / rel}: cannot be read ({e.strerror or e}); fix its permissions or remove "
                            "it") from None
    return read


def _list_dir(root: Path) -> tuple[list[str], int, Callable[[str], bytes]]:
    names = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()]
    keep, ignored = _split_names(names)
    return keep, ignored, _read_file(root)


def _list_zip(path: Path) -> tuple[list[str], int, Callable[[str], bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable zip file ({e}); copy or download it again") from None
    keep, ignored = _split_names([n for n in zf.namelist() if not n.endswith("/")])

    def read(rel: str) -> bytes:
        try:
            return zf.read(rel)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
            raise DataError(f"{path}: cannot read member {rel} ({e}); the zip is corrupt") from None
    return keep, ignored, read


def _list_s3(uri: str) -> tuple[list[str], int, Callable[[str], bytes]]:
    from csl.io import s3

    base = s3.S3Path.parse(uri)
    keys = s3.list_keys(base)
    prefix = f"{base.key}/" if base.key else ""
    keep, ignored = _split_names([k[len(prefix):] for k in keys])
    return keep, ignored, lambda rel: s3.read_bytes(base / rel)


def list_collection(source: str, labels: str = "none") -> Listing:
    """The image files of ``source`` (a directory, a ``.zip`` or ``s3://bucket/prefix``), sorted by
    path; ``labels: folders`` takes each file's first folder as its class. An empty collection
    is a :class:`DataError` naming what was found."""
    if source.startswith("s3://"):
        names, ignored, read = _list_s3(source)
    else:
        path = Path(source)
        if path.is_dir():
            names, ignored, read = _list_dir(path)
        elif path.is_file():
            names, ignored, read = _list_zip(path)
        else:
            raise DataError(f"image collection {source} does not exist; set data.source to a directory, a .zip "
                            "or an s3:// prefix of images")
    if not names:
        raise DataError(f"{source} holds no images (looked for {', '.join(sorted(EXTENSIONS))} at any depth; "
                        f"{ignored} other file(s) ignored); point data.source at the folder of images")
    if labels == "none":
        items = [Item(n) for n in names]
    else:
        loose = [n for n in names if len(PurePosixPath(n).parts) < 2]
        if loose:
            raise DataError(f"{source}: labels: folders takes each image's first folder as its class, but "
                            f"{loose[0]} (and {len(loose) - 1} more) is in no folder; move it into a class "
                            "folder, or use labels: none")
        items = [Item(n, PurePosixPath(n).parts[0]) for n in names]
        classes = {it.label for it in items}
        if len(classes) < 2:
            raise DataError(f"{source}: labels: folders found {len(classes)} class folder(s); labels need at "
                            "least 2 (or use labels: none)")
    return Listing(source, items, ignored, read)


def fingerprint(source: str) -> str:
    """sha256 of the listing of ``source`` as it is now: every file's relative path, size and
    modification time (a zip: its own size and time; an S3 prefix: keys, sizes and ETags)."""
    h = hashlib.sha256()
    if source.startswith("s3://"):
        from csl.io import s3

        for key, size, etag in s3.list_objects(s3.S3Path.parse(source)):
            h.update(f"{key}\0{size}\0{etag}\n".encode())
        return h.hexdigest()
    path = Path(source)
    if path.is_file():
        st = path.stat()
        return hashlib.sha256(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    if not path.is_dir():
        return ""
    for p in sorted(path.rglob("*")):
        if p.is_file() or p.is_symlink():
            st = p.lstat()
            h.update(f"{p.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
