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
    normalized with the mean/std of the dataset the encoder was trained on.

    ``image_shape`` ``(C, H, W)`` is the input the encoder was trained on; other inputs are refused
    with an error that names it (:meth:`check_input`). :meth:`preprocess` turns PIL images or
    arrays into that input; ``extractor.embed(images)`` does both and returns numpy embeddings."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, encoder: nn.Module, mean: list[float], std: list[float],
                 image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.image_shape = tuple(image_shape) if image_shape else None

    @property
    def out_dim(self) -> int:
        return int(getattr(self.encoder, "out_dim"))  # noqa: B009

    def expected(self) -> str:
        shape = getattr(self, "image_shape", None)  # None in models pickled before it existed
        c = shape[0] if shape else self.mean.shape[1]
        size = f"{c}x{shape[1]}x{shape[2]}" if shape else f"{c}xHxW"
        return (f"images of {size} (channels x height x width), uint8 in [0, 255] or float in [0, 1], "
                f"as a batch (N, {size.replace('x', ', ')})")

    def check_input(self, images: torch.Tensor) -> None:
        """Refuse a batch the encoder cannot take, naming the input it expects."""
        shape = getattr(self, "image_shape", None)
        c = shape[0] if shape else int(self.mean.shape[1])
        if images.ndim != 4 or images.shape[1] != c or (shape and tuple(images.shape[2:]) != tuple(shape[1:])):
            raise ValueError(f"this encoder takes {self.expected()}; got a batch of shape {tuple(images.shape)}. "
                             "Convert the images first (csl embed --adapt converts channels with BT.601 luma or "
                             "replication and resizes bilinearly)")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.check_input(images)
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        return self.encoder((x - self.mean) / self.std)

    def preprocess(self, images: Any) -> torch.Tensor:
        """PIL images, a list of ``(H, W[, C])`` arrays or an ``(N, C, H, W)`` array/tensor ->
        ``uint8 (N, C, H, W)`` checked against :attr:`image_shape` (no silent resizing)."""
        import numpy as np

        if isinstance(images, torch.Tensor):
            batch = images
        elif isinstance(images, np.ndarray):
            batch = torch.from_numpy(images)
        else:
            arrays = []
            for img in images:
                a = np.asarray(img)
                arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
            batch = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0)
        if batch.dtype != torch.uint8 and not batch.is_floating_point():
            raise ValueError(f"this encoder takes {self.expected()}; got {batch.dtype}")
        self.check_input(batch)
        return batch

    @torch.no_grad()
    def embed(self, images: Any) -> Any:
        """``preprocess`` then the encoder: ``(N, D)`` float32 numpy embeddings."""
        return self(self.preprocess(images)).float().numpy()


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
    shape = (int(payload["in_channels"]), int(payload["image_size"]), int(payload["image_size"]))
    return FeatureExtractor(build_from_payload(payload), payload["mean"], payload["std"], shape).eval()
