"""Part 5 of the framework: losses, as pure functions of tensors.

Each function documents its paper, formula and tensor shapes, and computes in fp32 whatever
the input precision. :data:`LOSSES` maps the names used in params.yaml to a typed config and
a builder that returns a callable ``(z_a, z_b, similarity) -> scalar``; the other functions
here are composed by methods as they are added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from csl.losses.barlow_twins import barlow_twins
from csl.losses.dino import dino_loss
from csl.losses.info_nce import info_nce
from csl.losses.negative_cosine import byol_loss, negative_cosine
from csl.losses.nt_xent import nt_xent
from csl.losses.swav import sinkhorn, swav_loss
from csl.registry import Entry


@dataclass(frozen=True)
class NTXentConfig:
    """NT-Xent settings. SimCLR uses 0.5 on CIFAR-10 and 0.1 on ImageNet (arXiv 2002.05709, B.9)."""

    temperature: float = 0.5

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0:
            raise ConfigError(f"'{path}.temperature' must be > 0, got {self.temperature}")


def _build_nt_xent(cfg: NTXentConfig) -> Callable[..., torch.Tensor]:
    def loss(z_a: torch.Tensor, z_b: torch.Tensor, similarity: Any) -> torch.Tensor:
        return nt_xent(z_a, z_b, cfg.temperature, similarity)

    return loss


@dataclass(frozen=True)
class NoLossParams:
    """This loss takes no parameters."""


@dataclass(frozen=True)
class BarlowTwinsConfig:
    """lambda = 5e-3 (arXiv 2103.03230, Sec. 4, with an 8192-d projector); ``scale`` multiplies
    the loss (solo-learn uses 0.1 on CIFAR)."""

    lambda_offdiag: float = 5e-3
    scale: float = 1.0


def _build_barlow(cfg: BarlowTwinsConfig) -> Callable[..., torch.Tensor]:
    def loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        return cfg.scale * barlow_twins(z_a, z_b, cfg.lambda_offdiag)

    return loss


LOSSES: dict[str, Entry] = {
    "nt_xent": Entry(NTXentConfig, _build_nt_xent, "SimCLR's normalized temperature-scaled cross-entropy",
                     kind="contrastive"),
    "byol": Entry(NoLossParams, lambda cfg: byol_loss, "BYOL's normalized MSE, 2 - 2 cos(p, sg(z))",
                  kind="predictive"),
    "negative_cosine": Entry(NoLossParams, lambda cfg: negative_cosine, "SimSiam's -cos(p, sg(z))",
                             kind="predictive"),
    "barlow_twins": Entry(BarlowTwinsConfig, _build_barlow, "Barlow Twins' cross-correlation loss",
                          kind="redundancy"),
}

__all__ = ["nt_xent", "info_nce", "negative_cosine", "byol_loss", "barlow_twins", "sinkhorn", "swav_loss",
           "dino_loss", "LOSSES", "NTXentConfig"]
