"""Part 3 of the framework: representation extraction (heads on top of the encoder)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from csl.extract.projection import PredictorConfig, ProjectionConfig, ProjectionHead, build_predictor, build_projection
from csl.registry import Entry


@dataclass(frozen=True)
class IdentityConfig:
    """No head: the representation itself is compared."""


EXTRACTORS: dict[str, Entry] = {
    "mlp_projection": Entry(ProjectionConfig, build_projection, "SimCLR's 2-layer MLP projection head"),
    "identity": Entry(IdentityConfig, lambda cfg, in_dim: nn.Identity(), "use the representation as is"),
}

__all__ = ["EXTRACTORS", "ProjectionHead", "ProjectionConfig", "PredictorConfig", "build_predictor"]
