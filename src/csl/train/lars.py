"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017, arXiv 1708.03888).

SimCLR trains with LARS at large batch sizes (arXiv 2002.05709, Sec. 2.2) and excludes
biases and batch-norm parameters from both weight decay and the adaptation. Per parameter
tensor ``w`` with gradient ``g``::

    g' = g + wd * w
    trust = eta * ||w|| / ||g'||      (1 where either norm is 0, or adaptation is off)
    v = momentum * v + trust * g'
    w = w - lr * v
"""

from __future__ import annotations

from typing import Any, Iterable

import torch


class LARS(torch.optim.Optimizer):
    """Param groups may set ``lars_adapt: False`` to skip the trust ratio (biases, norms)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 0.001,
    ) -> None:
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta, "lars_adapt": True}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        """One update of every parameter, with multi-tensor (``torch._foreach_*``) kernels per
        group: a handful of calls instead of ~8 per tensor, and the trust ratios stay on the
        device (no host read)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            pairs = [(p, p.grad) for p in group["params"] if p.grad is not None]
            if not pairs:
                continue
            params = [p for p, _ in pairs]
            grads: list[torch.Tensor] = [g for _, g in pairs]
            fresh = group["weight_decay"] != 0  # grads becomes new tensors (p.grad is never modified)
            if fresh:
                grads = list(torch._foreach_add(grads, params, alpha=group["weight_decay"]))
            if group["lars_adapt"]:
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                    torch.ones_like(w_norm))
                if fresh:
                    torch._foreach_mul_(grads, list(trust.unbind()))
                else:
                    grads = list(torch._foreach_mul(grads, list(trust.unbind())))
            # v starts at 0, so the first step's v = g exactly, as with a buffer cloned from g
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss
