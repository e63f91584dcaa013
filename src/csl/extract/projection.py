"""Representation extraction: the MLP projection head ``g(·)`` of SimCLR."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class ProjectionConfig:
    """SimCLR's head: ``z = W2 σ(BN(W1 h))`` (arXiv 2002.05709, Sec. 2.1; BN as in SimCLR v2).

    The paper projects to 128 dimensions with a hidden layer the size of the
    representation (2048 for ResNet-50); ``hidden_dim: null`` means "same as the encoder".
    ``layers: 3`` gives the deeper projectors of Barlow Twins and SimSiam;
    ``last_batch_norm`` adds SimSiam's BN (no affine) on the output.
    """

    hidden_dim: int | None = None
    out_dim: int = 128
    batch_norm: bool = True
    layers: int = 2
    last_batch_norm: bool = False

    def validate(self, path: str) -> None:
        if self.out_dim <= 0 or (self.hidden_dim is not None and self.hidden_dim <= 0):
            raise ConfigError(f"'{path}': hidden_dim and out_dim must be positive")
        if self.layers < 2:
            raise ConfigError(f"'{path}.layers' must be >= 2, got {self.layers}")


@dataclass(frozen=True)
class PredictorConfig:
    """The predictor ``q`` of BYOL (Linear-BN-ReLU-Linear, hidden 4096) and SimSiam (hidden
    512, a bottleneck): maps a projection to a prediction of the same size."""

    hidden_dim: int = 512
    batch_norm: bool = True

    def validate(self, path: str) -> None:
        if self.hidden_dim <= 0:
            raise ConfigError(f"'{path}.hidden_dim' must be positive")


class ProjectionHead(nn.Module):
    """``(N, in_dim) -> (N, out_dim)``: (Linear, [BN], ReLU) x (layers - 1), Linear, [BN]."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool, layers: int = 2,
                 last_batch_norm: bool = False) -> None:
        super().__init__()
        self.args = {"in_dim": in_dim, "hidden_dim": hidden_dim, "out_dim": out_dim, "batch_norm": batch_norm,
                     "layers": layers, "last_batch_norm": last_batch_norm}  # rebuilds it (fine-tuning from a layer)
        mods: list[nn.Module] = []
        d = in_dim
        for _ in range(layers - 1):
            mods.append(nn.Linear(d, hidden_dim, bias=not batch_norm))
            if batch_norm:
                mods.append(nn.BatchNorm1d(hidden_dim))
            mods.append(nn.ReLU(inplace=True))
            d = hidden_dim
        mods.append(nn.Linear(d, out_dim, bias=not last_batch_norm))
        if last_batch_norm:
            mods.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*mods)
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def build_projection(cfg: ProjectionConfig, in_dim: int) -> ProjectionHead:
    return ProjectionHead(in_dim, cfg.hidden_dim or in_dim, cfg.out_dim, cfg.batch_norm, cfg.layers,
                          cfg.last_batch_norm)


def build_predictor(cfg: PredictorConfig, dim: int) -> ProjectionHead:
    return ProjectionHead(dim, cfg.hidden_dim, dim, cfg.batch_norm)
