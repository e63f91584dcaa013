"""k-means (Lloyd's algorithm) in torch, on the device the features are on.

As PCL's official code runs it with faiss (salesforce/PCL ``run_kmeans``): random initial centroids
drawn from the points, ``iterations`` Lloyd steps, ``redo`` restarts keeping the lowest objective,
squared Euclidean distances. An emptied cluster is re-seeded with the point farthest from its
centroid (faiss splits a large cluster instead; both keep ``k`` non-empty clusters). Deterministic
for a given generator, so every rank of a distributed run (same features, same seed) gets the same
clustering.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KMeans:
    """``assign``: ``(N,)`` cluster of each point; ``centroids``: ``(k, D)``; ``dist``: ``(N,)`` squared
    distance of each point to its centroid; ``objective``: their sum."""

    assign: torch.Tensor
    centroids: torch.Tensor
    dist: torch.Tensor
    objective: float


def _assign(x: torch.Tensor, c: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid of each point and the squared distance, in chunks of points."""
    c_sq = (c * c).sum(1)
    idx, dist = [], []
    for i in range(0, x.shape[0], chunk):
        xs = x[i:i + chunk]
        d = (xs * xs).sum(1, keepdim=True) - 2 * xs @ c.T + c_sq[None, :]  # chunk x k
        m = d.min(1)
        idx.append(m.indices)
        dist.append(m.values.clamp_min(0))
    return torch.cat(idx), torch.cat(dist)


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iterations: int = 20, redo: int = 5,
           generator: torch.Generator | None = None) -> KMeans:
    """Cluster ``x`` ``(N, D)`` into ``k <= N`` clusters (float32 arithmetic)."""
    x = x.float()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= number of points; got k = {k} for {n} points")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    best: KMeans | None = None
    for _ in range(max(1, redo)):
        c = x[torch.randperm(n, generator=g)[:k].to(x.device)].clone()
        for _ in range(iterations):
            assign, dist = _assign(x, c)
            sums = torch.zeros_like(c).index_add_(0, assign, x)
            counts = torch.bincount(assign, minlength=k)
            empty = counts == 0
            c = torch.where(empty[:, None], c, sums / counts.clamp_min(1)[:, None].to(x.dtype))
            if bool(empty.any()):  # re-seed each emptied centroid with the farthest points
                far = dist.topk(int(empty.sum())).indices
                c[empty] = x[far]
        assign, dist = _assign(x, c)
        obj = float(dist.sum())
        if best is None or obj < best.objective:
            best = KMeans(assign, c, dist, obj)
    assert best is not None
    return best
