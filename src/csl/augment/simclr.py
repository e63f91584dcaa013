"""SimCLR's augmentation recipe (Chen et al., 2020, arXiv 2002.05709, Appendix A).

Random resized crop (scale 0.08-1, ratio 3/4-4/3) with horizontal flip (p 0.5); colour
distortion of strength ``s``: jitter brightness/contrast/saturation ``0.8 s`` and hue
``0.2 s`` with p 0.8, then grayscale with p 0.2; Gaussian blur (p 0.5, sigma 0.1-2.0,
kernel 10% of the side) on ImageNet, omitted for CIFAR-10 (Appendix B.9, where ``s=0.5``).
Two views of every image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csl.augment.multiview import MultiViewAugment
from csl.augment.view import ViewSpec
from csl.augment.views import check_view_fields
from csl.errors import ConfigError


@dataclass(frozen=True)
class SimCLRAugmentConfig:
    """Defaults are the paper's ImageNet values without blur; ``size: null`` = image size."""

    size: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    strength: float = 1.0
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    views: int = 2

    def validate(self, path: str) -> None:
        check_view_fields(self, path)
        if self.strength < 0:
            raise ConfigError(f"'{path}.strength' must be >= 0, got {self.strength}")
        if self.views < 2:
            raise ConfigError(f"'{path}.views' must be at least 2, got {self.views}")


def build_simclr_augment(
    cfg: SimCLRAugmentConfig, image_size: int, mean: torch.Tensor, std: torch.Tensor
) -> MultiViewAugment:
    s = cfg.strength
    spec = ViewSpec(
        size=cfg.size or image_size,
        crop_scale=cfg.crop_scale,
        crop_ratio=cfg.crop_ratio,
        flip_p=cfg.flip_p,
        jitter_p=cfg.jitter_p,
        brightness=0.8 * s,
        contrast=0.8 * s,
        saturation=0.8 * s,
        hue=0.2 * s,
        grayscale_p=cfg.grayscale_p,
        blur_p=cfg.blur_p,
        blur_sigma=cfg.blur_sigma,
        solarize_p=cfg.solarize_p,
    )
    return MultiViewAugment([spec] * cfg.views, mean, std)
