"""Where a csl SimCLR training step spends its time, and the ceiling that sets.

One step as ``csl pretrain`` runs it (batched augmentation of a uint8 batch on the device, two
views in one forward, bf16 autocast, channels_last, NT-Xent, backward, LARS), profiled with
``torch.profiler``; self time grouped into convolutions (forward and backward), batch norm,
ReLU, and the rest, eagerly and with ``train.compile`` (TorchInductor fuses the rest but leaves
the convolutions to oneDNN). The convolutions' share bounds the step: images/s if everything
but the convolutions took no time at all, and that as a multiple of the peer's images/s
(``--peer``, from ``throughput.py``).

    python benchmarks/step_profile.py [--encoder resnet18|small] [--steps 3] [--peer 33.4]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import SETUPS, variant  # noqa: E402

from csl.methods.base import Batch  # noqa: E402
from csl.methods.config import parse_method  # noqa: E402
from csl.train.build import build_method  # noqa: E402
from csl.train.compile import compile_networks  # noqa: E402
from csl.train.optim import build_optimizer  # noqa: E402

SHAPES = {"resnet18": [3, 32, 32], "small": [1, 28, 28]}


def category(name: str) -> str:
    if "conv" in name:
        return "convolution"
    if "batch_norm" in name:
        return "batch norm"
    if "relu" in name or "threshold" in name or "clamp_min" in name:
        return "relu"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="resnet18", choices=list(SHAPES))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--peer", type=float, default=0.0, help="the peer's images/s (throughput.py) for the bound's ratio")
    args = ap.parse_args()
    print(f"command: python {' '.join(sys.argv)}")
    torch.set_float32_matmul_precision("high")
    shape = SHAPES[args.encoder]
    meta = {"shape": shape, "mean": [0.5] * shape[0], "std": [0.25] * shape[0]}
    images = torch.randint(0, 256, (args.batch, *shape), dtype=torch.uint8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.encoder}, batch {args.batch} "
          f"(x2 views), seconds per step (mean of {args.steps}), self time by category")
    print(f"{'mode':<10}{'step s':>8}{'img/s':>8}{'conv s':>8}{'bn s':>7}{'relu s':>8}{'other s':>9}"
          f"{'conv share':>12}{'img/s if only conv':>20}" + (f"{'x peer':>8}" if args.peer else ""))
    cfg = parse_method(variant(SETUPS[args.encoder], args.batch, 1, 1), "bench")
    for compiled in (False, True):
        torch.manual_seed(0)
        method = build_method(cfg, meta)
        if compiled:
            compile_networks(method)
        opt = build_optimizer(method, cfg.optimizer, 0.1)
        gen = torch.Generator().manual_seed(0)

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16):
                loss = method.training_loss(Batch(images), gen)["loss"]
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(2):  # warm-up (and compilation)
            step()
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        seconds = (time.perf_counter() - start) / args.steps
        by = defaultdict(float)
        for e in prof.key_averages():
            if e.key.startswith("aten::") or e.key.startswith("mkldnn") or "Compiled" in e.key or "graph_" in e.key:
                by[category(e.key)] += e.self_cpu_time_total / 1e6 / args.steps
        total = sum(by.values())
        by["other"] += max(0.0, seconds - total)  # Python, autograd engine, kernels outside aten
        conv = by["convolution"]
        bound = args.batch / conv
        print(f"{'compiled' if compiled else 'eager':<10}{seconds:>8.3f}{args.batch / seconds:>8.1f}{conv:>8.3f}"
              f"{by['batch norm']:>7.3f}{by['relu']:>8.3f}{by['other']:>9.3f}{conv / seconds:>12.1%}{bound:>20.1f}"
              + (f"{bound / args.peer:>7.2f}x" if args.peer else ""), flush=True)


if __name__ == "__main__":
    main()
