"""Part 5 of the framework: losses, as pure functions of tensors.

Each function documents its paper, formula and tensor shapes, and computes in fp32 whatever
the input precision. :data:`LOSSES` maps the names used in params.yaml to a typed config and
a builder that returns a callable; its ``kind`` says which call a method makes:

* ``contrastive``: ``(z_a, z_b, similarity)``; ``predictive``: ``(prediction, target)``;
  ``redundancy``: ``(z_a, z_b)``;
* ``key_contrastive``: ``(query, key, queue | None[, synthetic negatives, queue positives, i-Mix's (perm, lam)])``
  (MoCo, MoCHi, KCL, i-Mix on MoCo);
* ``clustering``: ``(scores per view, assign views, queued scores)`` (SwAV);
* ``distillation``: ``(student views, teacher views, centre, teacher temperature)`` (DINO);
* ``feature_map``: ``(source (N, D), target (N, D, L))`` (AMDIM, YADIM);
* ``predictive_coding``: ``(predictions per step, patch grid)`` (CPC);
* ``supervised``: ``(views, labels, similarity)`` (SupCon);
* ``mixed_instance``: ``(mixed queries, keys, partner permutation, lambda, similarity)`` (i-Mix).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from csl.losses.amdim import amdim_nce
from csl.losses.barlow_twins import barlow_twins
from csl.losses.cpc import cpc_infonce
from csl.losses.debiased import hard_negative_nt_xent
from csl.losses.dino import dino_loss
from csl.losses.imix import imix_npair
from csl.losses.info_nce import info_nce
from csl.losses.negative_cosine import byol_loss, negative_cosine
from csl.losses.nt_xent import nt_xent
from csl.losses.supcon import supcon
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
class DCLConfig:
    """Debiased contrastive loss (arXiv 2007.00224): ``tau_plus = 0.1`` (the class prior of
    CIFAR-10), ``t = 0.5``; ``beta = 0`` (no hardness weighting). With ``beta > 0`` it is HCL."""

    temperature: float = 0.5
    tau_plus: float = 0.1
    beta: float = 0.0

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0 or not 0 <= self.tau_plus < 1 or self.beta < 0:
            raise ConfigError(f"'{path}': need temperature > 0, 0 <= tau_plus < 1 and beta >= 0")


@dataclass(frozen=True)
class HCLConfig(DCLConfig):
    """Hard-negative contrastive loss (arXiv 2010.04592; joshr17/HCL CIFAR-10 settings):
    ``beta = 1.0``, ``tau_plus = 0.1``, ``t = 0.5``."""

    beta: float = 1.0


def _build_debiased(cfg: DCLConfig) -> Callable[..., torch.Tensor]:
    def loss(z_a: torch.Tensor, z_b: torch.Tensor, similarity: Any) -> torch.Tensor:
        return hard_negative_nt_xent(z_a, z_b, cfg.temperature, cfg.tau_plus, cfg.beta, similarity)

    return loss


@dataclass(frozen=True)
class SupConLossConfig:
    """SupCon (arXiv 2004.11362; HobbitLong/SupContrast ``losses.py``): ``temperature =
    base_temperature = 0.07``."""

    temperature: float = 0.07
    base_temperature: float = 0.07

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0 or self.base_temperature <= 0:
            raise ConfigError(f"'{path}': temperature and base_temperature must be > 0")


def _build_supcon(cfg: SupConLossConfig) -> Callable[..., torch.Tensor]:
    def loss(views: list[torch.Tensor], labels: torch.Tensor | None, similarity: Any) -> torch.Tensor:
        return supcon(views, labels, similarity, cfg.temperature, cfg.base_temperature)

    return loss


@dataclass(frozen=True)
class IMixLossConfig:
    """i-Mix's N-pair loss (arXiv 2010.08887; kibok90/imix): ``temperature = 0.2``."""

    temperature: float = 0.2

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0:
            raise ConfigError(f"'{path}.temperature' must be > 0")


def _build_imix(cfg: IMixLossConfig) -> Callable[..., torch.Tensor]:
    def loss(mixed: torch.Tensor, keys: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor,
             similarity: Any) -> torch.Tensor:
        return imix_npair(mixed, keys, perm, lam, similarity, cfg.temperature)

    return loss


@dataclass(frozen=True)
class NegativeCosineConfig:
    """``stop_gradient: false`` is SimSiam's ablation (Chen & He 2021, Sec. 4.1, Fig. 2): it collapses."""

    stop_gradient: bool = True


def _build_negative_cosine(cfg: NegativeCosineConfig) -> Callable[..., torch.Tensor]:
    return lambda p, z: negative_cosine(p, z, stop_gradient=cfg.stop_gradient)


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


@dataclass(frozen=True)
class InfoNCEConfig:
    """MoCo v2: ``temperature = 0.2`` (arXiv 2003.04297); MoCo v3 ResNet-50: ``1.0`` with
    ``scale = 2 * temperature`` (arXiv 2104.02057, Alg. 1 ``ctr``: ``CE(q k^T / t) * 2t``)."""

    temperature: float = 0.2
    scale: float = 1.0

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0 or self.scale <= 0:
            raise ConfigError(f"'{path}': temperature and scale must be > 0")


