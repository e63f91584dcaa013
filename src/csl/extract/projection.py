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
    """

    hidden_dim: int | None = None
    out_dim: int = 128
    batch_norm: bool = True

    def validate(self, path: str) -> None:
        if self.out_dim <= 0 or (self.hidden_dim is not None and self.hidden_dim <= 0):
            raise ConfigError(f"'{path}': hidden_dim and out_dim must be positive")


class ProjectionHead(nn.Module):
    """``(N, in_dim) -> (N, out_dim)``: Linear, [BN], ReLU, Linear."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def build_projection(cfg: ProjectionConfig, in_dim: int) -> ProjectionHead:
    return ProjectionHead(in_dim, cfg.hidden_dim or in_dim, cfg.out_dim, cfg.batch_norm)
