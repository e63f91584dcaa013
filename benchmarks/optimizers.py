"""Optimizer step time on the real parameter sets, per implementation, side by side.

LARS as csl runs it (multi-tensor ``torch._foreach_*``) against the per-tensor loop that
states the same formula (the reference the tests compare it with), and torch's SGD and AdamW
as loop, foreach and fused, on the parameters of SimCLR with the small CNN and with ResNet-18
(CIFAR stem) + projection head, weight decay on weights only (csl's parameter groups).

    python benchmarks/optimizers.py [--steps 50] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SETUPS, variant  # noqa: E402

from csl.methods.config import parse_method  # noqa: E402
from csl.train.build import build_method  # noqa: E402
from csl.train.lars import LARS  # noqa: E402
from csl.train.optim import param_groups  # noqa: E402


class LoopLARS(torch.optim.Optimizer):
    """The per-tensor statement of LARS (csl.train.lars's docstring), one tensor at a time."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                                  "lars_adapt": True})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] else p.grad
                if group["lars_adapt"]:
                    wn, gn = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    g = g * torch.where((wn > 0) & (gn > 0), group["eta"] * wn / gn, torch.ones_like(wn))
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                buf = self.state[p]["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(g)
                p.add_(buf, alpha=-group["lr"])


def groups(model: torch.nn.Module, lars: bool) -> list[dict[str, Any]]:
    from csl.train.optim import OptimizerConfig

    out = param_groups(model, OptimizerConfig())
    if not lars:
        for g in out:
            g.pop("lars_adapt", None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads; ms per step, best of 3")
    impls: dict[str, Callable[[torch.nn.Module], torch.optim.Optimizer]] = {
        "LARS csl (foreach)": lambda m: LARS(groups(m, True), lr=0.1, weight_decay=1e-6),
        "LARS per-tensor loop": lambda m: LoopLARS(groups(m, True), lr=0.1, weight_decay=1e-6),
        "SGD loop": lambda m: torch.optim.SGD(groups(m, False), lr=0.1, momentum=0.9, weight_decay=1e-6, foreach=False),
        "SGD foreach": lambda m: torch.optim.SGD(groups(m, False), lr=0.1, momentum=0.9, weight_decay=1e-6, foreach=True),
        "SGD fused": lambda m: torch.optim.SGD(groups(m, False), lr=0.1, momentum=0.9, weight_decay=1e-6, fused=True),
        "AdamW loop": lambda m: torch.optim.AdamW(groups(m, False), lr=1e-3, foreach=False),
        "AdamW foreach": lambda m: torch.optim.AdamW(groups(m, False), lr=1e-3, foreach=True),
        "AdamW fused (csl)": lambda m: torch.optim.AdamW(groups(m, False), lr=1e-3, fused=True),
    }
    models = {}
    for name, shape in (("small", [1, 28, 28]), ("resnet18", [3, 32, 32])):
        meta = {"shape": shape, "mean": [0.5] * shape[0], "std": [0.25] * shape[0]}
        model = build_method(parse_method(variant(SETUPS[name], 256, 1, 1), "bench"), meta).to(args.device)
        for p in model.parameters():
            p.grad = torch.randn_like(p) * 1e-3
        models[name] = model
    print(f"{'optimizer':<24}" + "".join(f"{n + ' (' + str(len(list(m.parameters()))) + ' tensors)':>26}"
                                         for n, m in models.items()))
    for label, make in impls.items():
        row = []
        for model in models.values():
            best = float("inf")
            for _ in range(3):
                opt = make(model)
                for _ in range(3):
                    opt.step()
                if args.device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(args.steps):
                    opt.step()
                if args.device == "cuda":
                    torch.cuda.synchronize()
                best = min(best, (time.perf_counter() - t) / args.steps * 1e3)
            row.append(best)
        print(f"{label:<24}" + "".join(f"{v:>23.2f} ms" for v in row), flush=True)


if __name__ == "__main__":
    main()
