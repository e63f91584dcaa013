"""Atomic checkpoint writes (temporary name, fsync, rename) and ``weights_only`` loads."""

from __future__ import annotations

import io
import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from csl.errors import CslError
from csl.io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if not os.path.exists(path):
            raise CslError(f"checkpoint {path} does not exist")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as e:
            raise CslError(f"checkpoint {path} is unreadable ({type(e).__name__}: {e}); "
                           "delete it to start the variant afresh") from None
