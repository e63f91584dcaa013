"""CPC's patch encoder (van den Oord et al., 2018, arXiv 1807.03748, Sec. 3.1; CPC v2,
arXiv 1905.09272, Sec. 2): the image is cut into an overlapping grid of patches, each patch is
encoded independently by a backbone encoder, giving a grid of vectors ``(N, D, R, R)``.

The representation for evaluation is the mean of the grid (CPC v2 pools the patch vectors).
CIFAR-10 in lightning-bolts' CPC v2: 8 px patches with 4 px overlap (a 7x7 grid).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class PatchGridConfig:
    """``backbone`` is any registered encoder spec, applied to every patch."""

    patch: int = 8
    stride: int = 4
    backbone: dict[str, Any] = field(default_factory=lambda: {"name": "small_cnn"})

    def validate(self, path: str) -> None:
        from csl.encoders import ENCODERS
        from csl.registry import parse_spec

        if self.patch < 2 or not 1 <= self.stride <= self.patch:
            raise ConfigError(f"'{path}': need patch >= 2 and 1 <= stride <= patch")
        if self.backbone.get("name") == "patch_grid":
            raise ConfigError(f"'{path}.backbone' cannot itself be a patch grid")
        parse_spec(ENCODERS, "encoder", self.backbone, f"{path}.backbone")


class PatchGridEncoder(nn.Module):
    def __init__(self, backbone: nn.Module, patch: int, stride: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch = patch
        self.stride = stride
        self.out_dim = int(backbone.out_dim)  # type: ignore[arg-type]
        self.min_input_size = patch + stride  # at least a 2x2 grid

    def grid_size(self, size: int) -> int:
        return (size - self.patch) // self.stride + 1

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, S, S) -> (N, D, R, R)`` with ``R = (S - patch) // stride + 1``."""
        n, c = x.shape[:2]
        p = x.unfold(2, self.patch, self.stride).unfold(3, self.patch, self.stride)  # p: N x C x R x R x P x P
        rows, cols = p.shape[2], p.shape[3]
        patches = p.permute(0, 2, 3, 1, 4, 5).reshape(n * rows * cols, c, self.patch, self.patch)
        z = self.backbone(patches)  # z: (N*R*R) x D
        return z.reshape(n, rows, cols, -1).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.grid(x).mean(dim=(2, 3))


def build_patch_grid(cfg: PatchGridConfig, in_channels: int) -> PatchGridEncoder:
    from csl.encoders import ENCODERS
    from csl.registry import build, parse_spec

    spec = parse_spec(ENCODERS, "encoder", cfg.backbone, "encoder.backbone")
    return PatchGridEncoder(build(ENCODERS, spec, in_channels=in_channels), cfg.patch, cfg.stride)
