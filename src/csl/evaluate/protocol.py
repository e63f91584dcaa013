"""The evaluation protocol for one encoder: features once, then linear top-1 and kNN top-1."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from csl.data.prepared import Prepared
from csl.evaluate.config import PROTOCOL_VERSION, EvalConfig
from csl.evaluate.features import extract_features
from csl.evaluate.knn import knn_top1
from csl.evaluate.linear import linear_top1


def evaluate_encoder(
    encoder: nn.Module, data: Prepared, cfg: EvalConfig, device: str = "cpu", name: str = "encoder"
) -> tuple[dict[str, float], torch.Tensor]:
    """Returns ``({"linear_top1", "knn_top1"}, test_features)``."""
    meta = data.meta
    ftr = extract_features(encoder, data.train.images, meta["mean"], meta["std"], cfg.batch_size, device,
                           desc=f"{name} train features").cpu()
    fte = extract_features(encoder, data.test.images, meta["mean"], meta["std"], cfg.batch_size, device,
                           desc=f"{name} test features").cpu()
    ytr = torch.as_tensor(data.train.labels)
    yte = torch.as_tensor(data.test.labels)
    c = len(meta["classes"])
    metrics = {
        "linear_top1": linear_top1(ftr, ytr, fte, yte, c, cfg.linear, cfg.seed),
        "knn_top1": knn_top1(ftr, ytr, fte, yte, c, cfg.knn.k, cfg.knn.temperature),
    }
    return metrics, fte


def protocol_record(cfg: EvalConfig) -> dict[str, Any]:
    """What a reported number depends on: the protocol version and its settings."""
    from csl.config.strict import to_dict

    return {"version": PROTOCOL_VERSION, **to_dict(cfg)}
