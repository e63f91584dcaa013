"""The Lightning module that trains any method: it owns the step, not the method's parts."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from csl.errors import NonFiniteLossError
from csl.methods.base import Batch, Method
from csl.train.optim import OptimizerConfig, build_optimizer
from csl.train.schedule import ScheduleConfig, cosine_ramp, warmup_cosine


LOG_EVERY_N_STEPS = 10
"""Lightning logs (and reads logged values back) every this many steps; the finite-loss check
and the Python-float metrics follow it, so no other step waits on the device."""


def as_batch(batch: Batch | tuple[torch.Tensor, torch.Tensor] | torch.Tensor) -> Batch:
    """The loaders' batches as the method contract's :class:`Batch`: images alone (the in-memory
    loader without labels), ``(images, labels)`` (the shard stream with labels), or a Batch."""
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, (tuple, list)):
        return Batch(batch[0], batch[1])
    return Batch(batch)


@torch.no_grad()
def clip_per_tensor(params: Any, max_norm: float) -> None:
    """DINO's gradient clipping (official ``utils.clip_gradients``): each parameter tensor's gradient
    ``g`` becomes ``g * min(1, max_norm / (||g||_2 + 1e-6))``, independently of the others."""
    for p in params:
        if p.grad is not None:
            norm = p.grad.norm(2)
            p.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))


class PretrainModule(L.LightningModule):
    """Runs ``method.training_loss`` with the augmentation generator, optimizer and schedule.

    State that must survive a resume beyond weights and optimizer (the augmentation RNG) is
    stored in the checkpoint under ``"csl"``.
    """

    method: Method

    def __init__(
        self,
        method: Method,
        optimizer: OptimizerConfig,
        schedule: ScheduleConfig,
        lr: float,
        total_steps: int,
        steps_per_epoch: int,
        seed: int,
        gradient_clip: float | None = None,
    ) -> None:
        super().__init__()
        self.method = method
        self.opt_cfg = optimizer
        self.sched_cfg = schedule
        self.lr = lr
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.warmup_steps = int(round(schedule.warmup_epochs * steps_per_epoch))
        self.seed = seed
        self.gradient_clip = gradient_clip
        self.generator: torch.Generator | None = None
        self._rng_state: torch.Tensor | None = None
        # the first non-finite loss (step, value), kept on the device and read only by
        # check_finite(): no host-device sync per step
        self._bad_step: torch.Tensor | None = None
        self._bad_loss: torch.Tensor | None = None

    def on_fit_start(self) -> None:
        self.generator = torch.Generator(device=self.device)
        # the same seed on every rank: each draws the global batch's parameters and takes its rows
        self.generator.manual_seed(self.seed * 7919)
        if self._rng_state is not None:
            self.generator.set_state(self._rng_state)
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._bad_loss = torch.zeros((), device=self.device)

    def logging_step(self, step: int) -> bool:
        """Whether Lightning reads logged values after ``step`` anyway (every ``LOG_EVERY_N_STEPS``)."""
        return (step + 1) % LOG_EVERY_N_STEPS == 0

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if any step so far had a NaN/inf loss. One device
        read; called every ``LOG_EVERY_N_STEPS`` steps and before every checkpoint
        (:class:`~csl.train.finite.FiniteLossGuard`)."""
        if self._bad_step is None or self._bad_loss is None:
            return
        step = int(self._bad_step)
        if step >= 0:
            epoch = step // self.steps_per_epoch if self.steps_per_epoch else self.current_epoch
            raise NonFiniteLossError(
                f"loss is {float(self._bad_loss)} at epoch {epoch}, step {step}. "
                "The last good checkpoint is kept. Lower optimizer.lr, raise loss.temperature, "
                "or use train.precision: 32-true"
            )

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Before the step: per-step schedules that are not the learning rate. Methods with
        step-dependent settings (teacher temperature, frozen prototypes) get
        ``before_step(step, total_steps, steps_per_epoch)``; the weight decay follows
        ``schedule.weight_decay_final`` when set. All are pure functions of the global step, so
        a resumed run continues with the same values."""
        step = self.global_step
        self.method.before_step(step, self.total_steps, self.steps_per_epoch)
        if self.sched_cfg.weight_decay_final is not None:
            wd = cosine_ramp(step, self.total_steps, self.opt_cfg.weight_decay, self.sched_cfg.weight_decay_final)
            opt = self.optimizers()
            assert not isinstance(opt, list)
            opt.param_groups[0]["weight_decay"] = wd  # group 0 holds the decayed parameters

    def training_step(self, batch: Batch | tuple[torch.Tensor, torch.Tensor] | torch.Tensor,
                      batch_idx: int) -> torch.Tensor:
        assert self.generator is not None
        b = as_batch(batch)
        out = self.method.training_loss(b, self.generator)
        loss = out["loss"]
        self._record_finite(loss.detach())
        # prog_bar=False: Lightning reads progress-bar metrics back after every step
        # (StepProgressBar shows the loss at its refreshes instead)
        self.log("loss", loss.detach(), on_step=True, on_epoch=True, batch_size=int(b.images.shape[0]))
        if self.logging_step(self.global_step):  # a Python float becomes a device tensor: only when it is read
            opt = self.optimizers()
            assert not isinstance(opt, list)
            self.log("lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False)
        return loss

    def _record_finite(self, loss: torch.Tensor) -> None:
        assert self._bad_step is not None and self._bad_loss is not None
        first = ~torch.isfinite(loss) & (self._bad_step < 0)
        self._bad_step = torch.where(first, torch.full_like(self._bad_step, self.global_step), self._bad_step)
        self._bad_loss = torch.where(first, loss.float(), self._bad_loss)

    def on_after_backward(self) -> None:
        self.method.after_backward()

    def on_before_optimizer_step(self, optimizer: Any) -> None:
        if self.gradient_clip is not None:
            clip_per_tensor(self.method.parameters(), self.gradient_clip)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After the optimizer step: update explicit method state (EMA targets) with the
        step-indexed schedule value the method computes from ``(step, total_steps)``."""
        values = self.method.after_step(self.global_step - 1, self.total_steps)
        if self.logging_step(self.global_step - 1):
            for k, v in values.items():
                self.log(k, v, on_step=True, on_epoch=False)

    def configure_optimizers(self) -> Any:
        opt = build_optimizer(self.method, self.opt_cfg, self.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda step: warmup_cosine(step, self.total_steps, self.warmup_steps, self.sched_cfg.final_lr_fraction),
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.generator is not None:
            checkpoint["csl"] = {"aug_rng": self.generator.get_state()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("csl", {}).get("aug_rng")
        self._rng_state = state
