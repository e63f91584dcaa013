"""SwAV's swapped prediction with Sinkhorn-Knopp codes (Caron et al., 2020, arXiv 2006.09882)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    r"""Codes ``Q`` for ``B`` samples and ``K`` prototypes (Sec. 3.1, Eq. 3 and Algorithm 1).

    Starting from :math:`\exp(S / \epsilon)`, alternately normalize so that every prototype
    receives ``1/K`` of the mass and every sample ``1/B`` (equipartition), ``iterations`` times
    (the paper: 3, ``epsilon = 0.05``). Returned rows sum to 1 (a distribution per sample).

    Args:
        scores: ``(B, K)`` sample-prototype similarities.

    Returns:
        ``(B, K)`` codes, no gradient.
    """
    q = torch.exp((scores.float() - scores.float().max()) / epsilon).T  # q: K x B (max-shift for stability)
    q /= q.sum()
    k, b = q.shape
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True)  # each prototype: total 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True)  # each sample: total 1/B
        q /= b
    return (q * b).T  # B x K, rows sum to 1


def swav_loss(
    scores: Sequence[torch.Tensor],
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
    assign: Sequence[int] = (0, 1),
    queued: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    r"""Swapped prediction over ``V`` views (Eq. 1-2 and the multi-crop form of Sec. 3.2):

    .. math::
        \mathcal{L} = \frac{1}{|A|} \sum_{i \in A} \frac{1}{V - 1} \sum_{v \ne i} \ell(z_v, q_i),
        \quad \ell(z, q) = -\sum_k q^{(k)} \log \mathrm{softmax}(z^\top c / \tau)^{(k)}

    averaged over the batch. Codes ``q_i`` are computed only for the views in ``assign`` (the
    global crops) with :func:`sinkhorn`, without gradient; every other view predicts them.
    For two views this is ``(l(z_a, q_b) + l(z_b, q_a)) / 2``. With ``queued[i]`` (``(Q, K)``
    scores of stored features of view ``i``), Sinkhorn runs over queue + batch and the batch's
    rows are kept (the paper's queue for small batches). The paper: ``tau = 0.1``.

    Args:
        scores: ``V x (B, K)``, similarities of each view to the normalized prototypes.
    """
    total = torch.zeros((), device=scores[0].device)
    logs = [F.log_softmax(s.float() / temperature, dim=1) for s in scores]
    b = scores[0].shape[0]
    for i in assign:
        s = scores[i].detach()
        extra = queued[i] if queued is not None else None
        if extra is not None and extra.shape[0] > 0:
            q = sinkhorn(torch.cat([extra.float(), s.float()]), epsilon, iterations)[-b:]
        else:
            q = sinkhorn(s, epsilon, iterations)
        sub = sum((-(q * logs[v]).sum(dim=1)).mean() for v in range(len(scores)) if v != i)
        total = total + sub / (len(scores) - 1)  # type: ignore[operator]
    return total / len(assign)
