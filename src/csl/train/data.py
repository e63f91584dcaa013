"""In-memory uint8 images served in batches, with a deterministic per-epoch shuffle."""

from __future__ import annotations

from typing import Any, Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from csl.data import shards
from csl.distributed import rank, world_size
from csl.methods.base import Batch


class InMemoryImages(Dataset):
    """``(N, C, H, W)`` uint8 tensor; a list of indices gives the whole batch in one gather: the
    images alone, or a :class:`~csl.methods.base.Batch` with the labels and/or the indices when
    ``labels`` / ``with_indices`` are given (only for a method that needs them)."""

    def __init__(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | None = None,
                 with_indices: bool = False) -> None:
        self.images = torch.as_tensor(images)
        self.labels = torch.as_tensor(labels, dtype=torch.int64) if labels is not None else None
        self.with_indices = with_indices

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitems__(self, indices: list[int]) -> torch.Tensor | Batch:
        idx = torch.as_tensor(indices)
        x = self.images[idx]
        if self.labels is None and not self.with_indices:
            return x
        return Batch(x, self.labels[idx] if self.labels is not None else None, idx if self.with_indices else None)


class EpochShuffle(Sampler[int]):
    """A permutation seeded by ``(seed, epoch)``: a resumed run sees the same order.

    With ``W`` processes every rank draws the same permutation, cuts it into global batches of
    ``W * batch_size`` and takes its contiguous share of each, in rank order: the global batches
    (and the order of their rows after a gather) are those of one process with the global batch.
    """

    def __init__(self, n: int, seed: int, batch_size: int) -> None:
        self.n = n
        self.seed = seed
        self.batch_size = batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g)
        w, b = world_size(), self.batch_size
        batches = self.n // (w * b)
        mine = perm[: batches * w * b].view(batches, w, b)[:, rank()]  # batches x b
        return iter(mine.flatten().tolist())

    def __len__(self) -> int:
        return (self.n // (world_size() * self.batch_size)) * self.batch_size


def _stack(batch: Any) -> Any:
    """``__getitems__`` already returns the stacked batch."""
    return batch


def train_loader(images: np.ndarray, batch_size: int, seed: int, labels: np.ndarray | None = None,
                 with_indices: bool = False) -> DataLoader:
    ds = InMemoryImages(images, labels, with_indices)
    return DataLoader(ds, batch_size=batch_size, sampler=EpochShuffle(len(ds), seed, batch_size), drop_last=True,
                      collate_fn=_stack, num_workers=0)


class EpochSetter(L.Callback):
    """A Lightning callback that gives the stream its epoch (a new order each epoch, the same
    order after a resume); the workers receive it when they start for the epoch."""

    def __init__(self, stream: shards.ShardStream) -> None:
        self.stream = stream

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.stream.set_epoch(int(trainer.current_epoch))


def train_stream_loader(root: str, batch_size: int, size: int, channels: int, seed: int,
                        workers: int = 2, labels: bool = False,
                        crops: tuple[Any, ...] | None = None) -> tuple[Any, shards.ShardStream]:
    """The pretraining loader over shards: uint8 image batches (with ``labels``: ``(images, labels)``),
    decoded in ``workers`` CPU processes (or on the GPU in the main process when there is one).
    ``crops``: every view's crop is cut from the native-size image in the loader
    (:mod:`csl.augment.native`) and the batches are ``CroppedViews``."""
    gpu = torch.cuda.is_available()
    stream = shards.ShardStream(root, batch_size, size, channels, seed=seed, rank=rank(), world_size=world_size(),
                                labels=labels, device="cuda" if gpu else "cpu", crops=crops)
    return DataLoader(stream, batch_size=None, num_workers=0 if gpu else workers), stream

