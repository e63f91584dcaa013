"""Colour jitter's two forms side by side, in one run: the per-subset form csl uses on a CPU
(each of the four ops runs on the samples whose random order puts it in that slot) against the
masked whole-batch form (every op on every sample, identity factors where inactive: the form
used on an accelerator, where it avoids a host sync per op). Both give the same views
(``tests/test_augment.py``); reported: seconds per batch of two views, images/s of the
augmentation alone, and the ratio, for RGB 32x32 (CIFAR-10) and grayscale 28x28 (Fashion-MNIST).

    python benchmarks/augment_throughput.py [--batch 256] [--reps 10]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from csl.augment import view as view_mod
from csl.augment.view import ViewSpec, make_view


def spec(size: int) -> ViewSpec:
    # SimCLR's CIFAR-10 view (arXiv 2002.05709, B.9): crop 0.08-1, jitter 0.4/0.4/0.4/0.1 p 0.8, gray 0.2
    return ViewSpec(size=size, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5, jitter_p=0.8,
                    brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2, blur_p=0.0,
                    blur_sigma=(0.1, 2.0), solarize_p=0.0)


def seconds(images: torch.Tensor, subsets: bool, reps: int) -> float:
    original = view_mod._jitter
    view_mod._jitter = lambda x, s, d: original(x, s, d, subsets=subsets)  # type: ignore[assignment]
    try:
        s, c = spec(images.shape[-1]), images.shape[1]
        mean, std = torch.full((c,), 0.5), torch.full((c,), 0.25)
        g = torch.Generator().manual_seed(0)
        for _ in range(2):
            make_view(images, s, mean, std, g)
        start = time.perf_counter()
        for _ in range(reps):
            for _ in range(2):  # two views per step
                make_view(images, s, mean, std, g)
        return (time.perf_counter() - start) / reps
    finally:
        view_mod._jitter = original  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    print(f"command: python benchmarks/augment_throughput.py --batch {args.batch} --reps {args.reps}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    print(f"{'images':<22}{'masked s/batch':>15}{'subset s/batch':>15}{'masked img/s':>13}{'subset img/s':>13}"
          f"{'ratio':>8}")
    for name, shape in (("RGB 3x32x32", (3, 32, 32)), ("grayscale 1x28x28", (1, 28, 28))):
        x = torch.randint(0, 256, (args.batch, *shape), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        masked, subset = seconds(x, False, args.reps), seconds(x, True, args.reps)
        print(f"{name:<22}{masked:>15.4f}{subset:>15.4f}{args.batch / masked:>13.0f}{args.batch / subset:>13.0f}"
              f"{masked / subset:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
