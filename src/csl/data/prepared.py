"""The prepared dataset on disk: what ``csl prepare`` writes and every later stage reads.

A directory with ``train_images.npy`` ``(N, C, H, W)`` uint8, ``train_labels.npy`` int64,
the same for ``test_``, and ``meta.json`` (name, source, classes, shape, per-channel
mean/std of the training images in [0, 1], sizes, and a sha256 content hash). DVC tracks
the directory; it is written atomically.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from csl.data.dataset import RawDataset, Split
from csl.errors import DataError
from csl.io import atomic_dir

FORMAT_VERSION = 1
FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy", "meta.json")


@dataclass
class StreamSplit:
    """A split that is streamed from shards (``csl.data.shards``), never held in memory."""

    root: str
    num: int


@dataclass
class Prepared:
    meta: dict[str, Any]
    train: Split | StreamSplit
    test: Split | StreamSplit

    @property
    def streamed(self) -> bool:
        return self.meta.get("format") == "shards"

    @property
    def channels(self) -> int:
        return int(self.meta["shape"][0])

    @property
    def image_size(self) -> int:
        return int(self.meta["shape"][1])


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 ``(N, C, H, W)`` images scaled to [0, 1]."""
    c = images.shape[1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    for i in range(0, len(images), chunk):
        x = images[i : i + chunk].astype(np.float64) / 255.0
        s += x.sum(axis=(0, 2, 3))
        s2 += (x * x).sum(axis=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(s2 / count - mean**2, 1e-12))
    return mean.tolist(), std.tolist()


def content_hash(raw: RawDataset) -> str:
    h = hashlib.sha256()
    for split in (raw.train, raw.test):
        h.update(str(split.images.shape).encode())
        h.update(np.ascontiguousarray(split.images).data)
        h.update(np.ascontiguousarray(split.labels).data)
    h.update(json.dumps(raw.classes).encode())
    return h.hexdigest()


def write(raw: RawDataset, out: Path) -> dict[str, Any]:
    mean, std = channel_stats(raw.train.images)
    meta = {
        "format_version": FORMAT_VERSION,
        "name": raw.name,
        "source": raw.source,
        "classes": raw.classes,
        "shape": list(raw.train.images.shape[1:]),
        "num_train": int(len(raw.train.labels)),
        "num_test": int(len(raw.test.labels)),
        "mean": mean,
        "std": std,
        "content_hash": content_hash(raw),
    }
    with atomic_dir(out) as tmp:
        for split_name, split in (("train", raw.train), ("test", raw.test)):
            np.save(tmp / f"{split_name}_images.npy", split.images)
            np.save(tmp / f"{split_name}_labels.npy", split.labels)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def read_meta(path: Path) -> dict[str, Any]:
    """Only ``meta.json`` of a prepared dataset (no arrays are read)."""
    if not (path / "meta.json").is_file():
        raise DataError(f"no prepared dataset at {path}: run 'csl prepare' (or 'dvc repro prepare') first")
    try:
        return json.loads((path / "meta.json").read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path / 'meta.json'} is corrupt ({e}); run 'csl prepare' again") from None


def _read_collection_meta(source: str) -> dict[str, Any] | None:
    """``meta.json`` beside the shards of a collection (``csl shard --labels none|folders``), or None."""
    url = f"{source.rstrip('/')}/meta.json"
    if url.startswith("s3://"):
        from csl.io import s3

        return dict(json.loads(s3.read_bytes(url))) if s3.exists(url) else None
    return dict(json.loads(Path(url).read_text())) if Path(url).is_file() else None


def write_shards_meta(name: str, source: str, image_size: int, out: Path, stats_samples: int = 4096,
                      labels: str | None = None) -> dict[str, Any]:
    """The prepared dataset of a sharded source (``source``/train and /test, written by
    ``csl shard``): only ``meta.json`` (classes, sizes, the per-channel statistics of the first
    ``stats_samples`` training images, a content hash of both shard indexes). The images stay
    in the shards and are streamed by every stage."""
    from csl.data import shards

    roots = {s: f"{source.rstrip('/')}/{s}" for s in ("train", "test")}
    index = {s: shards.read_index(r) for s, r in roots.items()}
    if labels != "none" and not index["train"].get("labelled", True):
        raise DataError(f"{source}: the shards have no labels; set data.labels: none (label-free protocols only)")
    written = _read_collection_meta(source)
    if written is not None:  # csl shard --labels none|folders wrote it: native-size images, exact statistics
        meta = {**written, "source": source, "shards": roots,
                "shape": [written["shape"][0], image_size, image_size]}
        with atomic_dir(out) as tmp:
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return meta
    if index["train"]["classes"] != index["test"]["classes"]:
        raise DataError(f"{source}: train and test shards have different classes; shard both from one folder")
    n = min(stats_samples, int(index["train"]["num_samples"]))
    sample = next(iter(shards.ShardStream(roots["train"], n, image_size, _channels(roots["train"], index["train"]),
                                          buffer=1, drop_last=False)))[0]
    mean, std = channel_stats(sample.numpy())
    h = hashlib.sha256(json.dumps({s: index[s] for s in roots}, sort_keys=True).encode())
    meta = {
        "format_version": FORMAT_VERSION, "format": "shards", "name": name, "source": source,
        "classes": index["train"]["classes"], "shape": [int(sample.shape[1]), image_size, image_size],
        "num_train": int(index["train"]["num_samples"]), "num_test": int(index["test"]["num_samples"]),
        "mean": mean, "std": std, "content_hash": h.hexdigest(), "shards": roots,
    }
    with atomic_dir(out) as tmp:
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _channels(root: str, index: dict[str, Any]) -> int:
    """1 for grayscale JPEGs, else 3 (from the first image of the first shard)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from csl.data import shards

    data, _ = next(shards.iter_shard(f"{root.rstrip('/')}/{index['shards'][0]['name']}"))
    img = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    return 1 if img.shape[0] == 1 else 3


def shard_root(prepared: Path, root: str) -> str:
    """A split's shard location: absolute (a directory or s3:// prefix given to ``csl shard``) or,
    for the shards ``prepare`` writes inside the prepared directory, relative to it."""
    return root if root.startswith(("/", "s3://")) else str(prepared / root)


def load(path: Path) -> Prepared:
    """Load a prepared dataset; anything missing or inconsistent is a :class:`DataError`."""
    meta = read_meta(path)
    if meta.get("format") == "shards":
        roots = {s: shard_root(path, meta["shards"][s]) for s in ("train", "test")}
        return Prepared(meta, StreamSplit(roots["train"], meta["num_train"]),
                        StreamSplit(roots["test"], meta["num_test"]))
    splits = {}
    for name in ("train", "test"):
        arrays = []
        for kind in ("images", "labels"):
            f = path / f"{name}_{kind}.npy"
            try:
                arrays.append(np.load(f, mmap_mode=None, allow_pickle=False))
            except (OSError, ValueError, EOFError) as e:
                raise DataError(f"{f} is missing or corrupt ({e}); run 'csl prepare' again") from None
        images, labels = arrays
        expected = (meta[f"num_{name}"], *meta["shape"])
        if images.shape != expected or images.dtype != np.uint8 or labels.shape != (expected[0],):
            raise DataError(f"{path}: {name} arrays {images.shape}/{labels.shape} do not match meta.json "
                            f"{expected}; run 'csl prepare' again")
        splits[name] = Split(images, labels.astype(np.int64))
    return Prepared(meta, splits["train"], splits["test"])
