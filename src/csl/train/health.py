"""The online health check of pretraining and its collapse guard (:class:`~csl.train.config.HealthConfig`).

A fixed batch of held-out images goes through the method's ``health_embedding`` (the encoder, or
the projection where collapse shows first; eval mode, no gradient) at the end of
every epoch, and every ``every_steps`` steps when set; the label-free measures of the embeddings
(RankMe, uniformity, the per-dimension std and its ratio to ``1/sqrt(d)``) are logged as
``health/<name>`` in the epoch's row (MLflow, ``history.json``) and shown in its progress line
(checks between epochs as ``health_step/<name>``, at their step). Every process computes them on the
same images with the same (synchronised) weights, so every process reaches the same decision:
after ``patience`` consecutive collapsed checks all raise :class:`~csl.errors.CollapseError`
together and the run stops, its last good checkpoint kept.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch

from csl.augment.view import normalize
from csl.data.prepared import Prepared
from csl.errors import CollapseError
from csl.evaluate.label_free import health
from csl.methods.base import Method
from csl.train.config import HealthConfig
from csl.train.history import MetricSink


def heldout_batch(data: Prepared, n: int) -> np.ndarray:
    """The first ``n`` held-out images, uint8 ``(n, C, S, S)`` (the evaluation transform)."""
    from csl.evaluate.features import heldout_images

    return heldout_images(data, np.arange(min(n, int(data.meta["num_test"]))))


class HealthMonitor(L.Callback):
    """``images``: uint8 ``(n, C, S, S)`` held-out images (the evaluation transform)."""

    def __init__(self, cfg: HealthConfig, images: np.ndarray | torch.Tensor, mean: list[float], std: list[float],
                 sink: MetricSink | None = None) -> None:
        self.cfg = cfg
        self.images = torch.as_tensor(images)
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)
        self.sink = sink
        self.low = 0  # consecutive collapsed checks
        self.last: dict[str, float] = {}
        self.checks: list[dict[str, float]] = []  # every check: step, measures

    @torch.no_grad()
    def measure(self, pl_module: L.LightningModule) -> dict[str, float]:
        method: Method = pl_module.method  # type: ignore[assignment]
        was = method.training
        method.eval()
        try:
            dev = pl_module.device
            x = normalize(self.images.to(dev), self.mean.to(dev), self.std.to(dev))
            z = torch.cat([method.health_embedding(x[i:i + 256]).float() for i in range(0, len(x), 256)])
        finally:
            method.train(was)
        return health(z.cpu())

    def check(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch_end: bool) -> None:
        values = self.measure(pl_module)
        self.last = values
        step = int(trainer.global_step)
        self.checks.append({"step": float(step), **values})
        if not epoch_end and self.sink is not None and trainer.is_global_zero:  # epochs: in the epoch's row
            self.sink({f"health_step/{k}": v for k, v in values.items()}, step)
        collapsed = [f"{name} {values[name]:.4g} < {limit}" for name, limit in
                     (("rankme", self.cfg.rankme_min), ("std_ratio", self.cfg.std_ratio_min)) if values[name] < limit]
        self.low = self.low + 1 if collapsed else 0
        if self.low >= self.cfg.patience:
            raise CollapseError(
                f"the embeddings collapsed: {', '.join(collapsed)} at step {step} (epoch {trainer.current_epoch}), "
                f"{self.low} checks in a row (health.patience {self.cfg.patience}). Training stopped; the last "
                "checkpoint is kept. Check the method's collapse safeguards (stop-gradient, predictor, EMA "
                "momentum, temperature), lower the learning rate, or tune/disable health.rankme_min, "
                "health.std_ratio_min")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        every = self.cfg.every_steps
        if every is not None and trainer.global_step % every == 0:
            self.check(trainer, pl_module, epoch_end=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, pl_module, epoch_end=True)

    def epoch_values(self) -> dict[str, float]:
        """The last check's measures as ``health/<name>`` (the epoch's row of :class:`EpochHistory`)."""
        return {f"health/{k}": v for k, v in self.last.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"low": self.low, "checks": self.checks}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.low = int(state_dict.get("low", 0))
        self.checks = list(state_dict.get("checks", []))
