"""Data-parallel scaling on this machine: 1 process vs 2 processes (DDP over gloo, CPU).

Side by side in one run, the same SimCLR variant at the same global batch (default 256) on
the prepared dataset of params.yaml (Fashion-MNIST):

- 1 process, 1 thread           (the per-process baseline)
- 1 process, all threads        (what one process gets from the whole machine)
- 2 processes x 1 thread each   (torchrun --nproc-per-node 2; per-rank batch = global / 2)
- the same with per-process batch-norm statistics (train.sync_batchnorm=false), to show what
  the all-reduce per BN layer costs

Each figure is images/s of the last epoch (the first includes start-up). Scaling efficiency =
images/s with 2 processes / (2 x images/s of 1 process with 1 thread).

    python benchmarks/scaling.py [--variant simclr-small] [--steps 60] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(work: Path, variant: str, procs: int, threads: int, batch: int, steps: int, epochs: int,
        extra: tuple[str, ...] = ()) -> dict:
    shutil.rmtree(work / "checkpoints", ignore_errors=True)
    m = f"methods.{variant}.train"
    overrides = [f"{m}.epochs={epochs}", f"{m}.limit_train_batches={steps}", f"{m}.batch_size={batch // procs}",
                 f"{m}.devices={procs}", f"{m}.accelerator=cpu", f"{m}.progress_bar=false", *extra]
    cmd = [str(BIN / "csl")] if procs == 1 else [str(BIN / "torchrun"), "--nproc-per-node", str(procs), "-m", "csl"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    env.pop("MLFLOW_TRACKING_URI", None)
    subprocess.run([*cmd, "--params", str(work / "params.yaml"), "--project", str(work), "pretrain", "--variant",
                    variant, *overrides], check=True, env=env, stdout=subprocess.DEVNULL)
    history = json.loads((work / "runs" / variant / "pretrain" / "history.json").read_text())
    return {"processes": procs, "threads_per_process": threads, "images_per_s": history[-1]["images_per_s"],
            "loss": history[-1]["loss"], "note": " ".join(extra)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="simclr-small")
    ap.add_argument("--batch", type=int, default=256, help="global batch")
    ap.add_argument("--steps", type=int, default=60, help="steps per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "build" / "scaling")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "params.yaml", args.work / "params.yaml")
    if not (args.work / "data" / "prepared").is_dir():
        subprocess.run([str(BIN / "csl"), "--project", str(args.work), "prepare"], check=True,
                       stdout=subprocess.DEVNULL)
    cores = os.cpu_count() or 1
    rows = [run(args.work, args.variant, 1, 1, args.batch, args.steps, args.epochs),
            run(args.work, args.variant, 1, cores, args.batch, args.steps, args.epochs),
            run(args.work, args.variant, 2, 1, args.batch, args.steps, args.epochs),
            run(args.work, args.variant, 2, 1, args.batch, args.steps, args.epochs,
                (f"methods.{args.variant}.train.sync_batchnorm=false",))]
    base, whole, ddp, local_bn = rows
    print(f"{args.variant}, global batch {args.batch}, {args.steps} steps x {args.epochs} epochs, {cores} cores")
    for r in rows:
        print(f"  {r['processes']} process(es) x {r['threads_per_process']} thread(s): "
              f"{r['images_per_s']:7.0f} images/s total, {r['images_per_s'] / r['processes']:7.0f} per process"
              + (f"  ({r['note']})" if r["note"] else ""))
    eff = ddp["images_per_s"] / (2 * base["images_per_s"])
    print(f"  scaling efficiency (2 procs vs 2 x 1 proc, 1 thread each): {eff:.2f}")
    print(f"  2 processes vs 1 process with {cores} threads: {ddp['images_per_s'] / whole['images_per_s']:.2f}x")
    print(f"  cost of global batch-norm statistics: {local_bn['images_per_s'] / ddp['images_per_s']:.2f}x faster "
          "without (per-process BN statistics change the results; csl's default keeps them global)")
    print("command: python benchmarks/scaling.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
