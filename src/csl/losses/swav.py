"""SwAV's swapped prediction with Sinkhorn-Knopp codes (Caron et al., 2020, arXiv 2006.09882)."""

from __future__ import annotations

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
    scores_a: torch.Tensor,
    scores_b: torch.Tensor,
    temperature: float = 0.1,
    epsilon: float = 0.05,
    iterations: int = 3,
) -> torch.Tensor:
    r"""Swapped prediction (Eq. 1-2): predict view B's code from view A's scores and vice versa,

    .. math::
        \mathcal{L} = \tfrac12 \left[ \ell(z_a, q_b) + \ell(z_b, q_a) \right], \quad
        \ell(z, q) = -\sum_k q^{(k)} \log \mathrm{softmax}(z^\top c / \tau)^{(k)}

    averaged over the batch; codes come from :func:`sinkhorn` without gradient. The paper uses
    ``tau = 0.1``.

    Args:
        scores_a, scores_b: ``(B, K)`` similarities of each view to the (normalized) prototypes.
    """
    q_a = sinkhorn(scores_a.detach(), epsilon, iterations)
    q_b = sinkhorn(scores_b.detach(), epsilon, iterations)
    log_p_a = F.log_softmax(scores_a.float() / temperature, dim=1)
    log_p_b = F.log_softmax(scores_b.float() / temperature, dim=1)
    return -0.5 * ((q_b * log_p_a).sum(1).mean() + (q_a * log_p_b).sum(1).mean())
