"""One checkpoint per epoch, ``<dir>/last.ckpt``, written atomically by the trainer's
CheckpointIO; rank 0 writes (Lightning's ``save_checkpoint`` takes care of that)."""

from __future__ import annotations

from pathlib import Path

import lightning as L


class EpochCheckpoint(L.Callback):
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "last.ckpt"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimizer, loops, RNG
