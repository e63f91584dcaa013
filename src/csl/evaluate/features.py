"""Extract frozen-encoder features for a whole split, once, in eval mode."""

from __future__ import annotations

from typing import Any

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
    """Frozen-encoder features of every sample of the shards under ``root``, with their labels
    (-1 for shards without labels), in the order of :func:`heldout_stream`."""
    encoder = encoder.to(device).eval()
    m, s = torch.tensor(mean, device=device), torch.tensor(std, device=device)
    feats, labels = [], []
    stream = heldout_stream(root, batch_size, size, channels, device)
    with torch.no_grad(), fast_autocast(device):
        for x, y in stream:
            feats.append(encoder(normalize(x.to(device), m, s)).float().cpu())
            labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def heldout_stream(root: str, batch_size: int, size: int, channels: int, device: str = "cpu") -> Any:
    """Every sample of the shards under ``root`` once, in one fixed order, as ``(uint8 images, labels)``
    batches (the evaluation transform; labels -1 without labels): the order the features are in."""
    from csl.data.shards import ShardStream, read_index

    class _WithLabels:  # (images, -1 labels) for shards without labels, as for labelled ones
        def __init__(self, stream: ShardStream) -> None:
            self.stream = stream

        def __iter__(self) -> Any:
            for x in self.stream:
                yield x, torch.full((x.shape[0],), -1, dtype=torch.int64)

    labelled = bool(read_index(root).get("labelled", True))
    stream = ShardStream(root, batch_size, size, channels, buffer=1, drop_last=False, labels=labelled,
                         device=device if device.startswith("cuda") else "cpu")
    return stream if labelled else _WithLabels(stream)


def heldout_images(data: Any, rows: np.ndarray) -> np.ndarray:
    """uint8 ``(len(rows), C, S, S)``: the held-out images at these rows of the test features (the
    evaluation transform; for shards, in the order the features were computed in, read only as far
    as the last row wanted). ``data``: a :class:`csl.data.prepared.Prepared`."""
    from csl.data.dataset import Split

    test = data.test
    if isinstance(test, Split):
        return test.images[rows]
    meta = data.meta
    wanted = {int(r): i for i, r in enumerate(rows)}
    last = max(wanted, default=-1)
    out: list[np.ndarray | None] = [None] * len(rows)
    start = 0
    for x, _ in heldout_stream(test.root, 256, int(meta["shape"][1]), int(meta["shape"][0])):
        for j in range(x.shape[0]):
            if start + j in wanted:
                out[wanted[start + j]] = x[j].numpy()
        start += x.shape[0]
        if start > last:
            break
    return np.stack([o for o in out if o is not None])
