"""The papers' augmentation recipes as presets of :mod:`csl.augment.views` groups.

Each preset is the published recipe at the dataset's image size; ``local_crops`` adds
multi-crop views (size ``local_size``, default 96/224 of the image as in SwAV and DINO) to any
of them. Sources:

* ``byol``: BYOL (arXiv 2006.07733, Table 6): crop 0.08-1, flip, jitter (0.4, 0.4, 0.2, 0.1)
  p 0.8, grayscale 0.2, blur p 1.0 / 0.1, solarize p 0 / 0.2 (asymmetric). MoCo v3
  (arXiv 2104.02057, Sec. 4) uses the same recipe.
* ``moco_v2``: MoCo v2 (arXiv 2003.04297, Sec. 2): crop 0.2-1, jitter (0.4, 0.4, 0.4, 0.1)
  p 0.8, grayscale 0.2, blur p 0.5, flip.
* ``swav``: SwAV (arXiv 2006.09882, App. A): 2 global crops 0.14-1, 6 local 0.05-0.14,
  SimCLR colour distortion of strength 1 (0.8, 0.8, 0.8, 0.2), grayscale 0.2, blur p 0.5.
* ``dino``: DINO (arXiv 2104.14294, App. and ``main_dino.py``): 2 global 0.4-1 (blur 1.0;
  blur 0.1 + solarize 0.2), 8 local 0.05-0.4 (blur 0.5), jitter (0.4, 0.4, 0.2, 0.1) p 0.8.
* ``amdim`` / ``cpc``: AMDIM (arXiv 1906.00910) and CPC v2 (arXiv 1905.09272) as
  lightning-bolts runs them on CIFAR-10: flip, translation by up to 4 px with reflection
  (p 0.8), jitter (0.4, 0.4, 0.4, 0.2) p 0.8, grayscale 0.25, no resized crop; AMDIM two
  views, CPC one (its patches are cut by the encoder).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from csl.augment.multiview import MultiViewAugment
from csl.augment.views import ViewGroupConfig, ViewsConfig, build_views
from csl.errors import ConfigError

_BYOL = ViewGroupConfig(count=1, crop_scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
_SWAV = ViewGroupConfig(count=2, crop_scale=(0.14, 1.0), brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
                        blur_p=0.5)
_DINO = ViewGroupConfig(count=1, crop_scale=(0.4, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
_DIM = ViewGroupConfig(count=2, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), brightness=0.4, contrast=0.4,
                       saturation=0.4, hue=0.2, grayscale_p=0.25, translate=4, translate_p=0.8)

PRESETS: dict[str, tuple[list[ViewGroupConfig], ViewGroupConfig | None, int]] = {
    # name: (global groups, local group template or None, default local crop count)
    "byol": ([replace(_BYOL, blur_p=1.0), replace(_BYOL, blur_p=0.1, solarize_p=0.2)], None, 0),
    "moco_v2": ([ViewGroupConfig(count=2, crop_scale=(0.2, 1.0), blur_p=0.5)], None, 0),
    "swav": ([_SWAV], replace(_SWAV, crop_scale=(0.05, 0.14)), 6),
    "dino": ([replace(_DINO, blur_p=1.0), replace(_DINO, blur_p=0.1, solarize_p=0.2)],
             replace(_DINO, crop_scale=(0.05, 0.4), blur_p=0.5), 8),
    "amdim": ([_DIM], None, 0),
    "cpc": ([replace(_DIM, count=1)], None, 0),
}


@dataclass(frozen=True)
class RecipeConfig:
    """``size``: global view size (null = image size); ``global_scale``: null = the paper's
    crop range of the global views; ``local_crops``: null = the paper's number (0 where the
    paper has none); ``local_size``: null = 96/224 of the global size; ``local_scale``: null =
    the paper's range."""

    size: int | None = None
    global_scale: tuple[float, float] | None = None
    local_crops: int | None = None
    local_size: int | None = None
    local_scale: tuple[float, float] | None = None

    def validate(self, path: str) -> None:
        for key in ("global_scale", "local_scale"):
            v = getattr(self, key)
            if v is not None and not 0 < v[0] <= v[1] <= 1:
                raise ConfigError(f"'{path}.{key}' must satisfy 0 < lo <= hi <= 1, got {v}")
        if self.local_crops is not None and self.local_crops < 0:
            raise ConfigError(f"'{path}.local_crops' must be >= 0")
        for key in ("size", "local_size"):
            v = getattr(self, key)
            if v is not None and v < 4:
                raise ConfigError(f"'{path}.{key}' must be at least 4 pixels, got {v}")


def recipe_groups(name: str, cfg: RecipeConfig, image_size: int) -> list[ViewGroupConfig]:
    """The preset's groups at this image size (global first, then local crops)."""
    globals_, local, default_count = PRESETS[name]
    groups = [replace(g, size=cfg.size, crop_scale=cfg.global_scale or g.crop_scale) for g in globals_]
    count = default_count if cfg.local_crops is None else cfg.local_crops
    if count:
        template = local or replace(globals_[-1], count=1, crop_scale=(0.05, 0.4))
        local_size = cfg.local_size or max(4, round((cfg.size or image_size) * 96 / 224))
        groups.append(replace(template, count=count, size=local_size,
                              crop_scale=cfg.local_scale or template.crop_scale))
    return groups


def preset_builder(name: str) -> Callable[..., MultiViewAugment]:
    def build(cfg: RecipeConfig, image_size: int, mean: torch.Tensor, std: torch.Tensor) -> MultiViewAugment:
        return build_views(ViewsConfig(recipe_groups(name, cfg, image_size)), image_size, mean, std)

    return build
