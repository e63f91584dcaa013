"""Class-balanced label subsets for few-label fine-tuning (SimCLR, arXiv 2002.05709 §B.5; SimCLR v2,
arXiv 2006.10029 §4: 1% and 10% of the ImageNet labels, a fixed subset shared by every model).

From each class ``c`` with ``n_c`` training examples, ``round(fraction * n_c)`` examples are drawn
without replacement by a generator seeded with ``(seed, c)``: the subset depends only on the labels,
the fraction and the seed, never on the encoder, so every variant fine-tunes on the same images and
rows compare. The subset's sha256 (of its sorted int64 indices) is logged beside every result.
"""

from __future__ import annotations

import hashlib

import numpy as np

from csl.errors import ConfigError


def fraction_key(fraction: float) -> str:
    """``0.01 -> "1pct"``: the metric-name form of a label fraction."""
    return f"{fraction * 100:g}pct".replace(".", "_")


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted int64 indices of a class-stratified ``fraction`` of ``labels`` ``(N,)``.

    Raises :class:`ConfigError` (before any work) when a class would get no example."""
    labels = np.asarray(labels).astype(np.int64)
    if not 0 < fraction <= 1:
        raise ConfigError(f"label fraction must be in (0, 1], got {fraction}")
    classes, counts = np.unique(labels, return_counts=True)
    picked = []
    for c, n in zip(classes.tolist(), counts.tolist()):
        k = int(round(fraction * n))
        if k < 1:
            raise ConfigError(f"a label fraction of {fraction} leaves class {c} ({n} training examples) with no "
                              f"example; use a fraction of at least {0.5 / n:.4g} or a larger dataset")
        members = np.flatnonzero(labels == c)
        rng = np.random.default_rng([seed, c])
        picked.append(members[rng.permutation(n)[:k]])
    return np.sort(np.concatenate(picked)).astype(np.int64)


def subset_hash(indices: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.sort(indices).astype("<i8")).tobytes()).hexdigest()
