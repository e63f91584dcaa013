"""Any timm architecture as an encoder: ``{name: timm, model: resnet18, ...}``.

The backbone is built with ``num_classes=0`` (no classifier: the pooled features are the
representation) and ``in_chans`` set to the data's channels. ``pretrained: true`` asks timm for
the published weights, which come from the Hugging Face hub: without network access (or a local
HF cache holding them) that fails with an error that says so. ``options`` are passed to
``timm.create_model`` as they are (e.g. ``{img_size: 32, patch_size: 4}`` for a ViT, or
``{drop_path_rate: 0.1}``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from csl.errors import ConfigError, CslError


@dataclass(frozen=True)
class TimmConfig:
    model: str = "resnet18"
    pretrained: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    min_input_size: int = 8

    def validate(self, path: str) -> None:
        import timm

        if not timm.is_model(self.model):
            close = difflib.get_close_matches(self.model, timm.list_models(), n=6, cutoff=0.6)
            hint = f"; close matches: {', '.join(close)}" if close else "; list them with timm.list_models('*pattern*')"
            raise ConfigError(f"'{path}.model': timm has no architecture {self.model!r}{hint}")
        if self.min_input_size < 1:
            raise ConfigError(f"'{path}.min_input_size' must be >= 1")


class TimmEncoder(nn.Module):
    """``(N, C, H, W) -> (N, num_features)`` of the timm backbone without its classifier."""

    def __init__(self, in_channels: int, cfg: TimmConfig) -> None:
        super().__init__()
        import timm

        try:
            self.net = timm.create_model(cfg.model, pretrained=cfg.pretrained, num_classes=0, in_chans=in_channels,
                                         **cfg.options)
        except TypeError as e:
            raise ConfigError(f"timm model {cfg.model!r} does not take the options {cfg.options}: {e}") from None
        except Exception as e:  # download failures: huggingface_hub / requests / OSError
            if cfg.pretrained:
                raise CslError(
                    f"the pretrained weights of timm model {cfg.model!r} cannot be loaded ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200]}); they are downloaded from the Hugging Face hub, which this "
                    "machine cannot reach. Set pretrained: false, or place the weights in the local Hugging Face "
                    "cache (HF_HOME) and set HF_HUB_OFFLINE=1") from None
            raise
        self.out_dim = int(getattr(self.net, "num_features"))  # noqa: B009 (an int attribute, not a submodule)
        self.min_input_size = cfg.min_input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)
        return out


def build_timm(cfg: TimmConfig, in_channels: int) -> TimmEncoder:
    return TimmEncoder(in_channels, cfg)
