"""Construct a method variant's module from its config and the dataset's facts."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from csl.methods.config import MethodConfig
from csl.registry import build


def build_encoder(cfg: MethodConfig, in_channels: int) -> nn.Module:
    from csl.encoders import ENCODERS

    return build(ENCODERS, cfg.parts["encoder"], in_channels=in_channels)


def build_method(cfg: MethodConfig, meta: dict[str, Any]) -> nn.Module:
    """The five parts, built and composed by the method's builder."""
    from csl.augment import AUGMENTATIONS
    from csl.extract import EXTRACTORS
    from csl.losses import LOSSES
    from csl.methods import METHODS
    from csl.similarity import SIMILARITIES

    channels, size = int(meta["shape"][0]), int(meta["shape"][1])
    encoder = build_encoder(cfg, channels)
    parts = {
        "augment": build(AUGMENTATIONS, cfg.parts["augment"], image_size=size,
                         mean=torch.tensor(meta["mean"]), std=torch.tensor(meta["std"])),
        "encoder": encoder,
        "extract": build(EXTRACTORS, cfg.parts["extract"], in_dim=encoder.out_dim),
        "similarity": build(SIMILARITIES, cfg.parts["similarity"]),
        "loss": build(LOSSES, cfg.parts["loss"]),
        "loss_kind": LOSSES[cfg.parts["loss"].name].kind,
    }
    method = METHODS[cfg.method].build(cfg.method_params, parts, channels_last=cfg.train.channels_last)
    if cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    return method
