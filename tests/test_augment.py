"""Batched augmentation: shapes, ranges, per-sample independence, determinism, and equality
with torchvision's per-image operations for the same parameters."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision.transforms import RandomResizedCrop

from csl.augment import AUGMENTATIONS, ViewSpec, make_view
from csl.augment import color
from csl.augment.blur import gaussian_blur
from csl.augment.crop import resized_crop, sample_crop_boxes
from csl.registry import build, parse_spec


def spec(**kw: object) -> ViewSpec:
    base = dict(size=16, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5, jitter_p=0.8,
                brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2, blur_p=0.5,
                blur_sigma=(0.1, 2.0), solarize_p=0.0)
    base.update(kw)
    return ViewSpec(**base)  # type: ignore[arg-type]


def images(n: int = 8, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


ZERO = torch.zeros(3)
ONE = torch.ones(3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_value_range(channels: int) -> None:
    x = images(16, channels)
    out = make_view(x, spec(size=12), ZERO[:channels], ONE[:channels], gen())
    assert out.shape == (16, channels, 12, 12) and out.dtype == torch.float32
    assert out.min() >= 0.0 and out.max() <= 1.0  # mean 0, std 1: values stay in [0, 1]
    norm = make_view(x, spec(size=12), torch.full((channels,), 0.5), torch.full((channels,), 0.25), gen())
    assert norm.min() >= -2.0 - 1e-6 and norm.max() <= 2.0 + 1e-6


def test_recipe_builds_two_views() -> None:
    s = parse_spec(AUGMENTATIONS, "augmentation", {"name": "simclr", "size": 12}, "augment")
    aug = build(AUGMENTATIONS, s, image_size=16, mean=ZERO, std=ONE)
    views = aug(images(4), gen())
    assert len(views) == 2 and all(v.shape == (4, 3, 12, 12) for v in views)
    assert not torch.equal(views[0], views[1])


def test_views_stay_fp32_under_autocast() -> None:
    s = parse_spec(AUGMENTATIONS, "augmentation", {"name": "simclr", "blur_p": 1.0}, "augment")
    aug = build(AUGMENTATIONS, s, image_size=16, mean=ZERO, std=ONE)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        views = aug(images(4), gen())
    reference = aug(images(4), gen())
    assert all(v.dtype == torch.float32 for v in views)
    torch.testing.assert_close(views[0], reference[0], atol=0, rtol=0)


def test_deterministic_under_a_seed() -> None:
    x = images()
    a = make_view(x, spec(), ZERO, ONE, gen(7))
    b = make_view(x, spec(), ZERO, ONE, gen(7))
    c = make_view(x, spec(), ZERO, ONE, gen(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_parameters_are_independent_per_sample() -> None:
    x = images(1).repeat(64, 1, 1, 1)  # the same image 64 times
    out = make_view(x, spec(), ZERO, ONE, gen())
    flat = out.flatten(1)
    distinct = torch.unique(flat, dim=0).shape[0]
    assert distinct == 64  # every copy got its own crop/flip/jitter
    boxes = sample_crop_boxes(64, 16, 16, (0.08, 1.0), (3 / 4, 4 / 3), gen())
    assert torch.unique(boxes, dim=0).shape[0] > 40


def test_identity_crop_and_exact_flip() -> None:
    x = images(4).float() / 255
    full = torch.tensor([[0.0, 0.0, 16.0, 16.0]]).repeat(4, 1)
    same = resized_crop(x, full, torch.zeros(4, dtype=torch.bool), 16)
    torch.testing.assert_close(same, x, atol=1e-6, rtol=0)
    flipped = resized_crop(x, full, torch.ones(4, dtype=torch.bool), 16)
    torch.testing.assert_close(flipped, x.flip(-1), atol=1e-6, rtol=0)


def test_crop_matches_torchvision_resized_crop_inside_the_border() -> None:
    x = images(6).float() / 255
    boxes = sample_crop_boxes(6, 16, 16, (0.2, 1.0), (3 / 4, 4 / 3), gen(3))
    ours = resized_crop(x, boxes, torch.zeros(6, dtype=torch.bool), 12)
    for i, (x0, y0, w, h) in enumerate(boxes.long().tolist()):
        ref = TF.resized_crop(x[i], y0, x0, h, w, [12, 12], antialias=False)
        # the outermost ring may differ: grid_sample clamps at the image edge, torchvision at
        # the crop edge; the interior is the same bilinear resample
        torch.testing.assert_close(ours[i, :, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5, rtol=0)


def test_crop_box_distribution_matches_torchvision() -> None:
    n = 4000
    ours = sample_crop_boxes(n, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), gen(0))
    area = ours[:, 2] * ours[:, 3] / (32 * 32)
    ratio = ours[:, 2] / ours[:, 3]
    assert area.min() >= 0.08 * 0.8 and area.max() <= 1.0
    assert (ours[:, 0] >= 0).all() and (ours[:, 0] + ours[:, 2] <= 32).all()
    assert (ours[:, 1] >= 0).all() and (ours[:, 1] + ours[:, 3] <= 32).all()
    torch.manual_seed(0)
    ref = torch.tensor([RandomResizedCrop.get_params(torch.zeros(3, 32, 32), [0.08, 1.0], [3 / 4, 4 / 3])
                        for _ in range(n)], dtype=torch.float32)  # (i, j, h, w)
    ref_area = ref[:, 2] * ref[:, 3] / (32 * 32)
    ref_ratio = ref[:, 3] / ref[:, 2]
    assert abs(area.mean() - ref_area.mean()) < 0.02
    assert abs(ratio.log().mean() - ref_ratio.log().mean()) < 0.03
    assert abs(ratio.log().std() - ref_ratio.log().std()) < 0.03


def test_flip_and_grayscale_rates() -> None:
    n = 4000
    x = images(1).repeat(n, 1, 1, 1)
    full = spec(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), jitter_p=0.0, blur_p=0.0, flip_p=0.5,
                grayscale_p=0.2)
    out = make_view(x, full, ZERO, ONE, gen())
    src = x[:1].float() / 255
    # compare luma so that grayscale (applied to 20%) does not hide the flip
    flipped = (color.grayscale(out) - color.grayscale(src.flip(-1))).abs().flatten(1).max(1).values < 1e-3
    gray = (out[:, 0] - out[:, 1]).abs().flatten(1).max(1).values < 1e-6
    assert abs(flipped.float().mean() - 0.5) < 0.04
    assert abs(gray.float().mean() - 0.2) < 0.03


@pytest.mark.parametrize("op,tv", [
    (color.brightness, TF.adjust_brightness),
    (color.contrast, TF.adjust_contrast),
    (color.saturation, TF.adjust_saturation),
])
def test_colour_ops_equal_torchvision_per_image(op, tv) -> None:  # type: ignore[no-untyped-def]
    x = images(5).float() / 255
    f = torch.tensor([0.2, 0.7, 1.0, 1.3, 1.8])
    ours = op(x, f)
    for i in range(5):
        torch.testing.assert_close(ours[i], tv(x[i], float(f[i])), atol=1e-5, rtol=0)


def test_hue_equals_torchvision_per_image() -> None:
    x = images(5).float() / 255
    shifts = torch.tensor([-0.5, -0.1, 0.0, 0.2, 0.45])
    ours = color.hue(x, shifts)
    for i in range(5):
        torch.testing.assert_close(ours[i], TF.adjust_hue(x[i], float(shifts[i])), atol=1e-4, rtol=0)


def test_grayscale_equals_torchvision() -> None:
    x = images(3).float() / 255
    torch.testing.assert_close(color.grayscale(x), TF.rgb_to_grayscale(x), atol=1e-6, rtol=0)


def test_blur_equals_torchvision_per_image() -> None:
    x = images(4).float() / 255
    sigma = torch.tensor([0.3, 0.8, 1.5, 2.0])
    ours = gaussian_blur(x, sigma, 5)
    for i in range(4):
        ref = TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2)
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_jitter_factors_stay_in_range() -> None:
    # brightness only, p = 1: every output / input ratio is a factor in [1 - b, 1 + b]
    n = 2000
    x = torch.full((n, 1, 4, 4), 100, dtype=torch.uint8)
    s = spec(size=4, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=1.0, brightness=0.4,
             contrast=0.0, saturation=0.0, hue=0.0, grayscale_p=0.0, blur_p=0.0)
    out = make_view(x, s, torch.zeros(1), torch.ones(1), gen())
    f = out[:, 0, 0, 0] / (100 / 255)
    assert f.min() >= 0.6 - 1e-5 and f.max() <= 1.4 + 1e-5
    assert abs(f.mean() - 1.0) < 0.02 and abs(f.std() - 0.8 / math.sqrt(12)) < 0.02


def test_translate_reflect_equals_the_per_image_reference() -> None:
    """Every output is the input shifted by integers in [-t, t] with reflected borders
    (lightning-bolts' RandomTranslateWithReflect for the same shift)."""
    import numpy as np

    from csl.augment.view import translate_reflect

    x = torch.rand(12, 3, 10, 10, generator=torch.Generator().manual_seed(0))
    on = torch.tensor([True] * 10 + [False] * 2)
    out = translate_reflect(x, 3, on, torch.Generator().manual_seed(1))
    shifts = set()
    for i in range(12):
        padded = np.pad(x[i].numpy(), ((0, 0), (3, 3), (3, 3)), mode="reflect")
        found = [(dx, dy) for dx in range(-3, 4) for dy in range(-3, 4)
                 if np.allclose(padded[:, 3 - dy:13 - dy, 3 - dx:13 - dx], out[i].numpy())]
        assert found, f"sample {i} is not a reflected translation"
        if not on[i]:
            assert (0, 0) in found
        shifts.add(found[0])
    assert len(shifts) > 4  # shifts vary per sample


def test_jitter_applies_each_sample_its_own_ops_in_its_own_order() -> None:
    """Per sample: skipped with probability 1 - jitter_p, else torchvision's four adjust_* ops in the
    sample's random order with its factors; the CPU's per-subset form and the accelerator's masked
    whole-batch form give the same views."""
    from csl.augment.view import Draws, _jitter

    n = 64
    x = images(n).float() / 255
    s = spec(jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)
    subset = _jitter(x, s, Draws(gen(3), n), subsets=True)
    masked = _jitter(x, s, Draws(gen(3), n), subsets=False)
    torch.testing.assert_close(subset, masked, atol=2e-5, rtol=0)
    d = Draws(gen(3), n)  # the same draws, in the same order, as _jitter makes them
    on = d.bernoulli(0.8)
    b, c, sat = (d.uniform(0.6, 1.4) for _ in range(3))
    h = d.uniform(-0.1, 0.1)
    order = torch.argsort(d.rand(4), dim=1)
    assert 0 < int(on.sum()) < n
    for i in range(n):
        ref = x[i]
        if on[i]:
            ops = [lambda y: TF.adjust_brightness(y, float(b[i])), lambda y: TF.adjust_contrast(y, float(c[i])),
                   lambda y: TF.adjust_saturation(y, float(sat[i])), lambda y: TF.adjust_hue(y, float(h[i]))]
            for k in order[i].tolist():
                ref = ops[k](ref)
        torch.testing.assert_close(subset[i], ref, atol=1e-4, rtol=0, msg=f"sample {i}")
