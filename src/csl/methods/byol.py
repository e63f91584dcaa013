"""BYOL (Grill et al., 2020, arXiv 2006.07733): an online network (encoder, projector,
predictor) predicts the projections of an EMA target network on the other view.

The target is explicit state (:mod:`csl.methods.ema`), updated after every optimizer step
with momentum ``tau`` following :func:`csl.train.schedule.cosine_momentum` from
``momentum_base`` (paper: 0.996) to 1. The loss is symmetrized over the two views
(``L + L~``, Eq. 2); with a contrastive loss (e.g. NT-Xent) the same wiring gives a variant
no paper has: SimCLR's loss with BYOL's predictor and target.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.errors import ConfigError
from csl.extract.projection import PredictorConfig, build_predictor
from csl.distributed import gather_all
from csl.methods.ema import ema_update, make_target
from csl.methods.views import embed_views
from csl.train.schedule import cosine_momentum


@dataclass(frozen=True)
class BYOLConfig:
    """Paper: predictor hidden 4096, ``tau_base = 0.996`` rising to 1 with a cosine."""

    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(hidden_dim=4096))
    momentum_base: float = 0.996
    momentum_final: float = 1.0

    def validate(self, path: str) -> None:
        if not 0 <= self.momentum_base <= self.momentum_final <= 1:
            raise ConfigError(f"'{path}': need 0 <= momentum_base <= momentum_final <= 1")


class BYOL(Method):
    def __init__(self, cfg: BYOLConfig, augment: nn.Module, encoder: nn.Module, projector: nn.Module,
                 similarity: Callable[..., torch.Tensor], loss: Callable[..., torch.Tensor], loss_kind: str,
                 channels_last: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.projector = projector
        self.predictor = build_predictor(cfg.predictor, int(projector.out_dim))  # type: ignore[arg-type]
        self.target_encoder = make_target(encoder)
        self.target_projector = make_target(projector)
        self.similarity = similarity
        self.loss_fn = loss
        self.loss_kind = loss_kind
        self.channels_last = channels_last

    def _pair_loss(self, p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "contrastive":
            return self.loss_fn(p, z, self.similarity)
        return self.loss_fn(p, z)

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        views = self.augment(images, generator)
        n = images.shape[0]
        z_online = embed_views(views, self.encoder, self.projector, self.channels_last)
        preds = gather_all(list(self.predictor(torch.cat(z_online)).float().split(n)))  # V x (W*N, D)
        with torch.no_grad():
            z_target = gather_all(embed_views(views, self.target_encoder, self.target_projector, self.channels_last))
        v = len(views)
        # every view predicts every other view's target; for 2 views this is L + L~
        loss = sum(self._pair_loss(preds[i], z_target[j]) for i in range(v) for j in range(v) if i != j) / (v - 1)
        return {"loss": loss}  # type: ignore[dict-item]

    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        """EMA update of the target after the optimizer step ``step`` (0-based)."""
        m = cosine_momentum(step, total_steps, self.cfg.momentum_base, self.cfg.momentum_final)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)
        return {"momentum": m}


def build_byol(cfg: BYOLConfig, parts: Parts, channels_last: bool) -> BYOL:
    return BYOL(cfg, parts.augment, parts.encoder, parts.extract, parts.similarity, parts.loss,
                parts.loss_kind, channels_last)
