"""Read a dataset from the source that ``DataConfig`` names."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csl.data import cifar, fashion_mnist, imagefolder
from csl.data.config import DataConfig
from csl.data.dataset import RawDataset, Split


def _subset(split: Split, n: int | None, seed: int) -> Split:
    """A seeded subset of ``n`` samples with the class proportions kept (stratified)."""
    if n is None or n >= len(split.labels):
        return split
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(split.labels))
    # round-robin over classes in random order keeps proportions up to rounding
    by_class = [order[split.labels[order] == k] for k in np.unique(split.labels)]
    picked = np.sort(np.concatenate([idx[: int(round(n * len(idx) / len(order)))] for idx in by_class]))[:n]
    return Split(split.images[picked], split.labels[picked])


def read(cfg: DataConfig, project_dir: Path, seed: int) -> RawDataset:
    root = (project_dir / cfg.download_root).resolve()
    if cfg.dataset == "fashion-mnist":
        src = cfg.source if cfg.source == "auto" else str((project_dir / cfg.source).resolve())
        raw = fashion_mnist.load(fashion_mnist.locate(src, cfg.download, root))
    elif cfg.dataset == "cifar10":
        src = cfg.source if cfg.source == "auto" else str((project_dir / cfg.source).resolve())
        raw = cifar.load(src, cfg.download, root, seed)
    else:
        raw = imagefolder.load((project_dir / cfg.source).resolve(), Path(cfg.source).stem,
                               cfg.test_fraction, seed, cfg.image_size)
    raw.train = _subset(raw.train, cfg.max_train, seed)
    raw.test = _subset(raw.test, cfg.max_test, seed + 1)
    return raw
