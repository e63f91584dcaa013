"""InfoNCE with a queue of negatives, as in MoCo (He et al., 2020, arXiv 1911.05722, Eq. 1;
MoCo v2, Chen et al., 2020, arXiv 2003.04297)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    r"""MoCo's contrastive loss for ``N`` queries, their positive keys and ``K`` queued negatives.

    .. math::
        \mathcal{L}_q = -\log \frac{\exp(q \cdot k_+ / \tau)}
                                   {\exp(q \cdot k_+ / \tau) + \sum_{k_-} \exp(q \cdot k_- / \tau)}

    averaged over the queries. ``q``, ``k`` and the queue are L2-normalized here. MoCo v1 uses
    ``tau = 0.07`` and a 65,536-key queue; MoCo v2 ``tau = 0.2``. Keys come from the momentum
    encoder: this function does not detach them, so pass ``key.detach()`` where the method has
    no gradient through the key (it never flows into the queue, which holds past keys).

    Args:
        query: ``(N, D)``; key: ``(N, D)``, row ``i`` the positive of ``query[i]``;
        queue: ``(K, D)`` negatives (``K`` may be 0).

    Returns:
        Scalar (fp32).
    """
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.float(), dim=1)
    negatives = F.normalize(queue.float(), dim=1)
    pos = (q * k).sum(dim=1, keepdim=True)  # pos: N x 1
    neg = q @ negatives.T  # neg: N x K
    logits = torch.cat([pos, neg], dim=1) / temperature  # logits: N x (1+K)
    targets = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # the positive is column 0
    return F.cross_entropy(logits, targets)
