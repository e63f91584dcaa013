"""Batched Gaussian blur with one sigma per sample (separable, reflect padding)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur image ``i`` with a ``kernel_size`` Gaussian of std ``sigma[i]``.

    Matches ``torchvision.transforms.functional.gaussian_blur`` per image (kernel weights
    ``exp(-t²/2σ²)`` at integer offsets, normalized; reflect padding).

    Args:
        x: ``(N, C, H, W)`` float; sigma: ``(N,)`` > 0; kernel_size: odd.
    """
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    n, c, h, w = x.shape
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, device=x.device, dtype=x.dtype)  # K
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(-1, 1).to(x.dtype)) ** 2)  # N x K
    k = k / k.sum(dim=1, keepdim=True)
    k = k.repeat_interleave(c, dim=0)  # (N*C) x K, one kernel per channel of each image
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (half, half, half, half), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, kernel_size), groups=n * c)  # horizontal pass
    y = F.conv2d(y, k.view(n * c, 1, kernel_size, 1), groups=n * c)  # vertical pass
    return y.view(n, c, h, w)
