"""The progress bar: the step loss and learning rate, read from the device only when drawn."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, showing ``loss`` and ``lr`` at each refresh (every
    ``refresh_rate`` steps). The module logs them with ``prog_bar=False``: Lightning converts
    progress-bar metrics to Python numbers after every step, a host-device sync per step."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        loss = trainer.callback_metrics.get("loss_step")
        if isinstance(loss, torch.Tensor):
            items["loss"] = f"{float(loss):.4f}"
        if trainer.optimizers:
            items["lr"] = f"{trainer.optimizers[0].param_groups[0]['lr']:.3g}"
        return items
