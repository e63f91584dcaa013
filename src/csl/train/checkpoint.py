"""One checkpoint per epoch, ``<dir>/last.ckpt``, with the one before kept as ``prev.ckpt``.

Each write is atomic (the trainer's :class:`~csl.train.checkpoint_io.AtomicCheckpointIO`:
temporary name, fsync, rename); before it, the current ``last.ckpt`` is renamed to
``prev.ckpt``. A checkpoint that cannot be read (truncated by a full disk, a killed copy to
shared storage, bit rot) is detected when resuming and the previous one is used
(:func:`resume_checkpoint`). Rank 0 alone writes.

With a remote (``storage.checkpoints: s3://...``, see :mod:`csl.io.s3`), each new
``last.ckpt`` is uploaded after it is written locally, the remote ``last.ckpt`` first copied
to ``prev.ckpt`` (an S3 PUT is atomic, so the remote pair is always two complete
checkpoints); before training, every process fetches the remote pair into its local
directory (:func:`fetch_remote`), so a job restarted on fresh nodes resumes where it stopped.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import torch

from csl.io import s3


class EpochCheckpoint(L.Callback):
    def __init__(self, directory: Path, remote: str | None = None) -> None:
        self.path = Path(directory) / "last.ckpt"
        self.prev = Path(directory) / "prev.ckpt"
        self.remote = s3.S3Path.parse(remote) if remote else None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.path.is_file():
            os.replace(self.path, self.prev)
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: optimizer, loops, RNG
        if trainer.is_global_zero and self.remote is not None:
            last = self.remote / "last.ckpt"
            if s3.exists(last):
                s3.copy(last, self.remote / "prev.ckpt")
            s3.upload(self.path, last)


def fetch_remote(directory: Path, remote: str) -> list[str]:
    """Download the remote ``last.ckpt``/``prev.ckpt`` (when present) over the local ones.

    The remote pair is authoritative: it is written after the local one, by the same rank.
    Returns the names fetched.
    """
    base = s3.S3Path.parse(remote)
    fetched = []
    for name in ("prev.ckpt", "last.ckpt"):
        if s3.exists(base / name):
            s3.download(base / name, Path(directory) / name)
            fetched.append(name)
    return fetched


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
