"""Part 2 of the framework: encoders ``(N, C, H, W) -> (N, D)`` with an ``out_dim``."""

from __future__ import annotations

from csl.encoders.resnet import ResNetConfig, ResNetEncoder, build_resnet
from csl.encoders.small_cnn import SmallCNN, SmallCNNConfig, build_small_cnn
from csl.registry import Entry

ENCODERS: dict[str, Entry] = {
    "small_cnn": Entry(SmallCNNConfig, build_small_cnn, "small CNN for CPU runs on 28x28/32x32 images"),
    "resnet": Entry(ResNetConfig, build_resnet, "torchvision ResNet-18/34/50, optional CIFAR stem"),
}

__all__ = ["ENCODERS", "SmallCNN", "ResNetEncoder"]
