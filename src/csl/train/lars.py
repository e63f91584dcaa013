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
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"] != 0:
                    g = g.add(p, alpha=group["weight_decay"])
                if group["lars_adapt"]:
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, torch.ones_like(w_norm)
                    )
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
