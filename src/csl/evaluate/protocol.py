"""The evaluation protocol for one encoder: features once, then linear top-1 and kNN top-1."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from csl.data.dataset import Split
from csl.data.prepared import Prepared, StreamSplit
from csl.evaluate.config import PROTOCOL_VERSION, EvalConfig
from csl.evaluate.features import extract_features, stream_features
from csl.evaluate.knn import knn_top1
from csl.evaluate.linear import linear_top1


def evaluate_encoder(
    encoder: nn.Module, data: Prepared, cfg: EvalConfig, device: str = "cpu", name: str = "encoder"
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Returns ``({"linear_top1", "knn_top1"}, test_features, test_labels)``."""
    meta = data.meta
    c = len(meta["classes"])
    if isinstance(data.train, StreamSplit) and isinstance(data.test, StreamSplit):  # streamed from shards
        size, ch = int(meta["shape"][1]), int(meta["shape"][0])
        ftr, ytr = stream_features(encoder, data.train.root, size, ch, meta["mean"], meta["std"], cfg.batch_size,
                                   device)
        fte, yte = stream_features(encoder, data.test.root, size, ch, meta["mean"], meta["std"], cfg.batch_size,
                                   device)
    elif isinstance(data.train, Split) and isinstance(data.test, Split):
        ftr = extract_features(encoder, data.train.images, meta["mean"], meta["std"], cfg.batch_size, device,
                               desc=f"{name} train features").cpu()
        fte = extract_features(encoder, data.test.images, meta["mean"], meta["std"], cfg.batch_size, device,
                               desc=f"{name} test features").cpu()
        ytr = torch.as_tensor(data.train.labels)
        yte = torch.as_tensor(data.test.labels)
    else:
        raise TypeError("train and test must both be in memory or both streamed")
    metrics = {
        "linear_top1": linear_top1(ftr, ytr, fte, yte, c, cfg.linear, cfg.seed),
        "knn_top1": knn_top1(ftr, ytr, fte, yte, c, cfg.knn.k, cfg.knn.temperature),
    }
    return metrics, fte, yte


def protocol_record(cfg: EvalConfig) -> dict[str, Any]:
    """What a reported number depends on: the protocol version and its settings."""
    from csl.config.strict import to_dict

    return {"version": PROTOCOL_VERSION, **to_dict(cfg)}
