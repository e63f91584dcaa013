"""Part 1 of the framework: augmentation pipelines, batched on the training device."""

from __future__ import annotations

from csl.augment.multiview import MultiViewAugment
from csl.augment.simclr import SimCLRAugmentConfig, build_simclr_augment
from csl.augment.recipes import PRESETS, RecipeConfig, preset_builder
from csl.augment.view import ViewSpec, make_view, normalize
from csl.augment.views import ViewGroupConfig, ViewsConfig, build_views
from csl.registry import Entry

_PRESET_SUMMARIES = {
    "byol": "BYOL's asymmetric recipe (blur 1.0/0.1, solarize 0/0.2); also MoCo v3's",
    "moco_v2": "MoCo v2: crop 0.2-1, jitter, grayscale, blur p 0.5",
    "swav": "SwAV multi-crop: 2 global (0.14-1) + 6 local (0.05-0.14) crops",
    "dino": "DINO multi-crop: 2 asymmetric global (0.4-1) + 8 local (0.05-0.4) crops",
    "amdim": "AMDIM: flip, reflect-translate 4 px, jitter, grayscale 0.25; two views",
    "cpc": "CPC v2: AMDIM's ops, one view (the encoder cuts the patches)",
}

AUGMENTATIONS: dict[str, Entry] = {
    "simclr": Entry(SimCLRAugmentConfig, build_simclr_augment, "SimCLR: crop, flip, colour jitter, grayscale, optional blur"),
    "views": Entry(ViewsConfig, build_views, "any views / multi-crop: groups of (count, size, scale, colour)"),
    **{name: Entry(RecipeConfig, preset_builder(name), summary) for name, summary in _PRESET_SUMMARIES.items()},
}
assert set(_PRESET_SUMMARIES) == set(PRESETS)

__all__ = ["AUGMENTATIONS", "MultiViewAugment", "ViewSpec", "ViewGroupConfig", "make_view", "normalize"]
