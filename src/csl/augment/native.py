"""Training crops cut from each image at its own resolution (collections of mixed sizes).

A collection of photos has no one image size; squashing every image to one size before the
random resized crop would crop a distorted, down-sampled copy. Here the data loader decodes
the stored image as it is and cuts, for every view of the method, that view's random resized
crop from it: the box is drawn from torchvision's ``RandomResizedCrop`` distribution
(:func:`crop_box`: area uniform in ``scale`` of the *original* image, log aspect ratio uniform
in ``ratio``) and resized to the view's size with antialiasing.
The batch (:class:`CroppedViews`, one uint8 tensor per view) then goes through the method's
views with the crop already done: flip, colour, blur and the rest are drawn on the training
device as for in-memory data (:func:`csl.augment.view.make_view` with ``cropped=True``).

The boxes are a function of ``(seed, epoch, sample key)`` alone: the same in every worker
layout and on every number of processes, and again after a resume.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class ViewCrop:
    """One view's crop: output ``size`` (pixels, square) and torchvision's ``scale``/``ratio`` ranges."""

    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float]


class CroppedViews:
    """A training batch whose views were cropped by the loader: ``views[v]`` is uint8
    ``(N, C, size_v, size_v)``. It stands in for the uint8 image batch (``shape``, ``device``,
    ``to``), so methods pass it to their augmentation unchanged."""

    def __init__(self, views: list[torch.Tensor]) -> None:
        self.views = views

    @property
    def shape(self) -> torch.Size:
        return self.views[0].shape

    @property
    def device(self) -> torch.device:
        return self.views[0].device

    def to(self, *args: Any, **kwargs: Any) -> "CroppedViews":  # Lightning moves batches with .to
        return CroppedViews([v.to(*args, **kwargs) for v in self.views])


def sample_generator(seed: int, epoch: int, key: str) -> random.Random:
    """The generator of one sample's crops in one epoch."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{key}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def crop_box(height: int, width: int, c: ViewCrop, g: random.Random, tries: int = 10) -> tuple[int, int, int, int]:
    """``(top, left, h, w)``: ``torchvision.transforms.RandomResizedCrop.get_params``'s distribution
    and fallback (area uniform in ``scale``, log aspect ratio uniform in ``ratio``, ten tries, then a
    centre crop with the ratio clamped into ``ratio``), drawn in plain Python for one image: a
    loader worker draws it per sample in microseconds (torch's per-call overhead would dominate)."""
    area = height * width
    log_lo, log_hi = math.log(c.ratio[0]), math.log(c.ratio[1])
    for _ in range(tries):
        target = area * g.uniform(c.scale[0], c.scale[1])
        aspect = math.exp(g.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return g.randint(0, height - h), g.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < c.ratio[0]:
        w, h = width, round(width / c.ratio[0])
    elif in_ratio > c.ratio[1]:
        w, h = round(height * c.ratio[1]), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def crop_boxes(height: int, width: int, crops: tuple[ViewCrop, ...],
               g: random.Random) -> list[tuple[int, int, int, int]]:
    """``(top, left, h, w)`` per view for an image of ``height x width``."""
    return [crop_box(height, width, c, g) for c in crops]


def crop_views(images: list[torch.Tensor], keys: list[str], crops: tuple[ViewCrop, ...], seed: int,
               epoch: int) -> CroppedViews:
    """``images[i]``: uint8 ``(C, H_i, W_i)`` -> one ``(N, C, size_v, size_v)`` batch per view."""
    from torchvision.transforms.v2.functional import resized_crop

    per_view: list[list[torch.Tensor]] = [[] for _ in crops]
    for img, key in zip(images, keys):
        boxes = crop_boxes(int(img.shape[-2]), int(img.shape[-1]), crops, sample_generator(seed, epoch, key))
        for v, (c, (top, left, h, w)) in enumerate(zip(crops, boxes)):
            per_view[v].append(resized_crop(img, top, left, h, w, [c.size, c.size], antialias=True))
    return CroppedViews([torch.stack(v) for v in per_view])
