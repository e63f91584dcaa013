"""Cosine similarity between every pair of rows of two matrices."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sim(u, v) = u·v / (‖u‖‖v‖)`` for each row pair.

    Args:
        a: ``(A, D)``; b: ``(B, D)``.

    Returns:
        ``(A, B)`` matrix with values in ``[-1, 1]``.
    """
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def dot_product_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unnormalized dot product ``u·v`` for each row pair: ``(A, D), (B, D) -> (A, B)``."""
    return a @ b.T
