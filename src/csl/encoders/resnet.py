"""torchvision ResNets with the CIFAR stem used for small images.

For 32x32 inputs SimCLR (arXiv 2002.05709, Appendix B.9) replaces the first 7x7 stride-2
convolution with a 3x3 stride-1 convolution and removes the first max pooling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torchvision
from torch import nn


@dataclass(frozen=True)
class ResNetConfig:
    """``depth`` 18 or 50; ``cifar_stem`` as in SimCLR's CIFAR-10 experiments."""

    depth: Literal[18, 34, 50] = 18
    cifar_stem: bool = True


class ResNetEncoder(nn.Module):
    """``(N, C, H, W) -> (N, 512)`` for ResNet-18/34, ``(N, 2048)`` for ResNet-50."""

    def __init__(self, in_channels: int, depth: int, cifar_stem: bool) -> None:
        super().__init__()
        net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        if cifar_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.out_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net
        # the input must survive the stem and four stages with at least one pixel per stride
        self.min_input_size = 8 if cifar_stem else 32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def feature_maps(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{s: last map (N, D, s, s), 1: pooled (N, D, 1, 1)}`` for AMDIM-style comparisons."""
        n = self.net
        h = n.layer4(n.layer3(n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))))
        return {h.shape[-1]: h, 1: h.mean(dim=(2, 3), keepdim=True)}


def build_resnet(cfg: ResNetConfig, in_channels: int) -> ResNetEncoder:
    return ResNetEncoder(in_channels, cfg.depth, cfg.cifar_stem)
