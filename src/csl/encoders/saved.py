"""Load a pretrained encoder written by ``csl pretrain`` as a ready feature extractor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from csl.errors import CslError

ENCODER_FORMAT = "csl-encoder-v1"


class FeatureExtractor(nn.Module):
    """Images in, embeddings out: ``uint8 (N, C, H, W)`` (or float in [0, 1]) -> ``(N, D)``,
    normalized with the mean/std of the dataset the encoder was trained on."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoder: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return self.encoder((x - self.mean) / self.std)


def build_from_payload(payload: dict[str, Any], random_init_seed: int | None = None) -> nn.Module:
    """The encoder described by ``payload``: its trained weights, or (with ``random_init_seed``)
    a freshly initialized encoder of the same architecture, the random baseline."""
    from csl.encoders import ENCODERS
    from csl.registry import build, parse_spec

    spec = parse_spec(ENCODERS, "encoder", dict(payload["encoder"]), "encoder.pt:encoder")
    if random_init_seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(random_init_seed)
            return build(ENCODERS, spec, in_channels=payload["in_channels"])
    enc = build(ENCODERS, spec, in_channels=payload["in_channels"])
    enc.load_state_dict(payload["state_dict"])
    return enc


def read_payload(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CslError(f"no encoder at {path}: run 'csl pretrain' for this variant first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CslError(f"{path} is unreadable ({type(e).__name__}: {e}); rerun 'csl pretrain'") from None
    if not isinstance(payload, dict) or payload.get("format") != ENCODER_FORMAT:
        raise CslError(f"{path} is not a csl encoder file (expected format {ENCODER_FORMAT})")
    return payload


def load_feature_extractor(path: str | Path) -> FeatureExtractor:
    """``load_feature_extractor("runs/simclr/pretrain/encoder.pt")(images) -> embeddings``."""
    payload = read_payload(Path(path))
    return FeatureExtractor(build_from_payload(payload), payload["mean"], payload["std"]).eval()
