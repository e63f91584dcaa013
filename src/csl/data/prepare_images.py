"""Prepare an image collection (``data.dataset: images``): native-size shards + ``meta.json``.

One pass over the collection (:mod:`csl.data.collection`): each file is decoded and
normalised (:mod:`csl.data.image_file`), stored in the train or held-out shards under the
prepared directory (its original JPEG bytes, or a lossless PNG), and counted into exact
per-channel statistics over every training pixel. The directory is written atomically, so a
failure leaves the previous prepared dataset (or none), never half of one.

``meta.json`` records what every later stage needs: ``format: shards``, ``native: true``,
the shard folders (relative to the prepared directory, so DVC can move it), ``shape``
``[C, image_size, image_size]`` (``C`` decided by ``color``), ``classes`` (empty without
labels), ``labelled``, the decided ``color``, image side statistics, the skipped and ignored
files, and a content hash of every stored sample.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from csl.data.collection import fingerprint, held_out, list_collection
from csl.data.config import DataConfig
from csl.data.image_file import ImageFileError, decode, encode, pixels
from csl.data.shards import ShardWriter
from csl.errors import DataError
from csl.io import atomic_dir

FORMAT_VERSION = 1
SKIPPED_LISTED = 50  # how many skipped files meta.json names (all are counted)


class _Stats:
    """Exact per-channel sums of pixel values and of their squares (integers), grayscale images kept
    apart (in an RGB collection their one channel counts for all three)."""

    def __init__(self) -> None:
        self.rgb = np.zeros((2, 3), dtype=np.uint64)
        self.gray = np.zeros(2, dtype=np.uint64)
        self.n_rgb = 0
        self.n_gray = 0

    def add(self, x: np.ndarray) -> None:  # x: uint8 (C, H, W)
        v = x.reshape(x.shape[0], -1)
        sums = v.sum(1, dtype=np.uint64)
        squares = np.einsum("ij,ij->i", v.astype(np.uint32), v.astype(np.uint32), dtype=np.uint64)
        if x.shape[0] == 1:
            self.gray += np.array([sums[0], squares[0]], dtype=np.uint64)
            self.n_gray += v.shape[1]
        else:
            self.rgb += np.stack([sums, squares])
            self.n_rgb += v.shape[1]

    def mean_std(self, channels: int) -> tuple[list[float], list[float]]:
        """Mean and std of the pixels scaled to [0, 1], per channel."""
        n = self.n_rgb + self.n_gray
        rgb, gray = self.rgb.astype(np.float64), self.gray.astype(np.float64)
        if channels == 1:
            s, s2 = np.array([gray[0] + rgb[0].mean()]), np.array([gray[1] + rgb[1].mean()])
        else:
            s, s2 = rgb[0] + gray[0], rgb[1] + gray[1]
        mean, sq = s / (255.0 * n), s2 / (255.0 ** 2 * n)
        std = np.sqrt(np.maximum(sq - mean**2, 1e-12))
        return mean.tolist(), std.tolist()


def _subset(paths: list[str], n: int | None) -> set[str]:
    """A stable subset of ``n`` paths (those whose sha1 sorts first); all when ``n`` is None."""
    if n is None or n >= len(paths):
        return set(paths)
    return set(sorted(paths, key=lambda p: hashlib.sha1(p.encode()).hexdigest())[:n])


def prepare_images(cfg: DataConfig, source: str, out: Path, name: str) -> dict[str, Any]:
    """``source`` -> ``out`` (the prepared directory); returns its metadata."""
    seen = fingerprint(source)  # before reading: a file added meanwhile makes the next run prepare again
    listing = list_collection(source, cfg.labels or "none")
    classes = sorted({it.label for it in listing.items if it.label is not None})
    index = {c: i for i, c in enumerate(classes)}
    split = {it.path: "test" if held_out(it.path, cfg.test_fraction) else "train" for it in listing.items}
    keep = (_subset([p for p, s in split.items() if s == "train"], cfg.max_train)
            | _subset([p for p, s in split.items() if s == "test"], cfg.max_test))
    mode = "L" if cfg.color == "gray" else None  # rgb/auto: each file as it is, RGB decided below
    stats = _Stats()
    sides: list[int] = []
    skipped: list[dict[str, str]] = []
    gray_files = 0
    stored = {"jpeg_kept": 0, "png": 0}
    h = hashlib.sha256()
    with atomic_dir(out) as tmp:
        writers = {s: ShardWriter(tmp / s, classes, cfg.shard_size, s, labelled=bool(classes))
                   for s in ("train", "test")}
        for it in tqdm([it for it in listing.items if it.path in keep], desc="prepare images", unit="img",
                       mininterval=2.0):
            where = f"{source.rstrip('/')}/{it.path}"
            try:
                raw = listing.read(it.path)
                d = decode(raw, mode, cfg.min_side, cfg.max_side, cfg.max_pixels)
            except (ImageFileError, DataError) as e:
                reason = str(e).removeprefix(f"{where}: ") if isinstance(e, DataError) else str(e)
                if cfg.on_corrupt == "error":
                    raise DataError(f"{where} {reason}; or set data.on_corrupt: skip to leave such files out") \
                        from None
                skipped.append({"file": it.path, "reason": reason})
                continue
            data, ext = encode(d, raw)
            stored["jpeg_kept" if ext == "jpg" else "png"] += 1
            label = index[it.label] if it.label is not None else None
            writers[split[it.path]].add(data, label, ext)
            h.update(f"{it.path}\0{label}\0{ext}\0".encode())
            h.update(hashlib.sha256(data).digest())
            gray_files += d.gray_source
            sides.append(min(d.image.size))
            if split[it.path] == "train":
                stats.add(pixels(d.image))
        indexes = {s: w.close() for s, w in writers.items()}
        for s in ("train", "test"):
            if indexes[s]["num_samples"] == 0:
                raise DataError(f"{source}: no image is left for the {'training' if s == 'train' else 'held-out'} "
                                f"split ({len(listing.items)} found, {len(skipped)} skipped, test_fraction "
                                f"{cfg.test_fraction}); add images or change data.test_fraction")
        n_stored = len(sides)
        channels = 1 if cfg.color == "gray" or (cfg.color == "auto" and gray_files == n_stored) else 3
        mean, std = stats.mean_std(channels)
        size = int(cfg.image_size or 0)
        h.update(f"channels={channels}".encode())
        meta = {
            "format_version": FORMAT_VERSION, "format": "shards", "native": True, "name": name, "source": source,
            "classes": classes, "labelled": bool(classes), "labels": cfg.labels or "none",
            "color": "gray" if channels == 1 else "rgb", "shape": [channels, size, size],
            "num_train": int(indexes["train"]["num_samples"]), "num_test": int(indexes["test"]["num_samples"]),
            "mean": mean, "std": std, "content_hash": h.hexdigest(),
            "shards": {"train": "train", "test": "test"},
            "shorter_side": {"min": int(min(sides)), "median": int(np.median(sides)), "max": int(max(sides))},
            "stored": stored,
            "gray_files": int(gray_files), "ignored_files": listing.ignored, "source_fingerprint": seen,
            "skipped": len(skipped), "skipped_files": skipped[:SKIPPED_LISTED],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta

