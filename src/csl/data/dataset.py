"""The in-memory dataset every source is turned into: uint8 images and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    """``images``: ``(N, C, H, W)`` uint8; ``labels``: ``(N,)`` int64."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        assert self.images.dtype == np.uint8 and self.images.ndim == 4, self.images.shape
        assert self.labels.shape == (self.images.shape[0],), (self.labels.shape, self.images.shape)


@dataclass
class RawDataset:
    """A dataset read from its source, before it is written as a prepared dataset."""

    name: str
    source: str
    classes: list[str]
    train: Split
    test: Split
