"""One stochastic view of a batch: crop, flip, colour jitter, grayscale, blur, solarize.

Input is the raw ``uint8`` batch ``(N, C, H, W)`` on the training device; output the
normalized float view. Every random choice is drawn per sample from the generator that
is passed in, so a seeded generator reproduces the same views on the same device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from csl.augment import color
from csl.augment.blur import gaussian_blur
from csl.augment.crop import resized_crop, sample_crop_boxes


@dataclass(frozen=True)
class ViewSpec:
    """Probabilities and ranges of one view (the fields of a recipe's config)."""

    size: int
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    flip_p: float
    jitter_p: float
    brightness: float
    contrast: float
    saturation: float
    hue: float
    grayscale_p: float
    blur_p: float
    blur_sigma: tuple[float, float]
    solarize_p: float
    translate: int = 0
    translate_p: float = 0.0


@dataclass(frozen=True)
class Draws:
    """Per-sample random draws for rows ``start .. start + n`` of a batch of ``total``.

    Every draw is made for the whole (global) batch and sliced, so with ``W`` processes that
    share a generator seed, process ``r`` (``start = r * n``, ``total = W * n``) gets exactly the
    parameters that one process with the whole batch gives those rows: distributed training
    sees the same views as single-process training. On one process ``start = 0, total = n``.
    """

    g: torch.Generator
    n: int
    start: int = 0
    total: int | None = None

    @property
    def size(self) -> int:
        return self.total if self.total is not None else self.n

    def cut(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.start:self.start + self.n]

    def uniform(self, lo: float, hi: float) -> torch.Tensor:
        return self.cut(torch.empty(self.size, device=self.g.device).uniform_(lo, hi, generator=self.g))

    def bernoulli(self, p: float) -> torch.Tensor:
        return self.cut(torch.rand(self.size, device=self.g.device, generator=self.g) < p)

    def rand(self, k: int) -> torch.Tensor:
        return self.cut(torch.rand(self.size, k, device=self.g.device, generator=self.g))

    def randint(self, lo: int, hi: int, k: int) -> torch.Tensor:
        return self.cut(torch.randint(lo, hi, (self.size, k), device=self.g.device, generator=self.g))


def _jitter(x: torch.Tensor, spec: ViewSpec, d: Draws, subsets: bool | None = None) -> torch.Tensor:
    """ColorJitter with probability ``jitter_p``: the four ops in a random order per sample.
    ``subsets`` (default: RGB on a CPU) runs each op on the rows it changes only
    (``benchmarks/augment_throughput.py``)."""
    on = d.bernoulli(spec.jitter_p).to(x.dtype)  # 1 where this sample is jittered
    # factors as torchvision samples them; identity (1, 1, 1, 0) where not jittered
    b = 1 + on * (d.uniform(max(0.0, 1 - spec.brightness), 1 + spec.brightness) - 1)
    c = 1 + on * (d.uniform(max(0.0, 1 - spec.contrast), 1 + spec.contrast) - 1)
    s = 1 + on * (d.uniform(max(0.0, 1 - spec.saturation), 1 + spec.saturation) - 1)
    h = on * d.uniform(-spec.hue, spec.hue)
    order = torch.argsort(d.rand(4), dim=1)  # N x 4
    ops = [
        (spec.brightness > 0, lambda x, f: color.brightness(x, f), b, 1.0),
        (spec.contrast > 0, lambda x, f: color.contrast(x, f), c, 1.0),
        (spec.saturation > 0 and x.shape[1] == 3, lambda x, f: color.saturation(x, f), s, 1.0),
        (spec.hue > 0 and x.shape[1] == 3, lambda x, f: color.hue(x, f), h, 0.0),
    ]
    if subsets is None:  # measured: 4.8x faster on RGB 32x32, 0.73x on grayscale (cheap ops, index overhead)
        subsets = x.device.type == "cpu" and x.shape[1] == 3
    jittered = on.bool()
    for slot in range(4):  # in slot r, sample i applies op order[i, r]; others get identity
        for k, (enabled, op, factor, identity) in enumerate(ops):
            if not enabled:
                continue
            active = order[:, slot] == k
            if subsets:
                # on a CPU, each op runs on just the samples it changes (a quarter of the jittered
                # ones per slot): the same values, 4x less work than the whole batch with identity
                # factors (the hue round trip on every image dominated a CIFAR step; on an
                # accelerator the masked whole-batch form below avoids a host sync per op; on
                # grayscale images the two cheap ops cost less than the indexing)
                rows = (active & jittered).nonzero().squeeze(1)
                if len(rows):
                    x = x.index_copy(0, rows, op(x.index_select(0, rows), factor.index_select(0, rows)))
            else:
                x = op(x, torch.where(active, factor, torch.full_like(factor, identity)))
    return x


def make_view(
    images: torch.Tensor,
    spec: ViewSpec,
    mean: torch.Tensor,
    std: torch.Tensor,
    generator: torch.Generator,
    shard: tuple[int, int] | None = None,
    cropped: bool = False,
) -> torch.Tensor:
    """``uint8 (N, C, H, W) -> float (N, C, size, size)``, normalized by ``mean``/``std``.

    ``shard = (start, total)``: these ``N`` images are rows ``start..start+N`` of a global batch
    of ``total`` (see :class:`Draws`); default: the whole batch. ``cropped``: the images are this
    view's random resized crops already, cut by the loader from the native-size images
    (:mod:`csl.augment.native`); only the flip and the rest are applied.
    """
    n, _, height, width = images.shape
    g = generator
    d = Draws(g, n, *shard) if shard is not None else Draws(g, n)
    x = images.float().div_(255)
    if cropped:
        flip = d.bernoulli(spec.flip_p)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    else:
        boxes = d.cut(sample_crop_boxes(d.size, height, width, spec.crop_scale, spec.crop_ratio, g))
        flip = d.bernoulli(spec.flip_p)
        x = resized_crop(x, boxes, flip, spec.size)
    if spec.jitter_p > 0:
        x = _jitter(x, spec, d)
    if spec.grayscale_p > 0 and x.shape[1] == 3:
        gray = d.bernoulli(spec.grayscale_p).view(-1, 1, 1, 1)
        x = torch.where(gray, color.grayscale(x).expand_as(x), x)
    if spec.blur_p > 0:
        # SimCLR: kernel 10% of the image side, sigma uniform in [0.1, 2.0], p = 0.5
        kernel = max(3, int(0.1 * spec.size) // 2 * 2 + 1)
        sigma = d.uniform(spec.blur_sigma[0], spec.blur_sigma[1])
        blurred = gaussian_blur(x, sigma, kernel)
        x = torch.where(d.bernoulli(spec.blur_p).view(-1, 1, 1, 1), blurred, x)
    if spec.solarize_p > 0:
        x = color.solarize(x, d.bernoulli(spec.solarize_p))
    if spec.translate > 0 and spec.translate_p > 0:
        x = translate_reflect(x, spec.translate, d.bernoulli(spec.translate_p), d)
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def translate_reflect(x: torch.Tensor, max_shift: int, on: torch.Tensor, draws: Draws | torch.Generator) -> torch.Tensor:
    """Shift each image by integers ``dx, dy`` uniform in ``[-max_shift, max_shift]`` (where ``on``),
    filling the border by reflection: AMDIM's and CPC's ``RandomTranslateWithReflect``."""
    n, _, height, width = x.shape
    d = draws if isinstance(draws, Draws) else Draws(draws, n)
    t = min(max_shift, height - 1, width - 1)
    shift = d.randint(-max_shift, max_shift + 1, 2).clamp(-t, t)
    shift = shift * on.unsqueeze(1).to(shift.dtype)
    padded = torch.nn.functional.pad(x, (t, t, t, t), mode="reflect")
    rows = torch.arange(height, device=x.device).unsqueeze(0) + t - shift[:, 1:2]  # rows: N x H
    cols = torch.arange(width, device=x.device).unsqueeze(0) + t - shift[:, 0:1]  # cols: N x W
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[batch, rows.unsqueeze(2), cols.unsqueeze(1)]  # N x H x W x C
    return out.permute(0, 3, 1, 2).contiguous()


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The evaluation transform: ``uint8 -> float``, scaled to [0, 1] and normalized."""
    x = images.float().div_(255)
    return (x - mean.view(1, -1, 1, 1).to(x.device)) / std.view(1, -1, 1, 1).to(x.device)
