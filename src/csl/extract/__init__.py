"""Part 3 of the framework: representation extraction (heads on top of the encoder)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from csl.extract.dino_head import DINOHead, DINOHeadConfig, build_dino_head
from csl.extract.projection import PredictorConfig, ProjectionConfig, ProjectionHead, build_predictor, build_projection
from csl.registry import Entry


@dataclass(frozen=True)
class IdentityConfig:
    """No head: the representation itself is compared."""


class _Identity(nn.Identity):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim


EXTRACTORS: dict[str, Entry] = {
    "mlp_projection": Entry(ProjectionConfig, build_projection, "SimCLR's 2-layer MLP projection head"),
    "identity": Entry(IdentityConfig, lambda cfg, in_dim: _Identity(in_dim), "use the representation as is"),
    "dino_head": Entry(DINOHeadConfig, build_dino_head, "DINO's MLP + bottleneck + weight-normalized last layer"),
}

__all__ = ["EXTRACTORS", "DINOHead", "ProjectionHead", "ProjectionConfig", "PredictorConfig", "build_predictor"]
