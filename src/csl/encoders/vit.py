"""Vision Transformer encoders for small and large images (Dosovitskiy et al., 2021, arXiv 2010.11929).

The transformer is timm's ``VisionTransformer`` with the classifier removed. Two settings matter
for self-supervised learning and are explicit here:

* ``dynamic_img_size``: the position embeddings (learned for ``image_size / patch_size`` squared
  patches) are interpolated bicubically to the grid of each input, so DINO's multi-crop sends 28-px
  global and 12-px local crops through the same encoder (arXiv 2104.14294, Sec. 3.1 and App. A).
  Inputs whose size is not a multiple of the patch size are padded (``dynamic_img_pad``).
* ``freeze_patch_embed``: MoCo v3's stability trick (arXiv 2104.02057, Sec. 4.2): the patch
  projection keeps its random initialization (Xavier-uniform over the flattened patch) and gets no
  gradient; the paper measures that this removes the training "dips" of ViT.

``pool: token`` returns the (layer-normalized) class token (DINO, MoCo v3); ``pool: mean`` averages
the patch tokens, then layer-normalizes the average (timm's ``fc_norm``, as MAE does).
Sizes: ViT-Tiny is ``dim 192, depth 12, heads 3`` (DeiT, arXiv 2012.12877); ViT-S ``384 / 12 / 6``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from csl.errors import ConfigError


@dataclass(frozen=True)
class ViTConfig:
    """``image_size``: the size the position embeddings are laid out for (other sizes are
    interpolated); ``patch_size``: pixels per patch side; ``dim``/``depth``/``heads``/``mlp_ratio``:
    the transformer; ``drop_path``: stochastic depth rate (DINO ViT-S: 0.1)."""

    image_size: int = 32
    patch_size: int = 4
    dim: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    pool: Literal["token", "mean"] = "token"
    drop_path: float = 0.0
    freeze_patch_embed: bool = False

    def validate(self, path: str) -> None:
        if min(self.image_size, self.patch_size, self.dim, self.depth, self.heads) <= 0:
            raise ConfigError(f"'{path}': image_size, patch_size, dim, depth and heads must be positive")
        if self.patch_size > self.image_size:
            raise ConfigError(f"'{path}.patch_size' ({self.patch_size}) must be <= image_size ({self.image_size})")
        if self.dim % self.heads:
            raise ConfigError(f"'{path}': dim ({self.dim}) must be a multiple of heads ({self.heads})")
        if not 0 <= self.drop_path < 1:
            raise ConfigError(f"'{path}.drop_path' must be in [0, 1)")


class ViTEncoder(nn.Module):
    """``(N, C, H, W) -> (N, dim)``, any ``H, W >= patch_size`` (position embeddings interpolated)."""

    def __init__(self, in_channels: int, cfg: ViTConfig) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.net = VisionTransformer(
            img_size=cfg.image_size, patch_size=cfg.patch_size, in_chans=in_channels, num_classes=0,
            global_pool="token" if cfg.pool == "token" else "avg", embed_dim=cfg.dim, depth=cfg.depth,
            num_heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, drop_path_rate=cfg.drop_path,
            dynamic_img_size=True, dynamic_img_pad=True)
        self.out_dim = cfg.dim
        self.min_input_size = cfg.patch_size
        self.patch_size = cfg.patch_size
        if cfg.freeze_patch_embed:
            freeze_patch_projection(self.net.patch_embed.proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def freeze_patch_projection(proj: nn.Conv2d) -> None:
    """MoCo v3's random patch projection (official ``vits.py``): Xavier-uniform over the flattened
    patch, ``U(-a, a)`` with ``a = sqrt(6 / (C p^2 + dim))``, then no gradient (weight and bias)."""
    c, p = proj.in_channels, proj.kernel_size[0]
    bound = math.sqrt(6.0 / float(c * p * p + proj.out_channels))
    with torch.no_grad():
        proj.weight.uniform_(-bound, bound)
        if proj.bias is not None:
            proj.bias.zero_()
    for param in proj.parameters():
        param.requires_grad_(False)


def build_vit(cfg: ViTConfig, in_channels: int) -> ViTEncoder:
    return ViTEncoder(in_channels, cfg)
