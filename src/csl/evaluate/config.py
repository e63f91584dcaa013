"""The ``eval`` section of params.yaml: the versioned evaluation protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from csl.errors import ConfigError

PROTOCOL_VERSION = "csl-eval-v1"


@dataclass(frozen=True)
class LinearConfig:
    """Linear classifier on standardized frozen features, trained with AdamW and a cosine lr."""

    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def validate(self, path: str) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"'{path}': epochs, batch_size and lr must be positive")


@dataclass(frozen=True)
class KNNConfig:
    """Weighted kNN of Wu et al. (2018, arXiv 1805.01978): k = 200, temperature 0.1."""

    k: int = 200
    temperature: float = 0.1

    def validate(self, path: str) -> None:
        if self.k < 1 or self.temperature <= 0:
            raise ConfigError(f"'{path}': k must be >= 1 and temperature > 0")


@dataclass(frozen=True)
class MapConfig:
    """2-D map of test embeddings for the report."""

    method: Literal["tsne", "pca"] = "tsne"
    points: int = 2000


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 1024
    random_baseline: bool = True
    seed: int = 0
    linear: LinearConfig = field(default_factory=LinearConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    map: MapConfig = field(default_factory=MapConfig)
