"""Extract frozen-encoder features for a whole split, once, in eval mode."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from csl.augment.view import normalize
from csl.precision import autocast as fast_autocast


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: np.ndarray,
    mean: list[float],
    std: list[float],
    batch_size: int = 1024,
    device: str | torch.device = "cpu",
    desc: str = "features",
    progress: bool = True,
) -> torch.Tensor:
    """``uint8 (N, C, H, W) -> float32 (N, D)`` with the dataset's normalization (bf16 autocast
    where it pays: :mod:`csl.precision`)."""
    encoder = encoder.to(device).eval()
    m = torch.tensor(mean, device=device)
    s = torch.tensor(std, device=device)
    src = torch.as_tensor(images)
    out = []
    autocast = fast_autocast(device)
    for i in tqdm(range(0, len(src), batch_size), desc=desc, unit="batch", mininterval=2.0, disable=not progress):
        x = normalize(src[i : i + batch_size].to(device), m, s)
        with autocast:
            out.append(encoder(x).float())
    return torch.cat(out)


def stream_features(encoder: torch.nn.Module, root: str, size: int, channels: int, mean: list[float],
                    std: list[float], batch_size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen-encoder features of every sample of the shards under ``root``, with their labels."""
    from csl.data.shards import ShardStream

    encoder = encoder.to(device).eval()
    m, s = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    feats, labels = [], []
    stream = ShardStream(root, batch_size, size, channels, buffer=1, drop_last=False,
                         device=device if device.startswith("cuda") else "cpu")
    with torch.no_grad(), fast_autocast(device):
        for x, y in stream:
            feats.append(encoder(normalize(x.to(device), m, s)).float().cpu())
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)
