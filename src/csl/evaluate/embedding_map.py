"""A 2-D map of test embeddings (t-SNE, van der Maaten & Hinton 2008; or PCA) for the report."""

from __future__ import annotations

import numpy as np
import torch

from csl.evaluate.config import MapConfig


def embedding_map(features: torch.Tensor, labels: torch.Tensor, cfg: MapConfig, seed: int) -> dict[str, np.ndarray]:
    """A seeded, class-stratified subset of ``cfg.points`` test embeddings in 2-D."""
    rng = np.random.default_rng(seed)
    n = features.shape[0]
    idx = np.sort(rng.permutation(n)[: min(cfg.points, n)])
    x = torch.nn.functional.normalize(features[idx].float(), dim=1).numpy()
    if cfg.method == "pca" or len(idx) < 10:
        x = x - x.mean(0)
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        xy = x @ vt[:2].T
    else:
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(idx) - 1) / 3),
                  random_state=seed).fit_transform(x)
    return {"xy": xy.astype(np.float32), "labels": labels[idx].numpy().astype(np.int64)}
