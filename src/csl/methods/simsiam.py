"""SimSiam (Chen & He, 2021, arXiv 2011.10566): BYOL without a target network; the
stop-gradient alone prevents collapse. ``L = 1/2 D(p1, sg(z2)) + 1/2 D(p2, sg(z1))`` (Eq. 3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.extract.projection import PredictorConfig, build_predictor
from csl.distributed import gather_all
from csl.methods.views import embed_views


@dataclass(frozen=True)
class SimSiamConfig:
    """Paper: predictor bottleneck 512 for a 2048-d projection."""

    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(hidden_dim=512))


class SimSiam(Method):
    def __init__(self, cfg: SimSiamConfig, augment: nn.Module, encoder: nn.Module, projector: nn.Module,
                 loss: Callable[..., torch.Tensor], channels_last: bool) -> None:
        super().__init__()
        self.augment = augment
        self.encoder = encoder
        self.projector = projector
        self.predictor = build_predictor(cfg.predictor, int(projector.out_dim))  # type: ignore[arg-type]
        self.loss_fn = loss  # a predictive loss: detaches its target
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        views = self.augment(images, generator)
        n = images.shape[0]
        zs = embed_views(views, self.encoder, self.projector, self.channels_last)
        ps = gather_all(list(self.predictor(torch.cat(zs)).float().split(n)))
        zs = gather_all(zs)
        v = len(views)
        pairs = [(i, j) for i in range(v) for j in range(v) if i != j]
        loss = sum(self.loss_fn(ps[i], zs[j]) for i, j in pairs) / len(pairs)  # 1/2 (D12 + D21) for 2 views
        return {"loss": loss}  # type: ignore[dict-item]


    def health_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The projector's output ``z``: what collapses without the stop-gradient (Fig. 2)."""
        return self.projector(self.encoder(x))


def build_simsiam(cfg: SimSiamConfig, parts: Parts, channels_last: bool) -> SimSiam:
    return SimSiam(cfg, parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
