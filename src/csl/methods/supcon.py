"""SupCon (Khosla et al., 2020, arXiv 2004.11362) as a composition of the five parts.

augment: two (or more) views per image -> encoder -> projection head -> similarity -> the
supervised contrastive loss, whose positives are every view of every image of the anchor's class
(:func:`csl.losses.supcon.supcon`). It sees labels: in csl's tables it is the supervised
reference, not a self-supervised method. Under DDP the views and the labels of every rank are
gathered, so the positives and negatives are those of the global batch. The official recipe
(HobbitLong/SupContrast): SimCLR's augmentation, an MLP head to 128-d, ``tau = 0.07``, large
batches; ``csl`` takes the augmentation, encoder, head and similarity from params.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
from torch import nn

from csl.distributed import gather, gather_all
from csl.methods.base import Batch, Method, Needs, Parts
from csl.methods.views import embed_views, require_views


@dataclass(frozen=True)
class SupConConfig:
    """SupCon has no settings beyond its parts (the loss holds the temperatures)."""


class SupCon(Method):
    """Views through one shared encoder and head; the supervised contrastive loss over all views."""

    needs: ClassVar[Needs] = Needs(labels=True)

    def __init__(self, augment: nn.Module, encoder: nn.Module, head: nn.Module,
                 similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 loss: Callable[..., torch.Tensor], channels_last: bool = False) -> None:
        super().__init__()
        self.augment = augment
        self.encoder = encoder
        self.head = head
        self.similarity = similarity
        self.loss_fn = loss
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if batch.labels is None:
            raise ValueError("SupCon needs the batch's labels (the data path loads them when a method needs them)")
        zs = gather_all(embed_views(self.augment(batch.images, generator), self.encoder, self.head,
                                    self.channels_last))
        return {"loss": self.loss_fn(zs, gather(batch.labels), self.similarity)}


def build_supcon(cfg: SupConConfig, parts: Parts, channels_last: bool) -> SupCon:
    require_views(parts.augment, 1, "supcon")
    return SupCon(parts.augment, parts.encoder, parts.extract, parts.similarity, parts.loss, channels_last)
