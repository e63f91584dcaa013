"""Construct a method variant's module from its config and the dataset's facts."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from csl.errors import ConfigError
from csl.methods.base import Method, Parts, require_method
from csl.methods.config import MethodConfig
from csl.registry import build


def build_encoder(cfg: MethodConfig, in_channels: int) -> nn.Module:
    from csl.encoders import ENCODERS

    return build(ENCODERS, cfg.parts["encoder"], in_channels=in_channels)


def build_method(cfg: MethodConfig, meta: dict[str, Any],
                 encoder_state: dict[str, torch.Tensor] | None = None) -> Method:
    """The five parts, built and composed by the method's builder. ``encoder_state``: the encoder's
    starting weights (a warm start, ``train.init_from``), loaded before the method's builder runs so
    that parts copied from the encoder (EMA teachers) start from them too."""
    from csl.augment import AUGMENTATIONS
    from csl.extract import EXTRACTORS
    from csl.losses import LOSSES
    from csl.methods import METHODS
    from csl.similarity import SIMILARITIES

    channels, size = int(meta["shape"][0]), int(meta["shape"][1])
    encoder = build_encoder(cfg, channels)
    if encoder_state is not None:
        try:
            encoder.load_state_dict(encoder_state, strict=True)
        except RuntimeError as e:
            raise ConfigError(f"train.init_from: the parent encoder does not fit encoder "
                              f"'{cfg.parts['encoder'].name}' of this variant ({str(e).splitlines()[0]}); warm-start "
                              "from an encoder of the same architecture and input channels") from None
    parts = Parts(
        augment=build(AUGMENTATIONS, cfg.parts["augment"], image_size=size,
                      mean=torch.tensor(meta["mean"]), std=torch.tensor(meta["std"])),
        encoder=encoder,
        extract=build(EXTRACTORS, cfg.parts["extract"], in_dim=encoder.out_dim),
        similarity=build(SIMILARITIES, cfg.parts["similarity"]),
        loss=build(LOSSES, cfg.parts["loss"]),
        loss_kind=LOSSES[cfg.parts["loss"].name].kind,
        make_extract=lambda in_dim: build(EXTRACTORS, cfg.parts["extract"], in_dim=in_dim),
        image_size=size,
        in_channels=channels,
    )
    check_view_sizes(parts.augment, encoder, cfg.parts["encoder"].name)
    method = require_method(METHODS[cfg.method].build(cfg.method_params, parts,
                                                      channels_last=cfg.train.channels_last), cfg.method)
    if cfg.train.channels_last:
        method = method.to(memory_format=torch.channels_last)
    return method


def view_crops(cfg: MethodConfig, meta: dict[str, Any]) -> tuple[Any, ...]:
    """Each view's crop (size, scale, ratio) as the variant's augmentation declares it: what a
    loader cutting crops from native-size images needs (:mod:`csl.augment.native`)."""
    from csl.augment import AUGMENTATIONS

    augment = build(AUGMENTATIONS, cfg.parts["augment"], image_size=int(meta["shape"][1]),
                    mean=torch.tensor(meta["mean"]), std=torch.tensor(meta["std"]))
    return tuple(augment.crops())


def check_view_sizes(augment: nn.Module, encoder: nn.Module, encoder_name: str) -> None:
    """Every view size (multi-crop included) must be one the encoder can take."""
    lo = int(getattr(encoder, "min_input_size", 1))
    hi = int(getattr(encoder, "max_input_size", 1 << 30))
    for spec in getattr(augment, "specs", []):
        if not lo <= spec.size <= hi:
            raise ConfigError(f"augment: a view of {spec.size} px cannot go through encoder '{encoder_name}' "
                              f"(it takes {lo} to {hi} px); change the crop size or the encoder")
