"""The training data path from native-size JPEGs, side by side in one run, and preparing a collection.

- csl: ``data.dataset: images`` shards; a DataLoader over :class:`csl.data.shards.ShardStream` with
  ``crops`` decodes each stored JPEG (``torchvision.io``) and cuts the view's random resized crop
  from it at its own resolution (:mod:`csl.augment.native`), and the horizontal flip is applied to
  the uint8 batch (as ``make_view`` does on the training device): uint8 ``(B, 3, S, S)``.
- torchvision: ``ImageFolder`` + ``DataLoader`` with PIL's decode, ``RandomResizedCrop(S)``,
  ``RandomHorizontalFlip()`` and ``PILToTensor()``, collated to the same uint8 batch.

Both use the same number of worker processes and batch size over the same images (synthetic
photos of random size and aspect, stored as JPEG), one warm-up pass, then a timed pass each, in
alternation, ``--repeats`` times; the figure is images/s (and per worker process: the CPU cores the
loaders use). Prepare: ``csl prepare``'s work (decode, checks, shards, exact statistics) on them.

    python benchmarks/data_path.py [--images 2000] [--size 224] [--workers 2] [--batch 64]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def make_photos(root: Path, n: int, size: int, seed: int = 0) -> None:
    """``n`` JPEGs (quality 90) of random size: the shorter side ``size`` to ``2 size``, aspect 3:4 to 4:3."""
    rng = np.random.default_rng(seed)
    (root / "all").mkdir(parents=True, exist_ok=True)  # ImageFolder needs a class folder
    for i in range(n):
        short = int(rng.integers(size, 2 * size + 1))
        long = int(short * rng.uniform(1.0, 4 / 3))
        w, h = (long, short) if i % 2 else (short, long)
        y, x = np.mgrid[0:h, 0:w]
        base = rng.integers(0, 200, 3)
        img = np.stack([base[0] + 50 * np.sin(x / 17.0), base[1] + 50 * np.cos(y / 23.0),
                        base[2] + 40 * ((x // 16 + y // 16) % 2)], -1)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "all" / f"{i:05d}.jpg", quality=90)


def time_loader(loader: torch.utils.data.DataLoader, flip: bool) -> tuple[float, int]:
    g = torch.Generator().manual_seed(0)
    n, start = 0, time.perf_counter()
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        views = x.views if hasattr(x, "views") else [x]
        if flip:  # csl flips the uint8 batch (on the training device); torchvision flipped per image in PIL
            for v in views:
                on = torch.rand(v.shape[0], generator=g) < 0.5
                torch.where(on.view(-1, 1, 1, 1), v.flip(-1), v)
        n += views[0].shape[0]
    return time.perf_counter() - start, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "build" / "data-path")
    args = ap.parse_args(argv)

    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from csl.augment.native import ViewCrop
    from csl.data.config import DataConfig
    from csl.data.prepare_images import prepare_images
    from csl.data.shards import ShardStream

    photos, prepared = args.work / "photos", args.work / "prepared"
    if not (photos / "all").is_dir() or len(list((photos / "all").iterdir())) != args.images:
        shutil.rmtree(photos, ignore_errors=True)
        make_photos(photos, args.images, args.size)
    shutil.rmtree(prepared, ignore_errors=True)
    cfg = DataConfig(dataset="images", source=str(photos), image_size=args.size, test_fraction=0.01)
    t0 = time.perf_counter()
    meta = prepare_images(cfg, str(photos), prepared, "photos")
    prep_s = time.perf_counter() - t0
    n_prep = meta["num_train"] + meta["num_test"]
    print(f"command: python benchmarks/data_path.py --images {args.images} --size {args.size} --workers "
          f"{args.workers} --batch {args.batch} --repeats {args.repeats}")
    print(f"cpu: {cpu_model()} ({torch.get_num_threads()} torch threads); torch {torch.__version__}")
    print(f"images: {args.images} JPEGs, shorter side {meta['shorter_side']['min']}-{meta['shorter_side']['max']} px "
          f"(median {meta['shorter_side']['median']}), {meta['stored']['jpeg_kept']} stored as they are")
    print(f"prepare: {n_prep} images in {prep_s:.1f} s = {n_prep / prep_s:.0f} images/s (one process)")

    crop = ViewCrop(args.size, (0.08, 1.0), (3 / 4, 4 / 3))

    def csl_loader(views: int) -> DataLoader:
        stream = ShardStream(str(prepared / "train"), args.batch, args.size, 3, labels=False, crops=(crop,) * views)
        return DataLoader(stream, batch_size=None, num_workers=args.workers, persistent_workers=False)

    tv = datasets.ImageFolder(str(photos), transform=transforms.Compose([
        transforms.RandomResizedCrop(args.size, antialias=True), transforms.RandomHorizontalFlip(),
        transforms.PILToTensor()]))
    tv_loader = DataLoader(tv, batch_size=args.batch, shuffle=True, num_workers=args.workers, drop_last=True)
    runs = {"csl (1 view)": (lambda: csl_loader(1), True), "torchvision ImageFolder (1 view)": (lambda: tv_loader, False),
            "csl (2 views, SimCLR)": (lambda: csl_loader(2), True)}
    best: dict[str, float] = {}
    for name, (make, flip) in runs.items():  # warm-up: page cache, worker start
        time_loader(make(), flip)
    for r in range(args.repeats):
        for name, (make, flip) in runs.items():
            secs, n = time_loader(make(), flip)
            rate = n / secs
            best[name] = max(best.get(name, 0.0), rate)
            print(f"  pass {r + 1}: {name:<34} {n} images in {secs:6.2f} s = {rate:7.0f} images/s")
    print(f"\n{'loader':<36}{'images/s':>10}{'per worker':>12}   (best of {args.repeats}; {args.workers} workers)")
    for name, rate in best.items():
        print(f"{name:<36}{rate:>10.0f}{rate / args.workers:>12.0f}")
    ratio = best["csl (1 view)"] / best["torchvision ImageFolder (1 view)"]
    print(f"\ncsl / torchvision, one view each: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
