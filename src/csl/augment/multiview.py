"""Many views of one batch: each view spec applied with the same generator, in order."""

from __future__ import annotations

import torch

from csl.augment.native import CroppedViews, ViewCrop
from csl.augment.view import ViewSpec, make_view
from csl.distributed import rank, world_size


class MultiViewAugment(torch.nn.Module):
    """``uint8 (N, C, H, W) -> [float (N, C, S, S)] * views``; no parameters, no state."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, specs: list[ViewSpec], mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.specs = specs
        self.register_buffer("mean", mean.float(), persistent=False)
        self.register_buffer("std", std.float(), persistent=False)

    def forward(self, images: torch.Tensor | CroppedViews, generator: torch.Generator) -> list[torch.Tensor]:
        # augmentation is image processing, not model compute: keep it in fp32 under autocast
        n, world = images.shape[0], world_size()
        shard = (rank() * n, world * n) if world > 1 else None  # the global batch's draws, this rank's rows
        with torch.autocast(device_type=images.device.type, enabled=False):
            if isinstance(images, CroppedViews):  # cropped by the loader from the native-size images
                assert len(images.views) == len(self.specs), (len(images.views), len(self.specs))
                return [make_view(v, s, self.mean, self.std, generator, shard, cropped=True)
                        for v, s in zip(images.views, self.specs)]
            return [make_view(images, s, self.mean, self.std, generator, shard) for s in self.specs]

    def crops(self) -> tuple[ViewCrop, ...]:
        """Each view's crop, for a loader that cuts them from native-size images."""
        return tuple(ViewCrop(s.size, s.crop_scale, s.crop_ratio) for s in self.specs)
