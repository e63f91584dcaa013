"""Stop on a non-finite loss without reading the loss back to the host every step."""

from __future__ import annotations

from typing import Any

import lightning as L

from csl.train.module import LOG_EVERY_N_STEPS


class FiniteLossGuard(L.Callback):
    """Calls the module's ``check_finite()`` (one device read) every ``LOG_EVERY_N_STEPS``
    steps and at the end of every epoch. It must be the first callback: at epoch end it runs
    before the history row and the checkpoint, so a diverged epoch is never saved and the
    last good checkpoint is kept."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step % LOG_EVERY_N_STEPS == 0:
            pl_module.check_finite()  # type: ignore[operator]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.check_finite()  # type: ignore[operator]
