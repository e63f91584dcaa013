"""Label-free measures of an embedding: what can be said of an encoder without a single label.

All take embeddings ``z: (N, D)`` (any encoder output; fp32 or fp64) and return Python floats.

- :func:`rankme` (Garrido et al. 2023, arXiv 2210.02885, Eq. 1): the effective rank of the
  embedding matrix, ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps``
  (``sigma``: singular values of ``z``, not centred; ``eps = 1e-7`` as in the paper). In
  ``[1, min(N, D)]``; a collapsed encoder gives about 1. The paper finds it tracks linear
  accuracy across methods and hyperparameters (Fig. 1, Sec. 4).
- :func:`alignment` and :func:`uniformity` (Wang & Isola 2020, arXiv 2005.10242, Sec. 4.1,
  their reference code): on l2-normalised embeddings,
  ``L_align = E_(x, y) ||f(x) - f(y)||_2^alpha`` over positive pairs (two augmentations of one
  image; ``alpha = 2``) and ``L_uniform = log E_(x, y) exp(-t ||f(x) - f(y)||_2^2)`` over pairs
  of distinct images (``t = 2``). Lower is better for both; ``uniformity`` is in ``[-4, 0]``
  (``-4``: ideal spread in the limit, ``0``: every embedding the same point).
- :func:`dimension_std` (Chen & He 2021, SimSiam, arXiv 2011.10566, Sec. 4.1, Fig. 2): the
  standard deviation over samples of each dimension of the l2-normalised embeddings, averaged
  over dimensions. Collapse drives it to 0; embeddings spread like a zero-mean isotropic
  Gaussian give about ``1 / sqrt(D)``, so ``dimension_std * sqrt(D)`` (``std_ratio``) is about 1
  for a healthy encoder whatever ``D``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RANKME_EPS = 1e-7  # Garrido et al., Eq. 1


def rankme(z: torch.Tensor, eps: float = RANKME_EPS) -> float:
    """``exp(entropy(sigma / ||sigma||_1 + eps))`` of ``z: (N, D)``."""
    s = torch.linalg.svdvals(z.double())  # s: min(N, D)
    p = s / s.sum().clamp_min(torch.finfo(torch.float64).tiny) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> float:
    """``mean_i ||x_i/|x_i| - y_i/|y_i| ||^alpha`` for positive pairs ``(x_i, y_i)``, both ``(N, D)``."""
    x, y = F.normalize(x.double(), dim=1), F.normalize(y.double(), dim=1)
    return float((x - y).norm(p=2, dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """``log mean_{i<j} exp(-t ||z_i/|z_i| - z_j/|z_j| ||^2)`` over the distinct pairs of ``z: (N, D)``."""
    z = F.normalize(z.double(), dim=1)
    return float(torch.pdist(z, p=2).pow(2).mul(-t).exp().mean().log())


def dimension_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std (over samples, unbiased) of l2-normalised ``z``."""
    return float(F.normalize(z.double(), dim=1).std(dim=0).mean())


def std_ratio(z: torch.Tensor) -> float:
    """``dimension_std(z) * sqrt(D)``: about 1 for well-spread embeddings, 0 at collapse."""
    return dimension_std(z) * math.sqrt(z.shape[1])


def health(z: torch.Tensor) -> dict[str, float]:
    """The measures that need no positive pairs, as one record (the online check's values)."""
    return {"rankme": rankme(z), "uniformity": uniformity(z), "dim_std": dimension_std(z), "std_ratio": std_ratio(z)}