def _build_info_nce(cfg: InfoNCEConfig) -> Callable[..., torch.Tensor]:
    def loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor | None,
             synthetic: torch.Tensor | None = None, positives: torch.Tensor | None = None,
             mix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        return cfg.scale * info_nce(query, key, queue, cfg.temperature, synthetic, positives, mix)

    return loss


@dataclass(frozen=True)
class SwAVLossConfig:
    """SwAV (arXiv 2006.09882, Sec. 4 / App. A): ``tau = 0.1``, Sinkhorn ``epsilon = 0.05``
    with 3 iterations."""

    temperature: float = 0.1
    epsilon: float = 0.05
    sinkhorn_iterations: int = 3

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.temperature <= 0 or self.epsilon <= 0 or self.sinkhorn_iterations < 1:
            raise ConfigError(f"'{path}': temperature, epsilon > 0 and sinkhorn_iterations >= 1 required")


def _build_swav(cfg: SwAVLossConfig) -> Callable[..., torch.Tensor]:
    def loss(scores: list[torch.Tensor], assign: list[int], queued: list[torch.Tensor | None] | None) -> torch.Tensor:
        return swav_loss(scores, cfg.temperature, cfg.epsilon, cfg.sinkhorn_iterations, assign, queued)

    return loss


@dataclass(frozen=True)
class DINOLossConfig:
    """DINO (arXiv 2104.14294, Sec. 3.1 / 4): student temperature 0.1; the teacher's
    (warmed-up) temperature is the method's schedule."""

    student_temperature: float = 0.1

    def validate(self, path: str) -> None:
        from csl.errors import ConfigError

        if self.student_temperature <= 0:
            raise ConfigError(f"'{path}.student_temperature' must be > 0")


def _build_dino(cfg: DINOLossConfig) -> Callable[..., torch.Tensor]:
    def loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
             teacher_temperature: float) -> torch.Tensor:
        return dino_loss(student, teacher, center, cfg.student_temperature, teacher_temperature)

    return loss


@dataclass(frozen=True)
class AMDIMNCEConfig:
    """AMDIM (arXiv 1906.00910) code defaults: tanh clip 10, score penalty 0.05."""

    clip: float = 10.0
    reg_weight: float = 0.05


def _build_amdim(cfg: AMDIMNCEConfig) -> Callable[..., torch.Tensor]:
    def loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return amdim_nce(source, target, cfg.clip, cfg.reg_weight)

    return loss


LOSSES: dict[str, Entry] = {
    "nt_xent": Entry(NTXentConfig, _build_nt_xent, "SimCLR's normalized temperature-scaled cross-entropy",
                     kind="contrastive"),
    "dcl": Entry(DCLConfig, _build_debiased, "Debiased NT-Xent (DCL): the negatives' sum corrected for false "
                 "negatives by the class prior tau_plus", kind="contrastive"),
    "hcl": Entry(HCLConfig, _build_debiased, "Hard-negative NT-Xent (HCL): DCL with negatives weighted by "
                 "exp(beta * similarity)", kind="contrastive"),
    "supcon": Entry(SupConLossConfig, _build_supcon, "SupCon's supervised contrastive loss: every view of the "
                    "anchor's class is a positive", kind="supervised"),
    "imix_npair": Entry(IMixLossConfig, _build_imix, "i-Mix's N-pair loss with mixed virtual labels",
                        kind="mixed_instance"),
    "byol": Entry(NoLossParams, lambda cfg: byol_loss, "BYOL's normalized MSE, 2 - 2 cos(p, sg(z))",
                  kind="predictive"),
    "negative_cosine": Entry(NegativeCosineConfig, _build_negative_cosine, "SimSiam's -cos(p, sg(z))",
                             kind="predictive"),
    "barlow_twins": Entry(BarlowTwinsConfig, _build_barlow, "Barlow Twins' cross-correlation loss",
                          kind="redundancy"),
    "info_nce": Entry(InfoNCEConfig, _build_info_nce, "MoCo's InfoNCE: queue (v2) or in-batch (v3) negatives",
                      kind="key_contrastive"),
    "swav": Entry(SwAVLossConfig, _build_swav, "SwAV's swapped prediction of Sinkhorn codes", kind="clustering"),
    "dino": Entry(DINOLossConfig, _build_dino, "DINO's centred, sharpened teacher-student cross-entropy",
                  kind="distillation"),
    "amdim_nce": Entry(AMDIMNCEConfig, _build_amdim, "AMDIM's NCE between feature-map locations, tanh-clipped",
                       kind="feature_map"),
    "cpc_infonce": Entry(NoLossParams, lambda cfg: cpc_infonce, "CPC's InfoNCE for patches below the context",
                         kind="predictive_coding"),
}

__all__ = ["nt_xent", "info_nce", "amdim_nce", "cpc_infonce", "negative_cosine", "byol_loss", "barlow_twins", "sinkhorn", "swav_loss",
           "dino_loss", "supcon", "hard_negative_nt_xent", "imix_npair", "LOSSES", "NTXentConfig"]
