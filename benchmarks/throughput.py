"""End-to-end SimCLR pretraining throughput, csl against a peer library, side by side.

For each encoder, in one run on this machine:

- **csl**: ``csl pretrain`` as a user runs it (the Lightning loop; the uint8 dataset in memory on
  the training device; batched per-sample augmentation there; ``precision: auto``, channels_last,
  LARS), images/s of the second epoch of ``--steps`` steps (the first includes warm-up);
- **peer**: lightly's documented SimCLR recipe (``benchmarks/peer_lightly.py``:
  SimCLRTransform on PIL images, a DataLoader with ``--workers`` workers, SimCLRProjectionHead,
  NTXentLoss, SGD, fp32) with the same backbone architecture, batch and augmentation ranges;
  lightly is installed for the benchmark only (``make peer`` -> build/peer);

csl is timed twice, eagerly and with ``train.compile: true`` (``torch.compile`` of the encoder and
head; its compile time is the first epoch's extra seconds); then the ratios, and csl's achieved FLOP
rate as a fraction of this CPU's measured matmul peak in the precision csl computes in here (bf16
where the CPU has it natively, else fp32: ``csl.precision``). ``--accuracy-epochs E`` also trains both for E epochs on the full training set and
evaluates both backbones with csl's protocol (linear probe on frozen standardized features).

    python benchmarks/throughput.py [--encoders small resnet18] [--steps 10] [--accuracy-epochs 0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CIFAR_ZIP = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.zip"

SETUPS: dict[str, dict[str, Any]] = {
    # the variant simclr-small of params.yaml
    "small": {"desc": "small CNN, Fashion-MNIST 1x28x28", "encoder": {"name": "small_cnn", "widths": [32, 64, 128]},
              "data": {"dataset": "fashion-mnist", "source": "auto"}, "crop": [0.2, 1.0], "temperature": 0.2},
    # SimCLR's CIFAR-10 setting (arXiv 2002.05709, B.9): crop 0.08-1, strength 0.5, no blur
    "resnet18": {"desc": "ResNet-18 (CIFAR stem), CIFAR-10 3x32x32",
                 "encoder": {"name": "resnet", "depth": 18, "cifar_stem": True},
                 "data": {"dataset": "imagefolder", "source": str(CIFAR_ZIP)}, "crop": [0.08, 1.0],
                 "temperature": 0.5},
}


def variant(setup: dict[str, Any], batch: int, epochs: int, steps: int | None, compile: bool = False) -> dict[str, Any]:
    return {
        "method": "simclr",
        "augment": {"name": "simclr", "crop_scale": setup["crop"], "strength": 0.5, "grayscale_p": 0.2,
                    "blur_p": 0.0},
        "encoder": setup["encoder"],
        "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128},
        "similarity": "cosine",
        "loss": {"name": "nt_xent", "temperature": setup["temperature"]},
        "optimizer": {"name": "lars", "lr": 0.075, "lr_scaling": "sqrt", "weight_decay": 1e-6},
        "schedule": {"warmup_epochs": 0 if steps else 1},
        "train": {"epochs": epochs, "batch_size": batch, "progress_bar": False, "limit_train_batches": steps,
                  "compile": compile},
    }


def csl(project: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([str(BIN / "csl"), "--project", str(project), *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"csl {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")


def project(name: str, setup: dict[str, Any], batch: int, epochs: int, steps: int | None, max_train: int | None,
            root: Path, compile: bool = False) -> Path:
    p = root / name
    p.mkdir(parents=True, exist_ok=True)
    data = {**setup["data"], **({"max_train": max_train, "max_test": 2000} if max_train else {})}
    params = {"data": data, "variants": ["ours"], "methods": {"ours": variant(setup, batch, epochs, steps, compile)},
              "tracking": {"experiment": "throughput"}}
    (p / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if not (p / "data" / "prepared" / "meta.json").is_file():
        csl(p, "prepare")
    return p


def peer(project_dir: Path, setup_name: str, setup: dict[str, Any], batch: int, steps: int, workers: int,
         peer_dir: Path, epochs: int = 0, save: Path | None = None) -> dict[str, float]:
    from csl.data import load

    data = load(project_dir / "data" / "prepared")
    npz = project_dir / "peer-data.npz"
    if not npz.is_file():
        np.savez(npz, images=data.train.images, mean=np.array(data.meta["mean"]), std=np.array(data.meta["std"]))
    env = {**os.environ, "PYTHONPATH": f"{peer_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(REPO / "benchmarks" / "peer_lightly.py"), str(npz), "--encoder", setup_name,
           "--batch", str(batch), "--steps", str(steps), "--workers", str(workers), "--min-scale",
           str(setup["crop"][0]), "--temperature", str(setup["temperature"]), "--epochs", str(epochs)]
    if save:
        cmd += ["--save", str(save)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"peer failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of a square matmul in the dtype csl's training computes in here."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


def step_flops(setup: dict[str, Any], batch: int, meta: dict[str, Any]) -> float:
    """FLOPs of one csl training step (2 views: forward + backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    from csl.methods.base import Batch
    from csl.methods.config import parse_method
    from csl.train.build import build_method

    cfg = parse_method(variant(setup, batch, 1, 1), "bench")
    method = build_method(cfg, meta)
    images = torch.randint(0, 256, (batch, *meta["shape"]), dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        loss = method.training_loss(Batch(images), torch.Generator().manual_seed(0))["loss"]
        loss.backward()
    return float(counter.get_total_flops())


def accuracy(project_dir: Path, setup_name: str, setup: dict[str, Any], batch: int, epochs: int, workers: int,
             peer_dir: Path) -> dict[str, float]:
    from csl.data import load
    from csl.evaluate.protocol import evaluate_encoder
    from csl.params import load_params

    shutil.rmtree(project_dir / "checkpoints", ignore_errors=True)  # train afresh, never resume a past run
    csl(project_dir, "pretrain", "--variant", "ours", f"methods.ours.train.epochs={epochs}",
        "methods.ours.train.limit_train_batches=null", "methods.ours.schedule.warmup_epochs=1")
    ours_hist = json.loads((project_dir / "runs/ours/pretrain/history.json").read_text())
    csl(project_dir, "features", "--variant", "ours")
    csl(project_dir, "linear-eval", "--variant", "ours")
    ours = json.loads((project_dir / "runs/ours/eval/metrics.json").read_text())
    save = project_dir / "peer-backbone.pt"
    p = peer(project_dir, setup_name, setup, batch, 0, workers, peer_dir, epochs=epochs, save=save)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from peer_lightly import backbone

    data = load(project_dir / "data" / "prepared")
    net, _ = backbone(setup_name, data.channels)
    net.load_state_dict(torch.load(save, weights_only=True))
    metrics, _, _ = evaluate_encoder(net, data, load_params(project_dir / "params.yaml").eval, name="peer")
    return {"ours_linear": ours["linear_top1"], "ours_knn": ours["knn_top1"], "peer_linear": metrics["linear_top1"],
            "peer_knn": metrics["knn_top1"], "ours_seconds": sum(r["epoch_seconds"] for r in ours_hist),
            "peer_seconds": p["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["small", "resnet18"], choices=list(SETUPS))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per side")
    ap.add_argument("--workers", type=int, default=2, help="the peer's DataLoader workers (default: cores)")
    ap.add_argument("--accuracy-epochs", type=int, default=0, help="also train both E epochs and evaluate")
    ap.add_argument("--peer-dir", default=str(REPO / "build" / "peer"), help="where lightly is installed")
    ap.add_argument("--root", default=str(REPO / "build" / "throughput"))
    args = ap.parse_args()
    peer_dir = Path(args.peer_dir)
    if not (peer_dir / "lightly").is_dir():
        raise SystemExit(f"lightly is not installed in {peer_dir}: run 'make peer' (pip install --no-deps --target "
                         "build/peer lightly==1.6.0)")
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, batch {args.batch}, "
          f"peer: lightly 1.6.0 with {args.workers} DataLoader workers")
    from csl.precision import bf16_pays

    dtype = "bf16" if bf16_pays("cpu") else "fp32"  # what csl's precision: auto computes in on this CPU
    peak = matmul_peak(torch.bfloat16 if dtype == "bf16" else torch.float32)
    print(f"csl computes in {dtype} here (precision: auto); {dtype} matmul peak (2048^3, measured): "
          f"{peak / 1e9:.0f} GFLOP/s")
    print(f"{'setting':<44}{'csl img/s':>10}{'peer img/s':>11}{'ratio':>8}{'csl GFLOP/s':>13}{'of peak':>9}"
          f"{'compiled img/s':>16}{'ratio':>8}{'compile s':>11}")
    results = {}
    for name in args.encoders:
        setup = SETUPS[name]
        root = Path(args.root)
        # timing: a subset of the training set is plenty (2 x steps batches)
        p = project(f"{name}-{args.batch * args.steps * 2}", setup, args.batch, 2, args.steps,
                    args.batch * args.steps * 2, root)
        hist = {}
        for compiled in (False, True):
            shutil.rmtree(p / "checkpoints", ignore_errors=True)  # never resume an earlier timing run
            csl(p, "pretrain", "--variant", "ours", f"methods.ours.train.compile={str(compiled).lower()}")
            hist[compiled] = json.loads((p / "runs/ours/pretrain/history.json").read_text())
        ours, comp = hist[False][-1]["images_per_s"], hist[True][-1]["images_per_s"]
        compile_s = hist[True][0]["epoch_seconds"] - hist[False][0]["epoch_seconds"]  # first epoch: compile + steps
        theirs = peer(p, name, setup, args.batch, args.steps, args.workers, peer_dir)["images_per_s"]
        from csl.data import read_meta

        flops = step_flops(setup, args.batch, read_meta(p / "data" / "prepared")) / args.batch * ours
        results[name] = {"csl": ours, "peer": theirs, "ratio": ours / theirs, "flops": flops, "of_peak": flops / peak,
                         "csl_compiled": comp, "ratio_compiled": comp / theirs, "compile_seconds": compile_s}
        print(f"{setup['desc']:<44}{ours:>10.1f}{theirs:>11.1f}{ours / theirs:>7.2f}x{flops / 1e9:>13.1f}"
              f"{flops / peak:>8.1%}{comp:>16.1f}{comp / theirs:>7.2f}x{compile_s:>11.0f}", flush=True)
    if args.accuracy_epochs:
        print(f"\nlinear top-1 after {args.accuracy_epochs} epochs on the full training set (csl's protocol for both)")
        for name in args.encoders:
            setup = SETUPS[name]
            p = project(f"{name}-full", setup, args.batch, args.accuracy_epochs, None, None, Path(args.root))
            acc = accuracy(p, name, setup, args.batch, args.accuracy_epochs, args.workers, peer_dir)
            results[name]["accuracy"] = acc
            print(f"{setup['desc']:<44} csl {acc['ours_linear']:.2%} (kNN {acc['ours_knn']:.2%}, "
                  f"{acc['ours_seconds']:.0f} s)   peer {acc['peer_linear']:.2%} (kNN {acc['peer_knn']:.2%}, "
                  f"{acc['peer_seconds']:.0f} s)", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
