"""Clustering of frozen features: k-means with k = number of classes, scored against the labels
with NMI, ARI and accuracy under the best one-to-one matching of clusters to classes (the
Hungarian algorithm; as in IIC, arXiv 1807.06653, and SCAN, arXiv 2005.12320).

Features are L2-normalized first (the encoder's embeddings are compared by cosine everywhere in
csl); k-means is :func:`csl.cluster.kmeans.kmeans` (Lloyd, ``restarts`` seeded restarts, lowest
objective kept).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from csl.cluster.kmeans import kmeans
from csl.errors import ConfigError


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Fraction of points whose cluster maps to their class under the one-to-one map of clusters
    to classes that maximizes that fraction (``scipy.optimize.linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment

    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    size = int(max(labels.max(), clusters.max())) + 1
    counts = np.zeros((size, size), dtype=np.int64)  # counts[cluster, class]
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def cluster_metrics(features: torch.Tensor, labels: torch.Tensor, k: int, seed: int, restarts: int,
                    iterations: int) -> dict[str, float]:
    """``{"cluster_nmi", "cluster_ari", "cluster_acc"}`` of k-means on ``features`` ``(N, D)``."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    n = features.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"clustering needs 1 <= k <= number of points; got k = {k} for {n} points")
    x = F.normalize(features.float(), dim=1)
    result = kmeans(x, k, iterations=iterations, redo=restarts, generator=torch.Generator().manual_seed(seed))
    pred = result.assign.cpu().numpy()
    y = labels.cpu().numpy()
    return {"cluster_nmi": float(normalized_mutual_info_score(y, pred)),
            "cluster_ari": float(adjusted_rand_score(y, pred)),
            "cluster_acc": hungarian_accuracy(y, pred)}
