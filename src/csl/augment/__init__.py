"""Part 1 of the framework: augmentation pipelines, batched on the training device."""

from __future__ import annotations

from csl.augment.simclr import MultiViewAugment, SimCLRAugmentConfig, build_simclr_augment
from csl.augment.view import ViewSpec, make_view, normalize
from csl.registry import Entry

AUGMENTATIONS: dict[str, Entry] = {
    "simclr": Entry(SimCLRAugmentConfig, build_simclr_augment, "SimCLR: crop, flip, colour jitter, grayscale, optional blur"),
}

__all__ = ["AUGMENTATIONS", "MultiViewAugment", "ViewSpec", "make_view", "normalize"]
