"""AMDIM's NCE between feature-map locations (Bachman et al., 2019, arXiv 1906.00910)."""

from __future__ import annotations

import torch


def tanh_clip(x: torch.Tensor, clip: float) -> torch.Tensor:
    """Soft clipping ``c tanh(x / c)`` (AMDIM, Sec. 3.x "regularization": keeps scores in (-c, c))."""
    return clip * torch.tanh(x / clip)


def amdim_nce(source: torch.Tensor, target: torch.Tensor, clip: float = 10.0,
              reg_weight: float = 0.05) -> torch.Tensor:
    r"""NCE of one source vector per image against every location of the other view's map.

    Scores are dot products scaled by :math:`1/\sqrt{D}`; for source image ``i`` and target
    location ``l`` of image ``i`` (a positive), the negatives are all locations ``l'`` of every
    other image ``j != i`` in the batch:

    .. math::
        \mathcal{L} = \frac{1}{NL} \sum_{i, l} -\log
            \frac{e^{\tilde s_{iil}}}{e^{\tilde s_{iil}} + \sum_{j \ne i, l'} e^{\tilde s_{ijl'}}}
            + \lambda \, \overline{s^2}, \qquad
        s_{ijl} = \frac{f_i \cdot g_{jl}}{\sqrt D}, \; \tilde s = c \tanh(s / c)

    The clipped scores and the penalty ``lambda`` on the raw scores' mean square are AMDIM's
    stabilizers (its code: ``c = 10``, ``lambda = 0.05``). Gradients reach both inputs.

    Args:
        source: ``(N, D)``, e.g. the 1x1 global feature or one sampled location of a map.
        target: ``(N, D, L)``, the ``L`` locations of the other view's feature map.

    Returns:
        Scalar (fp32).
    """
    n, d, length = target.shape
    raw = torch.einsum("nd,mdl->nml", source.float(), target.float()) / d**0.5  # raw: N x N x L
    scores = tanh_clip(raw, clip)
    eye = torch.eye(n, dtype=torch.bool, device=source.device)
    pos = scores.diagonal(dim1=0, dim2=1).t()  # pos: N x L, s_iil (no boolean indexing: no host sync)
    neg = scores.masked_fill(eye.unsqueeze(2), float("-inf")).reshape(n, n * length)  # other images only
    neg_lse = torch.logsumexp(neg, dim=1, keepdim=True)  # neg_lse: N x 1
    nce = (torch.logaddexp(pos, neg_lse) - pos).mean()
    return nce + reg_weight * raw.pow(2).mean()
