"""Deep InfoMax across views and scales: AMDIM, and YADIM as a configuration of it.

AMDIM (Bachman et al., 2019, arXiv 1906.00910, Sec. 3): two views through one encoder that
exposes feature maps at several scales; each comparison ``(s, t)`` scores one feature of
scale ``s`` from view A (the 1x1 global feature, or a random location of a larger map) with
every location of the scale-``t`` map of view B, by NCE against the locations of the other
images (:func:`csl.losses.amdim_nce`). AMDIM uses ``1-5, 1-7, 5-5`` in both directions.

Each scale's features pass through their own copy of the extraction head (AMDIM's per-scale
embedding), applied at every location. YADIM (Falcon & Cho, 2020, arXiv 2009.00104, Sec. 6)
is this method with ``comparisons: [[1, 1]]`` (the last feature map only), a dot-product NCE,
the merged AMDIM + CPC augmentation and any encoder: params.yaml, no code of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather, rank, world_size
from csl.errors import ConfigError
from csl.methods.views import require_views


@dataclass(frozen=True)
class DIMConfig:
    """``comparisons``: ``[source scale, target scale]`` pairs, scales by spatial size."""

    comparisons: list[tuple[int, int]] = field(default_factory=lambda: [(1, 5), (1, 7), (5, 5)])
    bidirectional: bool = True

    def validate(self, path: str) -> None:
        if not self.comparisons:
            raise ConfigError(f"'{path}.comparisons' must list at least one [source, target] pair of scales")


class DIM(Method):
    def __init__(self, cfg: DIMConfig, augment: nn.Module, encoder: nn.Module,
                 make_head: Callable[[int], nn.Module], loss: Callable[..., torch.Tensor], channels_last: bool,
                 image_size: int, in_channels: int) -> None:
        super().__init__()
        if not callable(getattr(encoder, "feature_maps", None)):
            raise ConfigError(f"method 'dim' needs an encoder with feature maps (amdim, small_cnn, resnet); "
                              f"{type(encoder).__name__} has none")
        self.cfg = cfg
        self.augment = augment
        self.encoder = encoder
        self.loss_fn = loss
        self.channels_last = channels_last
        with torch.no_grad():
            was = encoder.training
            encoder.eval()
            probe = encoder.feature_maps(torch.zeros(2, in_channels, image_size, image_size))  # type: ignore[operator]
            encoder.train(was)
        scales = sorted({s for pair in cfg.comparisons for s in pair})
        missing = [s for s in scales if s not in probe]
        if missing:
            raise ConfigError(f"method.comparisons uses scale(s) {missing} but the encoder's feature maps at "
                              f"{image_size} px have sizes {sorted(probe)}")
        self.heads = nn.ModuleDict({str(s): make_head(int(probe[s].shape[1])) for s in scales})

    def _embed(self, maps: dict[int, torch.Tensor], scale: int) -> torch.Tensor:
        """``(N, C, s, s) -> (N, D, s*s)``: the scale's head at every location."""
        m = maps[scale]
        n, c = m.shape[:2]
        z = self.heads[str(scale)](m.permute(0, 2, 3, 1).reshape(-1, c)).float()  # z: (N*s*s) x D
        return z.reshape(n, -1, z.shape[1]).permute(0, 2, 1)

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        images = batch.images
        views = self.augment(images, generator)  # build_dim checked two views of one size
        n = images.shape[0]
        x = torch.cat(views[:2])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = self.encoder.feature_maps(x)  # type: ignore[operator]
        emb = {s: self._embed(maps, int(s)).split(n) for s in self.heads}
        total = torch.zeros((), device=images.device)
        terms = 0
        directions = [(0, 1), (1, 0)] if self.cfg.bidirectional else [(0, 1)]
        for src, trg in self.cfg.comparisons:
            for a, b in directions:
                source = emb[str(src)][a]  # source: N x D x L_s
                if source.shape[2] > 1:  # a random location per image (AMDIM's 5-5 comparison)
                    # drawn for the global batch, this rank's rows: processes see what one process would
                    w, r = world_size(), rank()
                    loc = torch.randint(source.shape[2], (w * n,), device=generator.device,
                                        generator=generator)[r * n:(r + 1) * n]
                    source = source[torch.arange(n, device=source.device), :, loc.to(source.device)]
                else:
                    source = source[:, :, 0]
                total = total + self.loss_fn(gather(source), gather(emb[str(trg)][b]))
                terms += 1
        return {"loss": total / terms}


def build_dim(cfg: DIMConfig, parts: Parts, channels_last: bool) -> DIM:
    require_views(parts.augment, 2, "dim", same_size=True)
    return DIM(cfg, parts.augment, parts.encoder, parts.make_extract, parts.loss, channels_last,
               parts.image_size, parts.in_channels)
