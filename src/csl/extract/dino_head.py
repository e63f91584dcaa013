"""DINO's projection head (Caron et al., 2021, arXiv 2104.14294, Sec. 3.1 and App.):
a 3-layer MLP (hidden 2048, GELU) to a 256-d bottleneck, L2 normalization, then a
weight-normalized linear layer to ``K = 65,536`` dimensions whose norm is fixed to 1
(``norm_last_layer``). No batch norm (ViT); the paper's ResNet-50 run adds BN to the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class DINOHeadConfig:
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    out_dim: int = 65536
    layers: int = 3
    batch_norm: bool = False
    norm_last_layer: bool = True

    def validate(self, path: str) -> None:
        if min(self.hidden_dim, self.bottleneck_dim, self.out_dim) <= 0:
            raise ConfigError(f"'{path}': hidden_dim, bottleneck_dim and out_dim must be positive")
        if self.layers < 1:
            raise ConfigError(f"'{path}.layers' must be >= 1")


class DINOHead(nn.Module):
    """``(N, in_dim) -> (N, out_dim)``. ``last_layer`` is ``W = g V / ||V||`` per output row,
    with ``g = 1`` fixed when ``norm_last_layer``; it is frozen in DINO's first epoch."""

    def __init__(self, in_dim: int, cfg: DINOHeadConfig) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(cfg.layers - 1):
            mods.append(nn.Linear(d, cfg.hidden_dim))
            if cfg.batch_norm:
                mods.append(nn.BatchNorm1d(cfg.hidden_dim))
            mods.append(nn.GELU())
            d = cfg.hidden_dim
        mods.append(nn.Linear(d, cfg.bottleneck_dim))
        self.mlp = nn.Sequential(*mods)
        self.last_v = nn.Parameter(torch.empty(cfg.out_dim, cfg.bottleneck_dim))
        nn.init.trunc_normal_(self.last_v, std=0.02)
        self.last_g = nn.Parameter(torch.ones(cfg.out_dim, 1), requires_grad=not cfg.norm_last_layer)
        self.out_dim = cfg.out_dim

    def last_layer_parameters(self) -> list[nn.Parameter]:
        return [self.last_v, self.last_g]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(h), dim=-1)
        w = self.last_g * F.normalize(self.last_v, dim=1)  # w: K x bottleneck, rows of norm g
        return x @ w.T


def build_dino_head(cfg: DINOHeadConfig, in_dim: int) -> DINOHead:
    return DINOHead(in_dim, cfg)
