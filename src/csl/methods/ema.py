"""Exponential moving average of a network: the target (teacher) of BYOL, MoCo and DINO.

The target is an explicit copy that the training step updates in plain sight with
:func:`ema_update`; it is a submodule of the method, so it is checkpointed and restored
with the model, and it never receives gradients.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(online: nn.Module) -> nn.Module:
    """A frozen deep copy of ``online`` (same initial weights)."""
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``t <- m t + (1 - m) o`` for every parameter (biases and norm weights included) and
    every floating-point buffer (BN running statistics); integer buffers are copied."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers()):
        if tb.is_floating_point():
            tb.mul_(momentum).add_(ob, alpha=1 - momentum)
        else:
            tb.copy_(ob)
