"""Barlow Twins' redundancy-reduction loss (Zbontar et al., 2021, arXiv 2103.03230)."""

from __future__ import annotations

import torch


def barlow_twins(z_a: torch.Tensor, z_b: torch.Tensor, lambda_offdiag: float = 5e-3, eps: float = 1e-5) -> torch.Tensor:
    r"""Invariance plus redundancy reduction on the batch cross-correlation matrix (Eq. 1-2):

    .. math::
        \mathcal{L} = \sum_i (1 - \mathcal{C}_{ii})^2 + \lambda \sum_i \sum_{j \ne i} \mathcal{C}_{ij}^2,
        \qquad \mathcal{C}_{ij} = \frac{\sum_b z^A_{b,i} z^B_{b,j}}{N}

    where each view's embeddings are normalized along the batch separately (zero mean, unit
    std, biased variance as batch norm). The paper uses ``lambda = 5e-3`` with an 8192-d
    projector. Single-process: in a multi-process run the sums over ``b`` cover the global
    batch (the distributed issue).

    Args:
        z_a, z_b: ``(N, D)`` projections of the two views.

    Returns:
        Scalar (fp32).
    """
    n = z_a.shape[0]
    a = z_a.float()
    b = z_b.float()
    a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + eps)  # BN per view, no affine
    b = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + eps)
    c = a.T @ b / n  # c: D x D cross-correlation
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag
