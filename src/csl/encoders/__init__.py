"""Part 2 of the framework: encoders ``(N, C, H, W) -> (N, D)`` with an ``out_dim``.

Encoders also state ``min_input_size`` (and ``max_input_size`` where fixed), checked against
every view size before training, and may expose ``feature_maps(x) -> {size: (N, D, s, s)}``
(AMDIM-style comparisons) or ``grid(x)`` (CPC).
"""

from __future__ import annotations

from csl.encoders.amdim import AMDIMEncoder, AMDIMEncoderConfig, build_amdim_encoder
from csl.encoders.patch_grid import PatchGridConfig, PatchGridEncoder, build_patch_grid
from csl.encoders.resnet import ResNetConfig, ResNetEncoder, build_resnet
from csl.encoders.small_cnn import SmallCNN, SmallCNNConfig, build_small_cnn
from csl.encoders.timm_backbone import TimmConfig, TimmEncoder, build_timm
from csl.encoders.vit import ViTConfig, ViTEncoder, build_vit
from csl.registry import Entry

ENCODERS: dict[str, Entry] = {
    "small_cnn": Entry(SmallCNNConfig, build_small_cnn, "small CNN for CPU runs on 28x28/32x32 images"),
    "resnet": Entry(ResNetConfig, build_resnet, "torchvision ResNet-18/34/50, optional CIFAR stem"),
    "amdim": Entry(AMDIMEncoderConfig, build_amdim_encoder, "AMDIM-style encoder with 7x7, 5x5 and 1x1 feature maps"),
    "patch_grid": Entry(PatchGridConfig, build_patch_grid, "CPC: overlapping patch grid, any backbone per patch"),
    "vit": Entry(ViTConfig, build_vit, "Vision Transformer (timm), any input size (interpolated position embeddings)"),
    "timm": Entry(TimmConfig, build_timm, "any timm architecture without its classifier (timm.list_models())"),
}

__all__ = ["ENCODERS", "SmallCNN", "ResNetEncoder", "AMDIMEncoder", "PatchGridEncoder", "TimmEncoder", "ViTEncoder"]
