"""Training crops cut from each image at its own resolution (collections of mixed sizes).

A collection of photos has no one image size; squashing every image to one size before the
random resized crop would crop a distorted, down-sampled copy. Here the data loader decodes
the stored image as it is and cuts, for every view of the method, that view's random resized
crop from it: the box is drawn from torchvision's ``RandomResizedCrop`` distribution
(:func:`csl.augment.crop.sample_crop_boxes`: area uniform in ``scale`` of the *original*
image, log aspect ratio uniform in ``ratio``) and resized to the view's size with antialiasing.
The batch (:class:`CroppedViews`, one uint8 tensor per view) then goes through the method's
views with the crop already done: flip, colour, blur and the rest are drawn on the training
device as for in-memory data (:func:`csl.augment.view.make_view` with ``cropped=True``).

The boxes are a function of ``(seed, epoch, sample key)`` alone: the same in every worker
layout and on every number of processes, and again after a resume.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from csl.augment.crop import sample_crop_boxes


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


def sample_generator(seed: int, epoch: int, key: str) -> torch.Generator:
    """The generator of one sample's crops in one epoch."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{key}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "big") & ((1 << 63) - 1))


def crop_boxes(height: int, width: int, crops: tuple[ViewCrop, ...],
               g: torch.Generator) -> list[tuple[int, int, int, int]]:
    """``(top, left, h, w)`` per view for an image of ``height x width``."""
    out: list[tuple[int, int, int, int]] = []
    for c in crops:
        x0, y0, w, h = (int(v) for v in sample_crop_boxes(1, height, width, c.scale, c.ratio, g)[0].tolist())
        out.append((y0, x0, h, w))
    return out


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
