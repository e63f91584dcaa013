"""CPC's InfoNCE for predicting patch representations below the context
(van den Oord et al., 2018, arXiv 1807.03748, Eq. 4; Hénaff et al., 2019, CPC v2,
arXiv 1905.09272, Sec. 2)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def cpc_infonce(predictions: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    r"""Mean over prediction steps ``k = 1..K`` of

    .. math::
        \mathcal{L}_k = -\frac{1}{|P_k|} \sum_{(n, r, c) \in P_k}
            \log \frac{\exp(\hat z^{k}_{n,r,c} \cdot z_{n,r+k,c} / \sqrt D)}
                      {\sum_{(m, r', c')} \exp(\hat z^{k}_{n,r,c} \cdot z_{m,r',c'} / \sqrt D)}

    where ``\hat z^k = W_k c`` is the context network's prediction ``k`` rows below, ``P_k`` the
    grid positions that have a row ``r + k``, and the negatives are every other patch vector of
    the batch (all images, all positions), as in CPC v2.

    Args:
        predictions: ``K`` tensors ``(N, D, R, C)``; entry ``k-1`` predicts ``k`` rows ahead
            (its last ``k`` rows are ignored).
        targets: ``(N, D, R, C)`` patch representations ``z``.

    Returns:
        Scalar (fp32).
    """
    n, d, rows, cols = targets.shape
    flat = targets.float().permute(0, 2, 3, 1).reshape(-1, d)  # flat: (N*R*C) x D
    total = torch.zeros((), device=targets.device)
    for k, pred in enumerate(predictions, start=1):
        if k >= rows:
            raise ValueError(f"cannot predict {k} rows ahead on a grid of {rows} rows")
        p = pred[:, :, : rows - k].float().permute(0, 2, 3, 1).reshape(-1, d)  # p: (N*(R-k)*C) x D
        logits = p @ flat.T / d**0.5
        m = torch.arange(p.shape[0], device=targets.device)
        img, pos = m // ((rows - k) * cols), m % ((rows - k) * cols)
        labels = img * rows * cols + k * cols + pos  # the patch k rows below, same column
        total = total + F.cross_entropy(logits, labels)
    return total / len(predictions)
