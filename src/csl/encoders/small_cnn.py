"""A small CPU-friendly convolutional encoder for 28x28 and 32x32 images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class SmallCNNConfig:
    """Stage widths; each stage halves the resolution (3x3 stride-2 conv, then a 3x3 conv).

    The default ``[32, 64, 128]`` costs about 12 MFLOP per 28x28 image forward and gives a
    128-d representation after global average pooling.
    """

    widths: list[int] = (32, 64, 128)  # type: ignore[assignment]

    def validate(self, path: str) -> None:
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ConfigError(f"'{path}.widths' must be a non-empty list of positive ints")


def _conv_bn_relu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """``(N, C, H, W) -> (N, widths[-1])``: conv stages, then global average pooling."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += _conv_bn_relu(c, w, stride=2) + _conv_bn_relu(w, w, stride=1)
            c = w
        self.features = nn.Sequential(*layers)
        self.out_dim = c
        self.min_input_size = 2 ** (len(widths) - 1)  # the last stage still sees 2x2 pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))  # (N, C, h, w) -> (N, C)

    def feature_maps(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{s: last map (N, C, s, s), 1: pooled (N, C, 1, 1)}`` for AMDIM-style comparisons."""
        h = self.features(x)
        return {h.shape[-1]: h, 1: h.mean(dim=(2, 3), keepdim=True)}


def build_small_cnn(cfg: SmallCNNConfig, in_channels: int) -> SmallCNN:
    return SmallCNN(in_channels, list(cfg.widths))
