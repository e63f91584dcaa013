"""Run every augmented view through one branch (encoder + head) in a single batched pass."""

from __future__ import annotations

import torch
from torch import nn


def embed_views(views: list[torch.Tensor], encoder: nn.Module, head: nn.Module,
                channels_last: bool) -> list[torch.Tensor]:
    """``V x (N, C, S, S) -> V x (N, D)`` in fp32. Views are concatenated so batch norm sees
    all of them at once, as in SimCLR's and BYOL's implementations."""
    n = views[0].shape[0]
    x = torch.cat(views)  # x: (V*N) x C x S x S
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return list(head(encoder(x)).float().split(n))
