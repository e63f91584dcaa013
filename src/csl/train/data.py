"""In-memory uint8 images served in batches, with a deterministic per-epoch shuffle."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class InMemoryImages(Dataset):
    """``(N, C, H, W)`` uint8 tensor; a list of indices gives the whole batch in one gather."""

    def __init__(self, images: np.ndarray | torch.Tensor) -> None:
        self.images = torch.as_tensor(images)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.images[torch.as_tensor(indices)]


class EpochShuffle(Sampler[int]):
    """A permutation seeded by ``(seed, epoch)``: a resumed run sees the same order."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # called by Lightning at every epoch start
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _stack(batch: Any) -> Any:
    """``__getitems__`` already returns the stacked batch."""
    return batch


def train_loader(images: np.ndarray, batch_size: int, seed: int) -> DataLoader:
    ds = InMemoryImages(images)
    return DataLoader(ds, batch_size=batch_size, sampler=EpochShuffle(len(ds), seed), drop_last=True,
                      collate_fn=_stack, num_workers=0)
