"""Sharded image bytes for datasets that do not fit in memory (ImageNet-style folders, and
unlabeled collections of any size).

Format: WebDataset tar shards (``shard-000000.tar`` ...; per sample ``<key>.jpg`` (the
original JPEG bytes, never re-encoded) or ``<key>.png`` (a lossless re-encoding, for other
formats), and ``<key>.cls`` with the class index when the data has labels) plus
``index.json`` (classes, ``labelled``, sample count per shard, split). Shards live in a
directory or under an S3 prefix. The files of one sample are consecutive in the tar, as
WebDataset writes them.

Reading (:class:`ShardStream`) streams each tar sequentially (a file, or an S3 object's body)
through a shuffle buffer of ``buffer`` samples, so memory is set by ``buffer`` and
``batch_size``, not by the dataset; shards are split across DataLoader workers and
distributed ranks; the order is a function of ``(seed, epoch)``. Batches are decoded with
``torchvision.io`` (JPEGs on the GPU, ``device="cuda"``, where there is one; else in the CPU
workers) and either resized to a fixed square size (``uint8 (N, C, S, S)`` and labels, the
same batches the in-memory path gives the training step and evaluation) or, for training
with ``crops``, cut into each view's random resized crop from the stored image at its own
resolution (:mod:`csl.augment.native`).
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


class ShardWriter:
    """Writes samples into tar shards of ``shard_size`` in the directory ``out`` (which the caller
    makes atomic); :meth:`close` writes ``index.json`` and returns it."""

    def __init__(self, out: Path, classes: list[str], shard_size: int = 1000, name: str = "train",
                 labelled: bool = True) -> None:
        if shard_size < 1:
            raise DataError("shard_size must be >= 1")
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.classes, self.shard_size, self.name, self.labelled = out, classes, shard_size, name, labelled
        self.counts: list[int] = []
        self.tar: tarfile.TarFile | None = None
        self.n = 0

    def add(self, data: bytes, label: int | None = None, ext: str = "jpg") -> None:
        if self.n % self.shard_size == 0:
            if self.tar is not None:
                self.tar.close()
            self.tar = tarfile.open(self.out / f"shard-{len(self.counts):06d}.tar", "w")
            self.counts.append(0)
        assert self.tar is not None
        key = f"{self.n:09d}"
        files = [(ext, data)] + ([("cls", str(int(label)).encode())] if self.labelled and label is not None else [])
        for suffix, payload in files:
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            self.tar.addfile(info, io.BytesIO(payload))
        self.counts[-1] += 1
        self.n += 1

    def close(self) -> dict[str, Any]:
        if self.tar is not None:
            self.tar.close()
        index = {"format": "webdataset", "split": self.name, "classes": self.classes, "labelled": self.labelled,
                 "num_samples": sum(self.counts),
                 "shards": [{"name": f"shard-{k:06d}.tar", "samples": n} for k, n in enumerate(self.counts)]}
        (self.out / INDEX).write_text(json.dumps(index, indent=1) + "\n")
        return index


def write_shards(samples: Iterable[tuple[bytes, int | None] | tuple[bytes, int | None, str]], classes: list[str],
                 out: Path, shard_size: int = 1000, name: str = "train", labelled: bool = True) -> dict[str, Any]:
    """Write ``(image bytes, label[, extension])`` samples (extension ``jpg`` unless given; label
    None when ``labelled`` is False) as tar shards + ``index.json`` into ``out`` (atomic)."""
    with atomic_dir(out) as tmp:
        writer = ShardWriter(tmp, classes, shard_size, name, labelled)
        for sample in samples:
            writer.add(sample[0], sample[1], sample[2] if len(sample) > 2 else "jpg")  # type: ignore[misc]
        return writer.close()


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


def iter_samples(url: str, expected: int | None = None) -> Iterator[tuple[str, bytes, int | None]]:
    """``(key, image bytes, label or None)`` of one shard, streamed (the tar is never held in
    memory); a shard with fewer samples than ``expected`` (index.json) is corrupt or truncated."""
    stream = _open(url)
    n = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            key: str | None = None
            files: dict[str, bytes] = {}
            for member in tar:
                if not member.isfile():
                    continue
                k, _, suffix = member.name.rpartition(".")
                if key is not None and k != key:  # the previous sample's files are all read
                    n += 1
                    yield _sample(url, key, files)
                    files = {}
                key = k
                f = tar.extractfile(member)
                assert f is not None
                files[suffix] = f.read()
            if key is not None:
                n += 1
                yield _sample(url, key, files)
        if expected is not None and n != expected:
            raise DataError(f"shard {url} is corrupt or truncated: {n} of its {expected} samples could be read; "
                            "write the shards again")
    except tarfile.TarError as e:
        raise DataError(f"shard {url} is corrupt ({e}); write the shards again") from None
    finally:
        stream.close()


IMAGE_SUFFIXES = ("jpg", "png")


def _sample(url: str, key: str, files: dict[str, bytes]) -> tuple[str, bytes, int | None]:
    image = next((files[s] for s in IMAGE_SUFFIXES if s in files), None)
    if image is None:
        raise DataError(f"shard {url}: sample {key} has no image ({', '.join(sorted(files))}); write the shards "
                        "again")
    return key, image, int(files["cls"]) if "cls" in files else None


def iter_shard(url: str, expected: int | None = None) -> Iterator[tuple[bytes, int]]:
    """``(image bytes, label)`` of one shard (label -1 for unlabeled data), see :func:`iter_samples`."""
    for _, data, label in iter_samples(url, expected):
        yield data, -1 if label is None else label


def decode_one(data: bytes, channels: int) -> torch.Tensor:
    """Stored image bytes (JPEG or PNG) -> ``uint8 (channels, H, W)`` at the stored size."""
    from torchvision.io import ImageReadMode, decode_image

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=mode)
    except RuntimeError as e:
        raise DataError(f"cannot decode an image of the shard ({e}); the shard holds a corrupt image: write "
                        "the shards again") from None


def decode_images(data: list[bytes], channels: int, device: str = "cpu") -> list[torch.Tensor]:
    """Stored image bytes -> ``uint8 (C, H, W)`` each; JPEGs are decoded in one batch on the GPU
    when ``device`` is ``cuda`` (``torchvision.io.decode_jpeg``), the rest on the CPU."""
    if device == "cpu":
        return [decode_one(b, channels) for b in data]
    from torchvision.io import ImageReadMode, decode_jpeg

    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    jpeg = [i for i, b in enumerate(data) if b[:3] == b"\xff\xd8\xff"]
    out: list[torch.Tensor | None] = [None] * len(data)
    if jpeg:
        try:
            decoded = decode_jpeg([torch.frombuffer(bytearray(data[i]), dtype=torch.uint8) for i in jpeg], mode=mode,
                                  device=device)
        except RuntimeError as e:
            raise DataError(f"cannot decode a JPEG in the batch ({e}); the shard holds a corrupt image") from None
        for i, img in zip(jpeg, decoded):
            out[i] = img
    for i, b in enumerate(data):
        if out[i] is None:
            out[i] = decode_one(b, channels).to(device)
    return [t for t in out if t is not None]


def decode_batch(images: list[bytes], size: int, channels: int, device: str = "cpu") -> torch.Tensor:
    """Image bytes -> ``uint8 (N, channels, size, size)`` (decoded on ``device``; shorter side
    resized to ``size``, then a centre crop): the evaluation transform."""
    from torchvision.transforms.v2.functional import center_crop, resize

    out = []
    for img in decode_images(images, channels, device):
        if img.shape[-2:] != (size, size):
            img = center_crop(resize(img, [size], antialias=True), [size, size])
        out.append(img)
    return torch.stack(out)


@dataclass
class ShardStream(IterableDataset):
    """Batches ``(uint8 (B, C, S, S), int64 (B,))`` streamed from the shards under ``root``.

    With ``crops`` (one :class:`~csl.augment.native.ViewCrop` per view of the method) each
    batch is instead a :class:`~csl.augment.multiview.CroppedViews`: every view's random resized
    crop cut from the stored image at its own resolution (:mod:`csl.augment.native`).
    """

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
    crops: tuple[Any, ...] | None = None  # ViewCrop per view: training crops from the native image

    def __post_init__(self) -> None:
        super().__init__()
        self.index = read_index(self.root)
        if self.labels and not self.index.get("labelled", True):
            raise DataError(f"the shards under {self.root} have no labels, and labels were asked for: this data "
                            "suits self-supervised methods and label-free protocols only")
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

    def samples(self) -> Iterator[tuple[str, bytes, int | None]]:
        """This worker's samples in shuffled order (a bounded buffer over its shards)."""
        info = get_worker_info()
        rng = random.Random((self.seed * 1_000_003 + self.epoch) * 1009 + self.rank * 101 + (info.id if info else 0))
        buf: list[tuple[str, bytes, int | None]] = []
        for url in self._my_shards():
            for sample in iter_samples(url, self._expected(url)):
                if len(buf) < self.buffer:
                    buf.append(sample)
                    self.max_buffered = max(self.max_buffered, len(buf))
                    continue
                j = rng.randrange(len(buf))
                buf[j], sample = sample, buf[j]
                yield sample
        rng.shuffle(buf)
        yield from buf

    def _batch(self, keys: list[str], data: list[bytes], labels: list[int | None]) -> Any:
        if self.crops is not None:
            from csl.augment.native import crop_views

            x: Any = crop_views(decode_images(data, self.channels, self.device), keys, self.crops,
                                self.seed, self.epoch)
        else:
            x = decode_batch(data, self.size, self.channels, self.device)
        if not self.labels:
            return x
        return x, torch.tensor([-1 if y is None else y for y in labels], dtype=torch.int64)

    def __iter__(self) -> Iterator[Any]:
        keys: list[str] = []
        data: list[bytes] = []
        labels: list[int | None] = []
        for key, image, label in self.samples():
            keys.append(key)
            data.append(image)
            labels.append(label)
            if len(data) == self.batch_size:
                yield self._batch(keys, data, labels)
                keys, data, labels = [], [], []
        if data and not self.drop_last:  # training drops it, as the in-memory loader does
            yield self._batch(keys, data, labels)


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

