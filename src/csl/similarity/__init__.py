"""Part 4 of the framework: similarity measures ``(A, D), (B, D) -> (A, B)``."""

from __future__ import annotations

from dataclasses import dataclass

from csl.registry import Entry
from csl.similarity.cosine import cosine_similarity_matrix, dot_product_matrix


@dataclass(frozen=True)
class NoParams:
    """This component takes no parameters."""


SIMILARITIES: dict[str, Entry] = {
    "cosine": Entry(NoParams, lambda cfg: cosine_similarity_matrix, "cosine similarity (SimCLR, MoCo, BYOL)"),
    "dot": Entry(NoParams, lambda cfg: dot_product_matrix, "unnormalized dot product (AMDIM, CPC)"),
}

__all__ = ["SIMILARITIES", "cosine_similarity_matrix", "dot_product_matrix", "NoParams"]
