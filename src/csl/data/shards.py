"""Sharded JPEG bytes for datasets that do not fit in memory (ImageNet-style folders).

Format: WebDataset tar shards (``shard-000000.tar`` ...; per sample ``<key>.jpg`` with the
original JPEG bytes, never re-encoded, and ``<key>.cls`` with the class index) plus
``index.json`` (classes, sample count per shard, split). Shards live in a directory or under
an S3 prefix.

Reading (:class:`ShardStream`) streams each tar sequentially (a file, or an S3 object's body)
through a shuffle buffer of ``buffer`` samples, so memory is set by ``buffer`` and
``batch_size``, not by the dataset; shards are split across DataLoader workers and
distributed ranks; the order is a function of ``(seed, epoch)``. Batches are decoded with
``torchvision.io.decode_jpeg`` (on the GPU, ``device="cuda"``, where there is one; else in
the CPU workers) and resized to a fixed square size: ``uint8 (N, C, S, S)`` and labels, the
same batches the in-memory path gives the training step.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from csl.errors import DataError
from csl.io import atomic_dir

INDEX = "index.json"


def write_shards(samples: Iterable[tuple[bytes, int]], classes: list[str], out: Path, shard_size: int = 1000,
                 name: str = "train") -> dict[str, Any]:
    """Write ``(jpeg bytes, label)`` samples as tar shards + ``index.json`` into ``out`` (atomic)."""
    if shard_size < 1:
        raise DataError("shard_size must be >= 1")
    counts: list[int] = []
    with atomic_dir(out) as tmp:
        tar: tarfile.TarFile | None = None
        for i, (data, label) in enumerate(samples):
            if i % shard_size == 0:
                if tar is not None:
                    tar.close()
                tar = tarfile.open(tmp / f"shard-{len(counts):06d}.tar", "w")
                counts.append(0)
            assert tar is not None
            key = f"{i:09d}"
            for suffix, payload in (("jpg", data), ("cls", str(int(label)).encode())):
                info = tarfile.TarInfo(f"{key}.{suffix}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            counts[-1] += 1
        if tar is not None:
            tar.close()
        index = {"format": "webdataset", "split": name, "classes": classes, "num_samples": sum(counts),
                 "shards": [{"name": f"shard-{k:06d}.tar", "samples": n} for k, n in enumerate(counts)]}
        (tmp / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def _open(url: str) -> Any:
    """A readable binary stream of a shard: a local file or an S3 object's body."""
    if url.startswith("s3://"):
        from csl.io import s3

        return s3.open_stream(url, "read shard")
    try:
        return open(url, "rb")  # noqa: SIM115 (closed by the reader)
    except OSError as e:
        raise DataError(f"cannot open shard {url} ({e})") from None


def read_index(root: str) -> dict[str, Any]:
    url = f"{root.rstrip('/')}/{INDEX}"
    stream = _open(url)
    try:
        return dict(json.loads(stream.read()))
    except json.JSONDecodeError as e:
        raise DataError(f"{url} is corrupt ({e}); write the shards again") from None
    finally:
        stream.close()


def iter_shard(url: str, expected: int | None = None) -> Iterator[tuple[bytes, int]]:
    """``(jpeg bytes, label)`` of one shard, streamed (the tar is never held in memory); a shard
    with fewer samples than ``expected`` (index.json) is corrupt or truncated."""
    stream = _open(url)
    n = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            pending: dict[str, dict[str, bytes]] = {}
            for member in tar:
                if not member.isfile():
                    continue
                key, _, suffix = member.name.rpartition(".")
                f = tar.extractfile(member)
                assert f is not None
                pending.setdefault(key, {})[suffix] = f.read()
                if {"jpg", "cls"} <= pending[key].keys():
                    s = pending.pop(key)
                    n += 1
                    yield s["jpg"], int(s["cls"])
        if expected is not None and n != expected:
            raise DataError(f"shard {url} is corrupt or truncated: {n} of its {expected} samples could be read; "
                            "write the shards again")
    except tarfile.TarError as e:
        raise DataError(f"shard {url} is corrupt ({e}); write the shards again") from None
    finally:
        stream.close()


