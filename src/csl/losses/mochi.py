"""MoCHi's synthetic hard negatives (Kalantidis et al., 2020, "Hard Negative Mixing for
Contrastive Learning", arXiv 2010.01028, Sec. 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def hard_negative_mixes(query: torch.Tensor, queue: torch.Tensor, n_hardest: int, s: int, s_prime: int,
                        generator: torch.Generator) -> torch.Tensor:
    r"""Per query, ``s + s'`` synthetic negatives mixed from its ``N`` hardest queue negatives.

    With :math:`\tilde Q^N` the ``N`` queue entries most similar to ``q`` (largest
    :math:`q \cdot n`, Sec. 4.1):

    .. math::
        h_k = \frac{\alpha_k n_i + (1-\alpha_k) n_j}{\lVert\cdot\rVert_2}, \quad
        n_i, n_j \in \tilde Q^N,\ \alpha_k \sim U(0, 1) \qquad (k = 1..s)

    .. math::
        h'_k = \frac{\beta_k q + (1-\beta_k) n_j}{\lVert\cdot\rVert_2}, \quad
        n_j \in \tilde Q^N,\ \beta_k \sim U(0, 0.5) \qquad (k = 1..s')

    (Eq. 3 and 4: the query's own contribution stays below half, so ``h'`` is harder than ``n_j`` yet
    still a negative). Pairs are drawn uniformly (``i = j`` possible, as in the paper's sampling with
    replacement). Everything is computed without gradient: the mixes are negatives, not paths for
    gradients to the query (Sec. 4.1, "we do not back-propagate through them").

    Args:
        query: ``(B, D)``; queue: ``(K, D)``; both are L2-normalized here.
        n_hardest: ``N <= K``; s, s_prime: ``>= 0``.
        generator: the random draws (the augmentation generator: the same on every rank).

    Returns:
        ``(B, s + s', D)`` unit vectors, ``requires_grad = False``.
    """
    q = F.normalize(query.detach().float(), dim=1)
    neg = F.normalize(queue.detach().float(), dim=1)
    b, k = q.shape[0], neg.shape[0]
    if not 1 <= n_hardest <= k:
        raise ValueError(f"n_hardest must be in [1, K = {k}]; got {n_hardest}")
    hardest = (q @ neg.T).topk(n_hardest, dim=1).indices  # B x N
    hard = neg[hardest]  # B x N x D
    dev = q.device

    def pick(count: int) -> torch.Tensor:  # B x count rows of each query's hardest set
        idx = torch.randint(0, n_hardest, (b, count), generator=generator, device=generator.device).to(dev)
        return torch.gather(hard, 1, idx[..., None].expand(-1, -1, hard.shape[2]))

    alpha = torch.rand(b, s, 1, generator=generator, device=generator.device).to(dev)
    h = alpha * pick(s) + (1 - alpha) * pick(s)
    beta = 0.5 * torch.rand(b, s_prime, 1, generator=generator, device=generator.device).to(dev)
    h_prime = beta * q[:, None, :] + (1 - beta) * pick(s_prime)
    return F.normalize(torch.cat([h, h_prime], dim=1), dim=2)
