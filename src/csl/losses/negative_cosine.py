"""Negative cosine similarity with stop-gradient (SimSiam) and BYOL's normalized MSE."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    r"""SimSiam's :math:`\mathcal{D}(p, z) = -\frac{p}{\|p\|_2} \cdot \frac{z}{\|z\|_2}` with
    ``stopgrad(z)`` (Chen & He, 2021, arXiv 2011.10566, Eq. 1 and 3), averaged over the batch.

    The symmetric loss is ``0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)``.
    No gradient reaches ``z``, unless ``stop_gradient`` is False: the paper's ablation (Sec. 4.1,
    Fig. 2), with which the encoder collapses to a constant within a few epochs.

    Args:
        p: ``(N, D)`` predictor outputs; z: ``(N, D)`` projections of the other view.
    """
    target = z.detach() if stop_gradient else z
    return -F.cosine_similarity(p.float(), target.float(), dim=1).mean()


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r"""BYOL's :math:`\| \bar{q} - \bar{z}' \|_2^2 = 2 - 2 \cos(q, z')` (Grill et al., 2020,
    arXiv 2006.07733, Eq. 2), averaged over the batch; ``z`` comes from the target network
    and receives no gradient.

    Args:
        p: ``(N, D)`` online predictions; z: ``(N, D)`` target projections.
    """
    return (2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=1)).mean()
