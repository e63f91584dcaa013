"""Batch norm over the global batch on any device (torch's SyncBatchNorm needs a GPU).

SimCLR (arXiv 2002.05709, Sec. 3, "Global BN"), BYOL, MoCo v3, SwAV and Barlow Twins
normalize with statistics of the whole batch across devices. :class:`GlobalBatchNorm`
all-reduces the per-channel sum, sum of squares and count with a differentiable all-reduce,
so with ``W`` processes of batch ``B`` the forward and the gradients equal one process with
batch ``W*B``. On one process it is exactly ``nn.BatchNorm``.
"""

from __future__ import annotations

import torch
from torch import nn

from csl.distributed import all_reduce_sum, world_size


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected a 2D-5D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or world_size() == 1:
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        local_n = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        stats = all_reduce_sum(torch.cat([xf.sum(dims), xf.pow(2).sum(dims), local_n]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean.pow(2)).clamp(min=0)  # biased, as batch norm normalizes
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_to_global_bn(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d in ``module`` by a :class:`GlobalBatchNorm` with the
    same parameters and running statistics."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        for p_new, p_old in zip(new.parameters(), module.parameters()):
            p_new.requires_grad_(p_old.requires_grad)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_to_global_bn(child))
    return module
