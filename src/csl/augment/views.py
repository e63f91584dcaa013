"""A general multi-view / multi-crop augmentation declared as groups of view specs.

Every group gives ``count`` views with one crop size, crop scale range and colour settings,
so any method can use multi-crop (SwAV, arXiv 2006.09882, Sec. 3.2: two global crops and
``V`` small crops) or asymmetric views (BYOL, arXiv 2006.07733, Table 6) from params.yaml:

.. code-block:: yaml

    augment:
      name: views
      groups:
        - {count: 2, crop_scale: [0.4, 1.0]}              # global crops, image size
        - {count: 4, size: 12, crop_scale: [0.05, 0.4]}   # local crops

Views are ordered group by group; methods treat the views of the first group's size as the
global crops (teachers and code assignment use them only).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from csl.augment.multiview import MultiViewAugment
from csl.augment.view import ViewSpec
from csl.errors import ConfigError


def check_view_fields(cfg: object, path: str) -> None:
    """Checks shared by every view config: size, crop ranges, probabilities."""
    size = getattr(cfg, "size", None)
    if size is not None and size < 4:
        raise ConfigError(f"'{path}.size' must be at least 4 pixels, got {size}")
    lo, hi = getattr(cfg, "crop_scale")
    if not 0 < lo <= hi <= 1:
        raise ConfigError(f"'{path}.crop_scale' must satisfy 0 < lo <= hi <= 1, got {(lo, hi)}")
    ratio = getattr(cfg, "crop_ratio")
    if not 0 < ratio[0] <= ratio[1]:
        raise ConfigError(f"'{path}.crop_ratio' must satisfy 0 < lo <= hi")
    for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p", "translate_p"):
        p = getattr(cfg, name, 0.0)
        if not 0 <= p <= 1:
            raise ConfigError(f"'{path}.{name}' is a probability in [0, 1], got {p}")


@dataclass(frozen=True)
class ViewGroupConfig:
    """``count`` views of one kind. ``size: null`` = the dataset's image size. Colour jitter is
    given per op (torchvision's ``ColorJitter`` ranges) and applied with ``jitter_p``;
    ``translate`` shifts by up to that many pixels with reflection (AMDIM/CPC)."""

    count: int = 1
    size: int | None = None
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0
    translate: int = 0
    translate_p: float = 0.0

    def validate(self, path: str) -> None:
        if self.count < 1:
            raise ConfigError(f"'{path}.count' must be >= 1, got {self.count}")
        check_view_fields(self, path)
        for name in ("brightness", "contrast", "saturation", "translate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"'{path}.{name}' must be >= 0")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"'{path}.hue' must be in [0, 0.5], got {self.hue}")

    def spec(self, image_size: int) -> ViewSpec:
        return ViewSpec(
            size=self.size or image_size, crop_scale=self.crop_scale, crop_ratio=self.crop_ratio,
            flip_p=self.flip_p, jitter_p=self.jitter_p, brightness=self.brightness, contrast=self.contrast,
            saturation=self.saturation, hue=self.hue, grayscale_p=self.grayscale_p, blur_p=self.blur_p,
            blur_sigma=self.blur_sigma, solarize_p=self.solarize_p, translate=self.translate,
            translate_p=self.translate_p,
        )


@dataclass(frozen=True)
class ViewsConfig:
    groups: list[ViewGroupConfig] = field(default_factory=lambda: [ViewGroupConfig(count=2)])

    def validate(self, path: str) -> None:
        if not self.groups:
            raise ConfigError(f"'{path}.groups' must list at least one group of views")


def build_views(cfg: ViewsConfig, image_size: int, mean: torch.Tensor, std: torch.Tensor) -> MultiViewAugment:
    specs = [g.spec(image_size) for g in cfg.groups for _ in range(g.count)]
    return MultiViewAugment(specs, mean, std)
