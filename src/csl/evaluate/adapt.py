"""Adapt a target dataset's images to an encoder's input for transfer, explicitly and on record:
channels (RGB -> luma with ITU-R BT.601 weights, or grey replicated to 3 channels) and size
(bilinear, antialiased resize)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from csl.errors import CslError

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as PIL's convert("L")


def adapt_images(images: np.ndarray, channels: int, size: int, chunk: int = 4096) -> tuple[np.ndarray, dict[str, Any]]:
    """``uint8 (N, C, H, W)`` -> ``uint8 (N, channels, size, size)`` and what was done."""
    n, c, h, w = images.shape
    steps: list[str] = []
    if c not in (1, 3) or channels not in (1, 3):
        raise CslError(f"cannot adapt {c}-channel images to a {channels}-channel encoder (1 and 3 are supported)")
    if c == 3 and channels == 1:
        steps.append("rgb->luma(BT.601)")
    elif c == 1 and channels == 3:
        steps.append("grey->rgb(replicate)")
    if (h, w) != (size, size):
        steps.append(f"resize {h}x{w}->{size}x{size} (bilinear, antialias)")
    if not steps:
        return images, {"from": [c, h, w], "to": [channels, size, size], "steps": []}
    out = np.empty((n, channels, size, size), dtype=np.uint8)
    weights = torch.tensor(LUMA).view(1, 3, 1, 1)
    for i in range(0, n, chunk):
        x = torch.as_tensor(images[i:i + chunk]).float()
        if c == 3 and channels == 1:
            x = (x * weights).sum(1, keepdim=True)
        elif c == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        if (h, w) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i:i + chunk] = x.round().clamp(0, 255).to(torch.uint8).numpy()
    return out, {"from": [c, h, w], "to": [channels, size, size], "steps": steps}
