"""SimCLR (Chen et al., 2020, arXiv 2002.05709) as a composition of the five parts.

augment: two views per image (SimCLR recipe) -> encoder f -> projection head g ->
similarity (cosine) -> NT-Xent over the 2N views. Nothing here is SimCLR-specific beyond
the wiring: every part is chosen in params.yaml.
"""

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
class SimCLRConfig:
    """SimCLR has no settings beyond its parts."""


class SimCLR(Method):
    """Two (or more) views through one shared encoder and head; loss averaged over view pairs."""

    def __init__(
        self,
        augment: nn.Module,
        encoder: nn.Module,
        head: nn.Module,
        similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        loss: Callable[..., torch.Tensor],
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.augment = augment
        self.encoder = encoder
        self.head = head
        self.similarity = similarity
        self.loss_fn = loss
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``images``: uint8 ``(N, C, H, W)`` on the training device -> ``{"loss": scalar}``."""
        images = batch.images
        zs = gather_all(embed_views(self.augment(images, generator), self.encoder, self.head, self.channels_last))
        pairs = list(combinations(range(len(zs)), 2))
        loss = sum(self.loss_fn(zs[a], zs[b], self.similarity) for a, b in pairs) / len(pairs)
        return {"loss": loss}  # type: ignore[dict-item]


def build_simclr(cfg: SimCLRConfig, parts: Parts, channels_last: bool) -> SimCLR:
    return SimCLR(parts.augment, parts.encoder, parts.extract, parts.similarity,
                  parts.loss, channels_last)
