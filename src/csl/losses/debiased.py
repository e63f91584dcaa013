"""Debiased (DCL) and hard-negative (HCL) contrastive losses: one NT-Xent with a corrected,
re-weighted negative term."""

from __future__ import annotations

import math
from typing import Callable

import torch

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def hard_negative_nt_xent(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    temperature: float = 0.5,
    tau_plus: float = 0.1,
    beta: float = 1.0,
    similarity: SimilarityFn | None = None,
) -> torch.Tensor:
    r"""Debiased contrastive loss (Chuang et al., 2020, "Debiased Contrastive Learning", arXiv
    2007.00224, Eq. 6) with the hard-negative importance weights of Robinson et al., 2021,
    "Contrastive Learning with Hard Negative Samples", arXiv 2010.04592, Eq. 4 / Sec. 3, as the
    official code computes both (joshr17/HCL ``image/main.py``, ``criterion``).

    For the ``2N`` anchors of two views, with :math:`s = \mathrm{sim}/t`, the positive
    :math:`e^{s^+}` and the ``M = 2N - 2`` negatives :math:`e^{s_k}` (every row but the anchor
    and its positive):

    .. math::
        w_k = \frac{e^{\beta s_k}}{\frac{1}{M}\sum_j e^{\beta s_j}}, \qquad
        N_g = \max\Big(\frac{\sum_k w_k e^{s_k} - \tau^+ M e^{s^+}}{1 - \tau^+},\; M e^{-1/t}\Big),
        \qquad \ell = -\log \frac{e^{s^+}}{e^{s^+} + N_g}

    averaged over the anchors. ``tau_plus`` is the class prior :math:`\tau^+` (the chance that a
    "negative" shares the anchor's class), ``beta`` the hardness concentration; ``beta = 0`` is
    DCL, ``tau_plus = beta = 0`` is NT-Xent exactly (the bound :math:`M e^{-1/t}` is then the
    smallest value the sum can take with cosine similarity, and never binds). The official CIFAR
    settings: ``t = 0.5``, ``tau_plus = 0.1``, ``beta = 1.0`` (HCL README); computed here in log
    space (shifted by each row's largest term), equal to the code's direct exponentials.

    Args:
        z_a, z_b: ``(N, D)`` projections of the two views; row ``i`` of each is a positive pair.
        temperature: ``t > 0``; tau_plus in ``[0, 1)``; beta ``>= 0``.
        similarity: ``(A, D), (B, D) -> (A, B)``; default cosine (the official code normalizes).

    Returns:
        A scalar tensor (fp32 whatever the input precision).
    """
    from csl.similarity.cosine import cosine_similarity_matrix

    if z_a.shape != z_b.shape or z_a.dim() != 2:
        raise ValueError(f"z_a and z_b must both be (N, D); got {tuple(z_a.shape)}, {tuple(z_b.shape)}")
    if temperature <= 0 or not 0 <= tau_plus < 1 or beta < 0:
        raise ValueError(f"need temperature > 0, 0 <= tau_plus < 1, beta >= 0; got {temperature}, {tau_plus}, {beta}")
    sim = similarity or cosine_similarity_matrix
    n = z_a.shape[0]
    z = torch.cat([z_a, z_b]).float()  # 2N x D
    logits = sim(z, z) / temperature  # 2N x 2N
    idx = torch.arange(2 * n, device=z.device)
    pos_idx = torch.cat([idx[n:], idx[:n]])
    pos = logits[idx, pos_idx]  # 2N
    neg_mask = torch.ones_like(logits, dtype=torch.bool)
    neg_mask[idx, idx] = False
    neg_mask[idx, pos_idx] = False
    neg = logits[neg_mask].view(2 * n, 2 * n - 2)  # 2N x M
    m = 2 * n - 2
    # log of sum_k w_k e^{s_k} = log M + lse((1 + beta) s) - lse(beta s)
    log_rw = math.log(m) + torch.logsumexp((1 + beta) * neg, 1) - torch.logsumexp(beta * neg, 1)
    shift = torch.maximum(pos, log_rw).detach()
    pos_s, rw_s = torch.exp(pos - shift), torch.exp(log_rw - shift)
    ng = (rw_s - tau_plus * m * pos_s) / (1 - tau_plus)
    ng = torch.maximum(ng, m * torch.exp(-1.0 / temperature - shift))
    return (torch.log(pos_s + ng) + shift - pos).mean()
