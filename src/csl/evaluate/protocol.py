"""The frozen-encoder protocol: features once per dataset, then linear top-1 and kNN top-1."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from csl.data.dataset import Split
from csl.data.prepared import Prepared, StreamSplit
from csl.evaluate.config import PROTOCOL_VERSION, EvalConfig
from csl.evaluate.features import extract_features, stream_features
from csl.evaluate.knn import knn_top1
from csl.evaluate.linear import linear_top1


class Features(NamedTuple):
    """Frozen features of both splits: ``train (N, D)``, ``train_labels (N,)``, ``test (M, D)``,
    ``test_labels (M,)``."""

    train: torch.Tensor
    train_labels: torch.Tensor
    test: torch.Tensor
    test_labels: torch.Tensor


def encoder_features(encoder: nn.Module, data: Prepared, cfg: EvalConfig, device: str = "cpu",
                     name: str = "encoder") -> Features:
    """Features of every train and test image (eval mode, no augmentation, bf16 autocast where it pays)."""
    meta = data.meta
    if isinstance(data.train, StreamSplit) and isinstance(data.test, StreamSplit):  # streamed from shards
        size, ch = int(meta["shape"][1]), int(meta["shape"][0])
        ftr, ytr = stream_features(encoder, data.train.root, size, ch, meta["mean"], meta["std"], cfg.batch_size,
                                   device)
        fte, yte = stream_features(encoder, data.test.root, size, ch, meta["mean"], meta["std"], cfg.batch_size,
                                   device)
        return Features(ftr, ytr, fte, yte)
    if isinstance(data.train, Split) and isinstance(data.test, Split):
        ftr = extract_features(encoder, data.train.images, meta["mean"], meta["std"], cfg.batch_size, device,
                               desc=f"{name} train features").cpu()
        fte = extract_features(encoder, data.test.images, meta["mean"], meta["std"], cfg.batch_size, device,
                               desc=f"{name} test features").cpu()
        return Features(ftr, torch.as_tensor(data.train.labels), fte, torch.as_tensor(data.test.labels))
    raise TypeError("train and test must both be in memory or both streamed")


def frozen_metrics(f: Features, num_classes: int, cfg: EvalConfig) -> dict[str, float]:
    """``{"linear_top1", "knn_top1"}`` of one encoder's features."""
    return {
        "linear_top1": linear_top1(f.train, f.train_labels, f.test, f.test_labels, num_classes, cfg.linear, cfg.seed),
        "knn_top1": knn_top1(f.train, f.train_labels, f.test, f.test_labels, num_classes, cfg.knn.k,
                             cfg.knn.temperature),
    }


def evaluate_encoder(
    encoder: nn.Module, data: Prepared, cfg: EvalConfig, device: str = "cpu", name: str = "encoder"
) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    """Returns ``({"linear_top1", "knn_top1"}, test_features, test_labels)``."""
    f = encoder_features(encoder, data, cfg, device, name)
    return frozen_metrics(f, len(data.meta["classes"]), cfg), f.test, f.test_labels


def protocol_record(cfg: EvalConfig) -> dict[str, Any]:
    """What a linear/kNN number depends on: the protocol version and its settings."""
    from csl.config.strict import to_dict

    return {"version": PROTOCOL_VERSION, "batch_size": cfg.batch_size, "random_baseline": cfg.random_baseline,
            "seed": cfg.seed, "linear": to_dict(cfg.linear), "knn": to_dict(cfg.knn), "map": to_dict(cfg.map)}
