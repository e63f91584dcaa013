"""An AMDIM-style encoder that exposes feature maps at three scales (Bachman et al., 2019,
arXiv 1906.00910, Sec. 3.3 and Fig. 1).

AMDIM compares the global feature (1x1) of one view with the local features of the other
(5x5 and 7x7 maps), and 5x5 with 5x5. This is a reduced-width version of its design for
28-32 px images: a strided conv trunk down to a 7x7 map, a valid 3x3 conv to 5x5, and a valid
5x5 conv to 1x1, each followed by a residual 1x1 block (AMDIM's "NiN" blocks) so every
location has a non-linear embedding. The representation for evaluation is the 1x1 feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class AMDIMEncoderConfig:
    """Widths of the trunk (two stride-2 stages), the 5x5 stage and the 1x1 stage."""

    widths: tuple[int, int, int, int] = (32, 64, 128, 256)

    def validate(self, path: str) -> None:
        if any(w <= 0 for w in self.widths):
            raise ConfigError(f"'{path}.widths' must be positive")


def _cbr(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class NiNBlock(nn.Module):
    """``x + conv1x1(relu(bn(conv1x1(x))))``: a per-location residual MLP."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_cbr(c, c, 1), nn.Conv2d(c, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class AMDIMEncoder(nn.Module):
    """``(N, C, S, S) -> (N, widths[3])`` with ``feature_maps`` giving ``{7: ..., 5: ..., 1: ...}``."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.trunk = nn.Sequential(*_cbr(in_channels, w0, 3, 1, 1), *_cbr(w0, w0, 3, 2, 1),
                                   *_cbr(w0, w1, 3, 1, 1), *_cbr(w1, w1, 3, 2, 1))
        self.block7 = NiNBlock(w1)
        self.to5 = nn.Sequential(*_cbr(w1, w2, 3), NiNBlock(w2))
        self.to1 = nn.Sequential(*_cbr(w2, w3, 5), NiNBlock(w3))
        self.out_dim = w3
        self.min_input_size = 25  # the trunk must give at least 7x7 before pooling to 7x7
        self.max_input_size = 64

    def feature_maps(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        h7 = self.block7(F.adaptive_avg_pool2d(self.trunk(x), 7))  # h7: N x w1 x 7 x 7
        h5 = self.to5(h7)  # h5: N x w2 x 5 x 5
        h1 = self.to1(h5)  # h1: N x w3 x 1 x 1
        return {7: h7, 5: h5, 1: h1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(x)[1].flatten(1)


def build_amdim_encoder(cfg: AMDIMEncoderConfig, in_channels: int) -> AMDIMEncoder:
    return AMDIMEncoder(in_channels, cfg.widths)
