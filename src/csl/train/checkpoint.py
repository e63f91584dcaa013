"""One checkpoint per epoch, ``<dir>/last.ckpt``, with the one before kept as ``prev.ckpt``.

Each write is atomic (the trainer's :class:`~csl.train.checkpoint_io.AtomicCheckpointIO`:
temporary name, fsync, rename); before it, the current ``last.ckpt`` is renamed to
``prev.ckpt``. A checkpoint that cannot be read (truncated by a full disk, a killed copy to
shared storage, bit rot) is detected when resuming and the previous one is used
(:func:`resume_checkpoint`). Rank 0 alone writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch



class EpochCheckpoint(L.Callback):
    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "last.ckpt"
        self.prev = Path(directory) / "prev.ckpt"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.path.is_file():
            os.replace(self.path, self.prev)
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimizer, loops, RNG


def readable(path: Path) -> bool:
    """True when ``path`` loads as a checkpoint (``weights_only=True``) with Lightning's keys."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return False
    return isinstance(ckpt, dict) and "state_dict" in ckpt and "epoch" in ckpt


def resume_checkpoint(directory: Path) -> Path | None:
    """``last.ckpt`` if readable, else ``prev.ckpt`` if readable (with a warning), else None."""
    last, prev = Path(directory) / "last.ckpt", Path(directory) / "prev.ckpt"
    if last.is_file():
        if readable(last):
            return last
        msg = f"checkpoint {last} is unreadable (truncated or corrupt)"
        if prev.is_file() and readable(prev):
            print(f"warning: {msg}; resuming from the one before, {prev}", flush=True)
            return prev
        print(f"warning: {msg} and no readable previous one; training from the start", flush=True)
        return None
    return prev if prev.is_file() and readable(prev) else None
