"""Barlow Twins (Zbontar et al., 2021, arXiv 2103.03230): two views through one encoder and
a 3-layer projector; the loss drives the cross-correlation of the embeddings to identity."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import torch
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather_all
from csl.methods.views import embed_views


@dataclass(frozen=True)
class BarlowTwinsMethodConfig:
    """Barlow Twins has no settings beyond its parts (lambda lives in the loss)."""


class BarlowTwins(Method):
    def __init__(self, augment: nn.Module, encoder: nn.Module, projector: nn.Module,
                 loss: Callable[..., torch.Tensor], channels_last: bool) -> None:
        super().__init__()
        self.augment = augment
        self.encoder = encoder
        self.projector = projector
        self.loss_fn = loss
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        zs = gather_all(embed_views(self.augment(images, generator), self.encoder, self.projector, self.channels_last))
        pairs = list(combinations(range(len(zs)), 2))
        loss = sum(self.loss_fn(zs[a], zs[b]) for a, b in pairs) / len(pairs)
        return {"loss": loss}  # type: ignore[dict-item]


def build_barlow_twins(cfg: BarlowTwinsMethodConfig, parts: Parts, channels_last: bool) -> BarlowTwins:
    return BarlowTwins(parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
