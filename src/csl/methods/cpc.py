"""CPC v2 (Hénaff et al., 2019, arXiv 1905.09272; CPC, van den Oord et al., 2018,
arXiv 1807.03748): predict the representations of patches below from a context over the rows
above.

The encoder must be ``patch_grid`` (an overlapping grid of patches, each encoded by a
backbone) giving ``z`` of shape ``(N, D, R, R)``. A context network masked so that position
``(r, c)`` sees rows ``<= r`` only (CPC v2's PixelCNN-style context, here residual causal
convolutions) gives ``c_{r,c}``; a linear map ``W_k`` per step predicts ``z_{r+k,c}`` for
``k = 1..K``, scored by :func:`csl.losses.cpc_infonce` against every patch of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather, gather_all
from csl.errors import ConfigError


@dataclass(frozen=True)
class CPCConfig:
    """``prediction_steps``: rows ahead (lightning-bolts' CIFAR-10 CPC v2 predicts 3 rows on a
    7x7 grid); ``context_layers`` residual causal blocks of width ``context_dim`` (null = D)."""

    prediction_steps: int = 3
    context_layers: int = 2
    context_dim: int | None = None

    def validate(self, path: str) -> None:
        if self.prediction_steps < 1 or self.context_layers < 1:
            raise ConfigError(f"'{path}': prediction_steps and context_layers must be >= 1")

    def check_composition(self, train: Any, parts: Any, path: str) -> None:
        if parts["encoder"].name != "patch_grid":
            raise ConfigError(f"method 'cpc' needs encoder 'patch_grid' (patches of the image, any backbone), "
                              f"got '{parts['encoder'].name}'")


class CausalBlock(nn.Module):
    """``x + conv1x1(relu(causal 3x3 conv(relu(x))))``; the 3x3 conv sees only rows ``<= r``
    (two rows of zero padding on top, none below)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, hidden, 3)
        self.out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(F.pad(F.relu(x), (1, 1, 2, 0)))  # pad (left, right, top, bottom)
        return x + self.out(F.relu(h))


class CPC(Method):
    def __init__(self, cfg: CPCConfig, augment: nn.Module, encoder: nn.Module, loss: Callable[..., torch.Tensor],
                 channels_last: bool, image_size: int) -> None:
        super().__init__()
        grid = getattr(encoder, "grid_size", None)
        if not callable(grid):
            raise ConfigError("method 'cpc' needs encoder 'patch_grid'")
        rows = grid(image_size)
        if cfg.prediction_steps >= rows:
            raise ConfigError(f"method.prediction_steps ({cfg.prediction_steps}) must be below the patch grid's "
                              f"{rows} rows at {image_size} px; lower it or use smaller patches/stride")
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        dim = int(encoder.out_dim)  # type: ignore[arg-type]
        self.context = nn.Sequential(*[CausalBlock(dim, cfg.context_dim or dim) for _ in range(cfg.context_layers)])
        self.predictors = nn.ModuleList([nn.Conv2d(dim, dim, 1) for _ in range(cfg.prediction_steps)])
        self.loss_fn = loss
        self.channels_last = channels_last

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        x = self.augment(images, generator)[0]
        z = self.encoder.grid(x)  # type: ignore[operator]  # z: N x D x R x R
        c = self.context(z)
        preds = [w(c) for w in self.predictors]
        return {"loss": self.loss_fn(gather_all(preds), gather(z))}  # negatives from every rank's patches


def build_cpc(cfg: CPCConfig, parts: Parts, channels_last: bool) -> CPC:
    return CPC(cfg, parts.augment, parts.encoder, parts.loss, channels_last, parts.image_size)
