"""k-positive contrastive learning (KCL; Kang et al., ICLR 2021, "Exploring Balanced Feature
Spaces for Representation Learning"; official code bingykang/BalFeat ``moco/kcl_builder.py``)."""

from __future__ import annotations

import torch


@torch.no_grad()
def k_same_class(labels: torch.Tensor, label_queue: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    r"""For each query, ``k`` queue entries of its class, drawn uniformly without replacement: the
    extra positives of KCL (all of them when the queue holds fewer than ``k``; queue entries with
    label ``-1`` are empty slots and never chosen).

    Args:
        labels: int ``(N,)``; label_queue: int ``(K,)``; k: ``>= 1``.
        generator: the random draws (the same on every rank).

    Returns:
        bool ``(N, K)``: row ``i`` marks at most ``k`` entries with ``label_queue == labels[i]``.
    """
    same = (labels[:, None] == label_queue[None, :]) & (label_queue[None, :] >= 0)  # N x K
    r = torch.rand(same.shape, generator=generator, device=generator.device).to(same.device)
    r = torch.where(same, r, torch.full_like(r, -1.0))
    top = r.topk(min(k, same.shape[1]), dim=1)
    mask = torch.zeros_like(same)
    mask.scatter_(1, top.indices, top.values >= 0)
    return mask
