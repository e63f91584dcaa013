"""Run augmented views through one branch (encoder + head), batched by view size."""

from __future__ import annotations

import torch
from torch import nn


def size_groups(views: list[torch.Tensor]) -> list[tuple[int, int]]:
    """``[(start, end), ...]``: runs of consecutive views with the same shape (multi-crop)."""
    out: list[tuple[int, int]] = []
    start = 0
    for i in range(1, len(views) + 1):
        if i == len(views) or views[i].shape != views[start].shape:
            out.append((start, i))
            start = i
    return out


def n_global(views: list[torch.Tensor]) -> int:
    """Global crops are the leading views of the first view's size (SwAV and DINO order)."""
    return size_groups(views)[0][1]


def require_views(augment: nn.Module, minimum: int, method: str, same_size: bool = False) -> None:
    """Fail at build time, before any step, when the augmentation gives too few views."""
    from csl.errors import ConfigError

    sizes = [s.size for s in getattr(augment, "specs", [])]
    if len(sizes) < minimum or (same_size and len(set(sizes[:minimum])) > 1):
        what = f"{minimum} views" + (" of the same size first" if same_size else "")
        raise ConfigError(f"method '{method}' needs {what}; the augmentation gives {len(sizes)} "
                          f"(sizes {sizes}): add views in 'augment'")


def embed_views(views: list[torch.Tensor], encoder: nn.Module, head: nn.Module,
                channels_last: bool) -> list[torch.Tensor]:
    """``V x (N, C, S_v, S_v) -> V x (N, D)`` in fp32. Views of one size are concatenated so
    batch norm sees all of them at once (SimCLR's and BYOL's implementations); multi-crop
    views of another size go through in their own pass (SwAV's and DINO's)."""
    n = views[0].shape[0]
    out: list[torch.Tensor] = []
    for start, end in size_groups(views):
        x = torch.cat(views[start:end])  # x: (V_g*N) x C x S x S
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out.extend(head(encoder(x)).float().split(n))
    return out
