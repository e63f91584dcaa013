"""Batched random resized crop and horizontal flip, one affine resample per batch.

Parameters are drawn per sample exactly as ``torchvision.transforms.RandomResizedCrop``
draws them (area uniform in ``scale``, log aspect ratio uniform in ``ratio``, ten tries,
then a centre-crop fallback); the crop and flip are then one ``grid_sample`` over the whole
batch, which runs the same on CPU and GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    tries: int = 10,
) -> torch.Tensor:
    """``(n, 4)`` float boxes ``(x0, y0, w, h)`` in pixels, torchvision's distribution."""
    dev = generator.device
    area = height * width
    target = area * torch.empty(n, tries, device=dev).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, tries, device=dev).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))  # w, h: n x tries
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    # the first successful try per sample, as torchvision's loop would take
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=dev))
    # centre-crop fallback with the aspect ratio clamped into `ratio`
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    idx = first.clamp(min=0).unsqueeze(1)
    w = torch.where(first >= 0, w.gather(1, idx).squeeze(1), torch.full((n,), float(fw), device=dev))
    h = torch.where(first >= 0, h.gather(1, idx).squeeze(1), torch.full((n,), float(fh), device=dev))
    u = torch.rand(n, 2, device=dev, generator=generator)
    # torchvision: i = randint(0, H - h + 1); j = randint(0, W - w + 1)
    x0 = torch.floor(u[:, 0] * (width - w + 1))
    y0 = torch.floor(u[:, 1] * (height - h + 1))
    fallback = first < 0
    x0 = torch.where(fallback, torch.floor((width - w) / 2), x0)
    y0 = torch.where(fallback, torch.floor((height - h) / 2), y0)
    return torch.stack([x0, y0, w, h], dim=1)


def resized_crop(
    images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor, size: int
) -> torch.Tensor:
    """Crop each image to its box, resize to ``size x size`` (bilinear), mirror where ``flip``.

    Args:
        images: ``(N, C, H, W)`` float.
        boxes: ``(N, 4)`` ``(x0, y0, w, h)`` in pixels.
        flip: ``(N,)`` bool.

    Returns:
        ``(N, C, size, size)``.
    """
    n, c, height, width = images.shape
    x0, y0, w, h = boxes.to(images.dtype).unbind(1)
    # output pixel centre u in (-1, 1) samples input x = x0 + (u + 1) w / 2 - 0.5 (pixels),
    # i.e. normalized input coordinate  (w / W) u + (2 x0 + w) / W - 1   (align_corners=False)
    sx = w / width
    sy = h / height
    sx = torch.where(flip, -sx, sx)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)  # theta: N x 2 x 3
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * x0 + w) / width - 1
    theta[:, 1, 1] = sy
    theta[:, 1, 2] = (2 * y0 + h) / height - 1
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
