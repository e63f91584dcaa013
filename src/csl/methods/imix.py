"""i-Mix (Lee et al., ICLR 2021, arXiv 2010.08887; official code kibok90/imix) on SimCLR's N-pair
form (``imix``) and on MoCo v2 (``imix_moco``: the query input is mixed, the batch's keys join the
queue as candidates, the target is mixed the same way; :func:`csl.losses.info_nce.info_nce`'s
``mix``). N-pair: view 1 of every image is mixed with view 1 of a partner, ``x~_i = lam x_i + (1 - lam)
x_pi(i)``, and the loss scores its embedding against the view-2 embeddings of the batch with the
mixed virtual label (:func:`csl.losses.imix.imix_npair`). ``lam ~ Beta(alpha, alpha)``, then
``lam = max(lam, 1 - lam)``; ``alpha = 1`` (the official CIFAR setting).

Under DDP the partners are drawn over the global batch (the same permutation on every rank, from
the augmentation generator) and the view-1 inputs are gathered (without gradient: they are
inputs) so that each rank mixes its rows with partners from any rank: two processes compute what
one process with the global batch computes.

It needs a loss over instance logits with virtual labels (kind ``mixed_instance``); a method
without instance logits (BYOL, SimSiam, ...) cannot use i-Mix's loss, and i-Mix cannot use theirs:
both are refused at config time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from csl.distributed import gather, gather_all, rank
from csl.errors import ConfigError
from csl.losses.imix import sample_beta
from csl.methods.base import Batch, Method, Parts
from csl.methods.moco import MoCo, MoCoV2Config
from csl.methods.views import embed_views, require_views


@dataclass(frozen=True)
class IMixConfig:
    """``alpha``: the Beta distribution's parameter (official CIFAR-10: 1.0)."""

    alpha: float = 1.0

    def validate(self, path: str) -> None:
        if self.alpha <= 0:
            raise ConfigError(f"'{path}.alpha' must be > 0")


class IMix(Method):
    def __init__(self, cfg: IMixConfig, augment: nn.Module, encoder: nn.Module, head: nn.Module,
                 similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 loss: Callable[..., torch.Tensor], channels_last: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.head = head
        self.similarity = similarity
        self.loss_fn = loss
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = self.augment(batch.images, generator)[:2]
        n = v1.shape[0]
        everyone = gather(v1)  # the global batch's view-1 inputs (no gradient: inputs)
        perm = torch.randperm(everyone.shape[0], generator=generator, device=generator.device).to(v1.device)
        lam = sample_beta(self.cfg.alpha, generator).to(v1.device)
        lam = torch.maximum(lam, 1 - lam)
        mine = perm[rank() * n:(rank() + 1) * n]
        mixed = lam * v1 + (1 - lam) * everyone[mine]
        z_mixed, z_keys = gather_all(embed_views([mixed.to(v1.dtype), v2], self.encoder, self.head,
                                                 self.channels_last))
        return {"loss": self.loss_fn(z_mixed, z_keys, perm, lam, self.similarity)}


@dataclass(frozen=True)
class IMixMoCoConfig(MoCoV2Config):
    """MoCo v2's settings and i-Mix's ``alpha`` (official: 1.0)."""

    alpha: float = 1.0

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.alpha <= 0:
            raise ConfigError(f"'{path}.alpha' must be > 0")


def build_imix_moco(cfg: IMixMoCoConfig, parts: Parts, channels_last: bool) -> MoCo:
    require_views(parts.augment, 2, "imix_moco", same_size=True)
    return MoCo(cfg.settings(), parts.augment, parts.encoder, parts.extract, parts.loss, channels_last,
                imix_alpha=cfg.alpha)


def build_imix(cfg: IMixConfig, parts: Parts, channels_last: bool) -> IMix:
    require_views(parts.augment, 2, "imix", same_size=True)
    return IMix(cfg, parts.augment, parts.encoder, parts.extract, parts.similarity, parts.loss, channels_last)
