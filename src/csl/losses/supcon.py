"""SupCon, the supervised contrastive loss (Khosla et al., 2020)."""

from __future__ import annotations

from typing import Callable

import torch

SimilarityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def supcon(
    views: list[torch.Tensor],
    labels: torch.Tensor | None,
    similarity: SimilarityFn,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    r"""Supervised contrastive loss, :math:`\mathcal{L}^{sup}_{out}` of Khosla et al., 2020,
    "Supervised Contrastive Learning", arXiv 2004.11362, Eq. 2, as the official code computes it
    (HobbitLong/SupContrast ``losses.py``, ``contrast_mode='all'``).

    The ``V`` views of ``N`` images give ``VN`` anchors (view-major: row ``v*N + n``). For anchor
    ``i``, ``A(i)`` is every other row and ``P(i) = {p in A(i): y_p = y_i}``:

    .. math::
        \ell_i = -\frac{\tau}{\tau_{base}} \frac{1}{|P(i)|} \sum_{p \in P(i)}
                 \log \frac{\exp(s_{ip}/\tau)}{\sum_{a \in A(i)} \exp(s_{ia}/\tau)}

    and the loss is the mean of :math:`\ell_i` over all ``VN`` anchors. An anchor without a
    positive (one view of a singleton class) contributes 0 and still counts in the mean, as the
    official code's ``mask_pos_pairs`` edge case does. Without labels, each image is its own
    class: ``P(i)`` is the other views of the same image, and with two views and cosine
    similarity the loss is SimCLR's NT-Xent at the same temperature (when ``tau = tau_base``).
    Defaults: ``tau = tau_base = 0.07`` (the official code).

    Args:
        views: ``V`` tensors ``(N, D)``, ``V >= 1`` (the official code normalizes the features; pass
            ``similarity`` = cosine for that).
        labels: int ``(N,)``, or None for the self-supervised case.
        similarity: ``(A, D), (B, D) -> (A, B)``.
        temperature, base_temperature: ``tau``, ``tau_base > 0``.

    Returns:
        A scalar tensor (fp32 whatever the input precision).
    """
    if not views or any(v.dim() != 2 or v.shape != views[0].shape for v in views):
        raise ValueError(f"views must be V >= 1 tensors of one shape (N, D); got {[tuple(v.shape) for v in views]}")
    if temperature <= 0 or base_temperature <= 0:
        raise ValueError("temperature and base_temperature must be > 0")
    n, v = views[0].shape[0], len(views)
    if labels is not None and labels.shape != (n,):
        raise ValueError(f"labels must be (N,) = ({n},); got {tuple(labels.shape)}")
    z = torch.cat(views).float()  # z: VN x D, view-major
    ids = (labels if labels is not None else torch.arange(n, device=z.device)).to(z.device).repeat(v)  # VN
    logits = similarity(z, z) / temperature  # VN x VN
    self_mask = torch.eye(v * n, dtype=torch.bool, device=z.device)
    positives = (ids[:, None] == ids[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    n_pos = positives.sum(1).clamp(min=1)  # no positive: 0 / 1
    mean_log_prob_pos = (log_prob * positives).sum(1) / n_pos
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()
