"""The between-epochs hook of the method contract: the features of the whole training set.

Before an epoch whose ``method.wants_features(epoch)`` is true, :class:`EpochFeatures` computes
``method.feature_net`` of every training image (eval mode, ``torch.no_grad``, batched, on the
training device, the dataset's normalization, no augmentation) and gives them to
``method.on_epoch_features(epoch, features)``. Under DDP each rank computes a contiguous share of
the rows and the shares are gathered, so every rank gets the same ``(n_train, D)`` tensor in
dataset order, equal to one process's. Train mode is restored afterwards.

A resumed run calls the hook again for the epoch it resumes at, from the restored weights: the
state it derives (PCL's prototypes) is that of the uninterrupted run.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist

from csl.augment.view import normalize
from csl.distributed import rank, world_size
from csl.methods.base import Method


@torch.no_grad()
def dataset_features(method: Method, images: np.ndarray | torch.Tensor, mean: list[float], std: list[float],
                     device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """``method.feature_net`` of every image, float32 ``(N, D)`` in dataset order, on ``device``;
    every rank returns the same tensor."""
    src = torch.as_tensor(images)
    n, w, r = src.shape[0], world_size(), rank()
    share = -(-n // w)  # rows per rank, the last share padded
    lo, hi = min(r * share, n), min((r + 1) * share, n)
    m = torch.tensor(mean, device=device)
    s = torch.tensor(std, device=device)
    was_training = method.training
    method.eval()
    try:
        outs = [method.feature_net(normalize(src[i:min(i + batch_size, hi)].to(device), m, s)).float()
                for i in range(lo, hi, batch_size)]
    finally:
        method.train(was_training)
    if not outs:  # an empty share still needs the width: one row through the network
        d = method.feature_net(normalize(src[:1].to(device), m, s)).shape[1]
        mine = torch.zeros(0, d, device=device)
    else:
        mine = torch.cat(outs)
    if w == 1:
        return mine
    padded = torch.zeros(share, mine.shape[1], device=device, dtype=mine.dtype)
    padded[: mine.shape[0]] = mine
    parts = [torch.empty_like(padded) for _ in range(w)]
    dist.all_gather(parts, padded)
    return torch.cat(parts)[:n]


class EpochFeatures(L.Callback):
    """Calls the between-epochs hook with the training set's features (in-memory datasets)."""

    def __init__(self, images: np.ndarray, mean: list[float], std: list[float]) -> None:
        self.images = images
        self.mean = mean
        self.std = std

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        method: Method = pl_module.method
        epoch = int(trainer.current_epoch)
        if method.wants_features(epoch):
            feats = dataset_features(method, self.images, self.mean, self.std, pl_module.device)
            method.on_epoch_features(epoch, feats)
