"""DINO (Caron et al., 2021, arXiv 2104.14294): self-distillation with no labels.

A student (encoder + DINO head) sees every view; an EMA teacher of the same architecture sees
the global crops only (Sec. 3.1, Fig. 2). The teacher's outputs are centred and sharpened;
the student matches them with a cross-entropy (:func:`csl.losses.dino_loss`).

State and schedules, all explicit (paper values):

* teacher momentum 0.996 -> 1 with a cosine (:func:`csl.train.schedule.cosine_momentum`);
* centre ``c <- m c + (1 - m) mean(teacher outputs)`` with ``m = 0.9`` (Eq. 4), a buffer;
* teacher temperature warmed up linearly from 0.04 to 0.07 over the first 30 epochs;
* the head's last layer frozen during the first epoch (its gradient is dropped);
* weight decay 0.04 -> 0.4 with a cosine is ``schedule.weight_decay_final`` (ViT runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather_all
from csl.errors import ConfigError
from csl.methods.ema import ema_update, make_target
from csl.methods.views import embed_views, n_global, require_views
from csl.train.schedule import cosine_momentum, linear_warmup


@dataclass(frozen=True)
class DINOConfig:
    momentum_base: float = 0.996
    momentum_final: float = 1.0
    teacher_temperature: float = 0.04
    teacher_temperature_final: float = 0.07
    teacher_temperature_warmup_epochs: float = 30.0
    center_momentum: float = 0.9
    freeze_last_layer_epochs: float = 1.0

    def validate(self, path: str) -> None:
        if not 0 <= self.momentum_base <= self.momentum_final <= 1:
            raise ConfigError(f"'{path}': need 0 <= momentum_base <= momentum_final <= 1")
        if self.teacher_temperature <= 0 or self.teacher_temperature_final <= 0:
            raise ConfigError(f"'{path}': teacher temperatures must be > 0")
        if not 0 <= self.center_momentum < 1:
            raise ConfigError(f"'{path}.center_momentum' must be in [0, 1)")


class DINO(Method):
    center: torch.Tensor

    def __init__(self, cfg: DINOConfig, augment: nn.Module, encoder: nn.Module, head: nn.Module,
                 loss: Callable[..., torch.Tensor], channels_last: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.projector = head
        self.target_encoder = make_target(encoder)
        self.target_projector = make_target(head)
        self.loss_fn = loss
        self.channels_last = channels_last
        self.register_buffer("center", torch.zeros(int(head.out_dim)))  # type: ignore[arg-type]
        self.teacher_temperature = cfg.teacher_temperature
        self.freeze_last = False

    def before_step(self, step: int, total_steps: int, steps_per_epoch: int) -> None:
        c = self.cfg
        warmup = int(round(c.teacher_temperature_warmup_epochs * steps_per_epoch))
        self.teacher_temperature = linear_warmup(step, warmup, c.teacher_temperature, c.teacher_temperature_final)
        self.freeze_last = step < c.freeze_last_layer_epochs * steps_per_epoch

    def after_backward(self) -> None:
        if self.freeze_last:
            for p in getattr(self.projector, "last_layer_parameters", lambda: [])():
                p.grad = None

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        views = self.augment(images, generator)
        ng = n_global(views)  # build_dino checked >= 2 views
        student = gather_all(embed_views(views, self.encoder, self.projector, self.channels_last))
        with torch.no_grad():  # the centre is then the mean over the global batch
            teacher = gather_all(embed_views(views[:ng], self.target_encoder, self.target_projector,
                                             self.channels_last))
        loss = self.loss_fn(student, teacher, self.center, self.teacher_temperature)
        self._update_center(torch.cat(teacher))
        return {"loss": loss}

    @torch.no_grad()
    def _update_center(self, teacher: torch.Tensor) -> None:
        m = self.cfg.center_momentum
        self.center.mul_(m).add_(teacher.mean(dim=0), alpha=1 - m)

    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        m = cosine_momentum(step, total_steps, self.cfg.momentum_base, self.cfg.momentum_final)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)
        return {"momentum": m, "teacher_temperature": self.teacher_temperature}


def build_dino(cfg: DINOConfig, parts: Parts, channels_last: bool) -> DINO:
    require_views(parts.augment, 2, "dino")  # fewer gives no student-teacher pair (NaN in some libraries)
    return DINO(cfg, parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