def decode_batch(jpegs: list[bytes], size: int, channels: int, device: str = "cpu") -> torch.Tensor:
    """JPEG bytes -> ``uint8 (N, channels, size, size)`` (decoded on ``device``; shorter side
    resized to ``size``, then a centre crop)."""
    from torchvision.io import ImageReadMode, decode_jpeg
    from torchvision.transforms.v2.functional import center_crop, resize

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in jpegs]
    try:
        images = decode_jpeg(data, mode=mode, device=device)
    except RuntimeError as e:
        raise DataError(f"cannot decode a JPEG in the batch ({e}); the shard holds a corrupt image") from None
    out = []
    for img in images:
        if img.shape[-2:] != (size, size):
            img = center_crop(resize(img, [size], antialias=True), [size, size])
        out.append(img)
    return torch.stack(out)


@dataclass
class ShardStream(IterableDataset):
    """Batches ``(uint8 (B, C, S, S), int64 (B,))`` streamed from the shards under ``root``."""

    root: str
    batch_size: int
    size: int
    channels: int = 3
    buffer: int = 2048
    seed: int = 0
    device: str = "cpu"
    rank: int = 0
    world_size: int = 1
    epoch: int = 0
    labels: bool = True  # yield (images, labels); False: images only (the pretraining step's batches)
    drop_last: bool = True  # False for evaluation: every sample

    def __post_init__(self) -> None:
        super().__init__()
        self.index = read_index(self.root)
        self.max_buffered = 0  # for tests: the most samples held at once

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _my_shards(self) -> list[str]:
        names = [s["name"] for s in self.index["shards"]]
        random.Random(self.seed * 1_000_003 + self.epoch).shuffle(names)
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        parts, me = self.world_size * workers, self.rank * workers + wid
        return [f"{self.root.rstrip('/')}/{n}" for n in names[me::parts]]

    def _expected(self, url: str) -> int:
        return {s["name"]: int(s["samples"]) for s in self.index["shards"]}[url.rsplit("/", 1)[1]]

    def samples(self) -> Iterator[tuple[bytes, int]]:
        """This worker's samples in shuffled order (a bounded buffer over its shards)."""
        info = get_worker_info()
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1009 + self.rank * 101 + (info.id if info else 0))
        buf: list[tuple[bytes, int]] = []
        for url in self._my_shards():
            for sample in iter_shard(url, self._expected(url)):
                if len(buf) < self.buffer:
                    buf.append(sample)
                    self.max_buffered = max(self.max_buffered, len(buf))
                    continue
                j = rng.randrange(len(buf))
                buf[j], sample = sample, buf[j]
                yield sample
        rng.shuffle(buf)
        yield from buf

    def __iter__(self) -> Iterator[Any]:
        jpegs: list[bytes] = []
        labels: list[int] = []

        def batch() -> Any:
            x = decode_batch(jpegs, self.size, self.channels, self.device)
            return (x, torch.tensor(labels, dtype=torch.int64)) if self.labels else x

        for data, label in self.samples():
            jpegs.append(data)
            labels.append(label)
            if len(jpegs) == self.batch_size:
                yield batch()
                jpegs, labels = [], []
        if jpegs and not self.drop_last:  # training drops it, as the in-memory loader does
            yield batch()


def imagefolder_samples(path: Path, split: str = "train") -> tuple[list[str], Iterator[tuple[bytes, int]]]:
    """``(classes, (jpeg bytes, label) ...)`` of an ImageFolder directory or zip
    (``[split/]<class>/<image>.jpg``), reading one file at a time (no decoding)."""
    from csl.data.imagefolder import _Source

    src = _Source(path)
    items = []
    for f in src.files:
        parts = src.rel(f)
        if len(parts) == 3 and parts[0] == split:
            items.append((parts[1], f))
        elif len(parts) == 2 and split == "train":
            items.append((parts[0], f))
    if not items:
        raise DataError(f"{path} has no {split}/<class>/<image> (or <class>/<image>) files")
    not_jpeg = [f for _, f in items if f.suffix.lower() not in (".jpg", ".jpeg")]
    if not_jpeg:
        raise DataError(f"{path}: shards hold JPEG bytes as they are, but {not_jpeg[0]} (and {len(not_jpeg) - 1} "
                        "more) is not a JPEG; convert the images first")
    classes = sorted({c for c, _ in items})
    index = {c: i for i, c in enumerate(classes)}

    def gen() -> Iterator[tuple[bytes, int]]:
        for c, f in items:
            yield src.read(f), index[c]

    return classes, gen()

