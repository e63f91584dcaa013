"""SwAV (Caron et al., 2020, arXiv 2006.09882): online clustering with swapped prediction.

Views (typically multi-crop: 2 global + ``V`` local crops) go through the encoder and the
projection head; the L2-normalized projections are scored against ``K`` prototypes whose
rows are re-normalized before every step (Sec. 4, "we normalize the prototypes"). Codes come
from Sinkhorn-Knopp on the global crops only; every other view predicts them.

State, all explicit and checkpointed: the prototypes (a parameter, frozen for the first
epoch as in the paper's ``freeze_prototypes_niters``) and the optional queue of past global
projections (``queue_length``, 3840 in the paper for batch 256; it joins after
``queue_start_epoch``, 15 in the paper), held in the ``queue`` buffer with ``queue_count``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather_all
from csl.errors import ConfigError
from csl.methods.views import embed_views, n_global, require_views


@dataclass(frozen=True)
class SwAVConfig:
    """Paper defaults (ImageNet): 3000 prototypes, prototypes frozen 1 epoch, no queue at
    large batch (3840 at batch 256, from epoch 15)."""

    prototypes: int = 3000
    freeze_prototypes_epochs: float = 1.0
    queue_length: int = 0
    queue_start_epoch: float = 15.0

    def validate(self, path: str) -> None:
        if self.prototypes < 2:
            raise ConfigError(f"'{path}.prototypes' must be >= 2")
        if self.freeze_prototypes_epochs < 0 or self.queue_start_epoch < 0 or self.queue_length < 0:
            raise ConfigError(f"'{path}': freeze_prototypes_epochs, queue_length, queue_start_epoch must be >= 0")

    def check_composition(self, train: Any, parts: Any, path: str) -> None:
        global_batch = train.batch_size * train.devices * train.num_nodes
        if self.queue_length and self.queue_length % global_batch:
            raise ConfigError(f"'{path}.queue_length' ({self.queue_length}) must be a multiple of the global batch "
                              f"({global_batch} = train.batch_size x devices x num_nodes)")


class SwAV(Method):
    queue: torch.Tensor
    queue_count: torch.Tensor

    def __init__(self, cfg: SwAVConfig, augment: nn.Module, encoder: nn.Module, head: nn.Module,
                 loss: Callable[..., torch.Tensor], channels_last: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.projector = head
        dim = int(head.out_dim)  # type: ignore[arg-type]
        self.prototypes = nn.Linear(dim, cfg.prototypes, bias=False)
        self.loss_fn = loss
        self.channels_last = channels_last
        self.n_assign = 2
        self.register_buffer("queue", torch.zeros(self.n_assign, cfg.queue_length, dim))
        self.register_buffer("queue_count", torch.zeros((), dtype=torch.long))
        self.frozen = False
        self.queue_on = False
        self._count: int | None = None  # host mirror of queue_count: no device read per step

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._count = None  # the loaded buffer is read once, at the next step

    def before_step(self, step: int, total_steps: int, steps_per_epoch: int) -> None:
        self.frozen = step < self.cfg.freeze_prototypes_epochs * steps_per_epoch
        self.queue_on = self.cfg.queue_length > 0 and step >= self.cfg.queue_start_epoch * steps_per_epoch

    def after_backward(self) -> None:
        """The prototypes stay fixed while frozen: SwAV drops their gradient after backward."""
        if self.frozen:
            for p in self.prototypes.parameters():
                p.grad = None

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        views = self.augment(images, generator)
        assign = list(range(min(self.n_assign, n_global(views))))  # build_swav checked >= 2 views
        zs = gather_all([F.normalize(z, dim=1)
                         for z in embed_views(views, self.encoder, self.projector, self.channels_last)])
        scores = [self.prototypes(z.to(self.prototypes.weight.dtype)).float() for z in zs]
        queued = None
        if self.queue_on:
            if self._count is None:
                self._count = int(self.queue_count)
            full = self._count >= self.cfg.queue_length
            with torch.no_grad():
                queued = [self.prototypes(self.queue[i]).float() if full else None for i in assign]
            self._enqueue([zs[i].detach() for i in assign])
        return {"loss": self.loss_fn(scores, assign, queued)}

    @torch.no_grad()
    def _enqueue(self, zs: list[torch.Tensor]) -> None:
        n = zs[0].shape[0]
        for i, z in enumerate(zs):
            self.queue[i, n:] = self.queue[i, :-n].clone()  # shift, newest first (the paper's order)
            self.queue[i, :n] = z
        self.queue_count.add_(n)
        self._count = (self._count or 0) + n


def build_swav(cfg: SwAVConfig, parts: Parts, channels_last: bool) -> SwAV:
    require_views(parts.augment, 2, "swav")
    return SwAV(cfg, parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
