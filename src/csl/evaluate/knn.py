"""Weighted k-nearest-neighbour classification (Wu et al., 2018, arXiv 1805.01978, Eq. 8).

Features are L2-normalized; a test sample's ``k`` most similar training samples (cosine
similarity ``s_i``) vote for their class with weight ``exp(s_i / T)``; the class with the
largest total wins. The paper uses ``k = 200``, ``T = 0.07``; SSL libraries (solo-learn,
lightly) use ``T = 0.1`` with ``k = 200``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted labels ``(M,)`` for ``test_features`` ``(M, D)`` given ``(N, D)``/``(N,)``."""
    train = F.normalize(train_features.float(), dim=1)
    k = min(k, train.shape[0])
    preds = []
    for i in range(0, test_features.shape[0], chunk):
        q = F.normalize(test_features[i : i + chunk].float(), dim=1)
        sim = q @ train.T  # sim: M' x N
        top_sim, top_idx = sim.topk(k, dim=1)  # M' x k
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, train_labels[top_idx], weights)  # sum weights per class
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)


def knn_top1(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
             test_labels: torch.Tensor, num_classes: int, k: int, temperature: float) -> float:
    pred = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return float((pred == test_labels).float().mean())
