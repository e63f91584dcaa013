"""Fidelity: each csl method against a peer implementation of the same method, at equal budget.

For every method that lightly 1.6.0 implements (``peer_fidelity.py`` builds it from lightly's
heads, losses, momentum updates, memory bank and transforms; SupCon, which lightly lacks, with
pytorch-metric-learning 2.9.0's ``SupConLoss``), both sides train **one recipe**
on the real CIFAR-10 training images (``../shared/datasets/cifar10-jpeg.zip``, 50,000 images,
3x32x32): csl's small CNN (widths 32-64-128; the peer imports the same class), the same view
parameters (crop range, flip, colour-jitter ranges and probability, grayscale, solarization; no
blur at 32 px, as lightly's and SimCLR's CIFAR settings), head sizes, batch 256, optimizer (SGD,
momentum 0.9, lr 0.06 x B/128 and weight decay 5e-4 on every parameter: lightly's CIFAR-10
benchmark recipe), cosine schedule, epochs and method constants. Both encoders are then
evaluated by one protocol in this process: ``csl.evaluate.protocol.evaluate_encoder`` (frozen,
standardized features; linear probe and weighted kNN, k = 200), beside a random-init encoder.

- **Equal epochs**: csl with seeds 0 and 1 (run-to-run spread), the peer with seed 0; per method
  csl linear/kNN, peer linear/kNN, the difference (csl mean - peer) and each side's images/s.
- **Equal wall-clock** (``--wallclock simclr byol``): the peer's seconds for its equal-epoch run
  are the budget; csl trains as many whole epochs as its measured images/s fit in those
  seconds (with the cosine schedule planned for them) and both are evaluated alike.

csl runs as a user runs it (``csl pretrain``: Lightning loop, uint8 data on the device, batched
augmentation, channels_last, ``precision: auto``: bf16 autocast on a CPU with native bf16, else
fp32); the peer in fp32 with a 2-worker DataLoader, as in ``throughput.py``. Every run's result is kept in ``--root``/results.json under a key of its
recipe, epochs, seed and side, so an interrupted benchmark continues where it stopped
(``--fresh`` retrains). lightly and pytorch-metric-learning are installed for the benchmark only: ``make peer``.

    make peer && .venv/bin/python benchmarks/fidelity.py [--methods ...] [--epochs 10] [--seeds 0 1]
        [--wallclock simclr byol] [--max-train N]
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import csl as csl_command  # noqa: E402  (csl CLI in a subprocess, failing loudly)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CIFAR_ZIP = REPO.parent / "shared" / "datasets" / "cifar10-jpeg.zip"
WIDTHS = [32, 64, 128]
BATCH = 256
# lightly's CIFAR-10 benchmark: SGD, lr 6e-2 x (batch / 128), momentum 0.9, wd 5e-4 on all
# parameters, cosine annealing without warm-up; csl's linear scaling is lr x batch / 256
OPTIMIZER = {"name": "sgd", "lr": 0.12, "lr_scaling": "linear", "weight_decay": 5.0e-4, "momentum": 0.9,
             "exclude_bias_and_norm": False}
WARMUP_EPOCHS = 0


def view(crop: float, jitter: tuple[float, float, float, float], count: int = 1, solarize: float = 0.0) -> dict[str, Any]:
    b, c, s, h = jitter
    return {"count": count, "crop_scale": [crop, 1.0], "flip_p": 0.5, "jitter_p": 0.8, "brightness": b,
            "contrast": c, "saturation": s, "hue": h, "grayscale_p": 0.2, "blur_p": 0.0, "solarize_p": solarize}


SIMCLR_JITTER = (0.4, 0.4, 0.4, 0.1)  # SimCLR's strength 0.5 on CIFAR (arXiv 2002.05709, B.9)
BYOL_JITTER = (0.4, 0.4, 0.2, 0.1)  # BYOL (arXiv 2006.07733, Table 6), DINO
BYOL_VIEWS = [view(0.08, BYOL_JITTER), view(0.08, BYOL_JITTER, solarize=0.2)]  # blur 1.0 / 0.1 off at 32 px

# method -> the recipe both sides follow: views, csl's five-part config, the peer's constants
RECIPES: dict[str, dict[str, Any]] = {
    "simclr": {  # Chen et al. 2020, arXiv 2002.05709: 2-layer head with BN, NT-Xent t = 0.5 (CIFAR)
        "views": [view(0.08, SIMCLR_JITTER, count=2)],
        "csl": {"method": "simclr", "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128},
                "loss": {"name": "nt_xent", "temperature": 0.5}},
        # one_pass and no output BN: the same network and batch norm as csl's side (peer_fidelity.simclr_head)
        "peer": {"hidden": 512, "out": 128, "temperature": 0.5, "one_pass": True, "output_bn": False},
    },
    "supcon": {  # Khosla et al. 2020, arXiv 2004.11362: SimCLR's views, MLP head to 128-d, t = 0.1 on CIFAR
        # (Sec. 4); tau_base = tau so the official code's tau / tau_base factor is 1, as the peer's loss has none
        "views": [view(0.08, SIMCLR_JITTER, count=2)],
        "csl": {"method": "supcon", "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128},
                "loss": {"name": "supcon", "temperature": 0.1, "base_temperature": 0.1}},
        # one_pass: both views through one forward (the official main_supcon.py), as csl's embed_views;
        # output_bn False: csl's head (the official SupCon head has no batch norm on its output either)
        "peer": {"hidden": 512, "out": 128, "temperature": 0.1, "one_pass": True, "output_bn": False},
    },
    "moco_v2": {  # Chen et al. 2020, arXiv 2003.04297: MLP head (no BN), t = 0.2, queue (4096 at CIFAR scale)
        "views": [view(0.2, SIMCLR_JITTER, count=2)],
        "csl": {"method": {"name": "moco_v2", "queue_size": 4096, "momentum_base": 0.99, "momentum_final": 0.99,
                           "key_bn_groups": 4},
                "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128, "batch_norm": False},
                "loss": {"name": "info_nce", "temperature": 0.2}},
        "peer": {"hidden": 512, "out": 128, "temperature": 0.2, "queue": 4096, "momentum": [0.99, 0.99],
                 "key_bn_groups": 4},
    },
    "byol": {  # Grill et al. 2020, arXiv 2006.07733: projector and predictor Linear-BN-ReLU-Linear, tau cosine to 1
        "views": BYOL_VIEWS,
        "csl": {"method": {"name": "byol", "predictor": {"hidden_dim": 1024}, "momentum_base": 0.99,
                           "momentum_final": 1.0},
                "extract": {"name": "mlp_projection", "hidden_dim": 1024, "out_dim": 256}, "loss": {"name": "byol"}},
        "peer": {"hidden": 1024, "out": 256, "pred_hidden": 1024, "momentum": [0.99, 1.0]},
    },
    "simsiam": {  # Chen & He 2021, arXiv 2011.10566: 3-layer projector with output BN, bottleneck predictor
        "views": [view(0.2, SIMCLR_JITTER, count=2)],
        "csl": {"method": {"name": "simsiam", "predictor": {"hidden_dim": 128}},
                "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 512, "layers": 3,
                            "last_batch_norm": True},
                "loss": {"name": "negative_cosine"}},
        "peer": {"hidden": 512, "out": 512, "pred_hidden": 128},
    },
    "barlow_twins": {  # Zbontar et al. 2021, arXiv 2103.03230: 3-layer projector, lambda 5e-3
        "views": BYOL_VIEWS,
        "csl": {"method": "barlow_twins",
                "extract": {"name": "mlp_projection", "hidden_dim": 1024, "out_dim": 1024, "layers": 3},
                "loss": {"name": "barlow_twins", "lambda_offdiag": 5.0e-3}},
        "peer": {"hidden": 1024, "out": 1024, "lambda": 5.0e-3},
    },
    "swav": {  # Caron et al. 2020, arXiv 2006.09882: t = 0.1, eps 0.05, 3 Sinkhorn steps, prototypes frozen 1 epoch
        "views": [view(0.14, SIMCLR_JITTER, count=2)],  # lightly's CIFAR setting: 2 crops of 32 px
        "csl": {"method": {"name": "swav", "prototypes": 100, "freeze_prototypes_epochs": 1, "queue_length": 0},
                "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128},
                "loss": {"name": "swav", "temperature": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3}},
        "peer": {"hidden": 512, "out": 128, "prototypes": 100, "freeze_epochs": 1, "temperature": 0.1,
                 "epsilon": 0.05, "sinkhorn_iterations": 3},
    },
    "dino": {  # Caron et al. 2021, arXiv 2104.14294: teacher t 0.04 -> 0.07, student 0.1, centre 0.9
        "views": [view(0.4, BYOL_JITTER), view(0.4, BYOL_JITTER, solarize=0.2)],  # lightly's CIFAR: no local crops
        "csl": {"method": {"name": "dino", "momentum_base": 0.99, "momentum_final": 1.0, "teacher_temperature": 0.04,
                           "teacher_temperature_final": 0.07, "teacher_temperature_warmup_epochs": 2,
                           "center_momentum": 0.9, "freeze_last_layer_epochs": 1},
                "extract": {"name": "dino_head", "hidden_dim": 512, "bottleneck_dim": 64, "out_dim": 1024,
                            "batch_norm": True},
                "loss": {"name": "dino", "student_temperature": 0.1}},
        "peer": {"hidden": 512, "bottleneck": 64, "out": 1024, "batch_norm": True, "freeze_last_layer_epochs": 1,
                 "teacher_temp": 0.04, "teacher_temp_final": 0.07, "teacher_temp_warmup_epochs": 2,
                 "student_temp": 0.1, "center_momentum": 0.9, "momentum": [0.99, 1.0]},
    },
}
# csl's zoo methods with no peer in lightly 1.6 (no MoCo v3 heads; its DCLLoss is Decoupled CL, not
# the Debiased CL of csl's dcl): not in this table. SupCon's peer loss is pytorch-metric-learning's.
NO_PEER = ["moco_v3", "dcl", "hcl", "amdim", "yadim", "cpc"]


def csl_variant(name: str, epochs: int, seed: int) -> dict[str, Any]:
    r = RECIPES[name]
    return {**copy.deepcopy(r["csl"]), "augment": {"name": "views", "groups": copy.deepcopy(r["views"])},
            "encoder": {"name": "small_cnn", "widths": WIDTHS}, "similarity": "cosine", "optimizer": OPTIMIZER,
            "schedule": {"warmup_epochs": WARMUP_EPOCHS},
            "train": {"epochs": epochs, "batch_size": BATCH, "seed": seed, "progress_bar": False}}


def peer_recipe(name: str) -> dict[str, Any]:
    r = RECIPES[name]
    return {"method": name, "views": r["views"], "n_global": sum(g["count"] for g in r["views"]), "peer": r["peer"],
            "widths": WIDTHS, "batch_size": BATCH, "warmup_epochs": WARMUP_EPOCHS,
            "optimizer": {k: OPTIMIZER[k] for k in ("lr", "weight_decay", "momentum")}}


def key(side: str, name: str, epochs: int, seed: int, max_train: int | None) -> str:
    recipe = csl_variant(name, epochs, seed) if side == "csl" else peer_recipe(name)
    h = hashlib.sha256(json.dumps({"recipe": recipe, "epochs": epochs, "seed": seed, "n": max_train},
                                  sort_keys=True).encode()).hexdigest()[:10]
    return f"{name}/{side}/e{epochs}/s{seed}/{h}"


class Bench:
    def __init__(self, root: Path, max_train: int | None, peer_dir: Path, workers: int, fresh: bool) -> None:
        self.root, self.max_train, self.peer_dir, self.workers = root, max_train, peer_dir, workers
        self.results_path = root / "results.json"
        self.results: dict[str, Any] = {} if fresh or not self.results_path.is_file() else json.loads(
            self.results_path.read_text())
        self.project = root / "project"
        self.project.mkdir(parents=True, exist_ok=True)
        self._data: Any = None

    def save(self, k: str, value: dict[str, Any]) -> None:
        self.results[k] = value
        tmp = self.results_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.results, indent=1, sort_keys=True))
        tmp.replace(self.results_path)

    def csl(self, *args: str) -> None:
        csl_command(self.project, *args)

    def write_params(self, variants: dict[str, dict[str, Any]]) -> None:
        data: dict[str, Any] = {"dataset": "imagefolder", "source": str(CIFAR_ZIP)}
        if self.max_train:
            data.update(max_train=self.max_train, max_test=max(1000, self.max_train // 5))
        params = {"data": data, "variants": list(variants) or ["none"], "methods": variants,
                  "tracking": {"experiment": "fidelity"}}
        (self.project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def data(self) -> Any:
        from csl.data import load

        if self._data is None:
            if not (self.project / "data" / "prepared" / "meta.json").is_file():
                self.write_params({"prep": csl_variant("simclr", 1, 0)})
                self.csl("prepare")
            self._data = load(self.project / "data" / "prepared")
        return self._data

    def evaluate(self, encoder: torch.nn.Module) -> dict[str, float]:
        from csl.evaluate.config import EvalConfig
        from csl.evaluate.protocol import evaluate_encoder

        metrics, _, _ = evaluate_encoder(encoder, self.data(), EvalConfig(random_baseline=False), name="fidelity")
        return {"linear": metrics["linear_top1"], "knn": metrics["knn_top1"]}

    def run_csl(self, name: str, epochs: int, seed: int) -> dict[str, Any]:
        from csl.encoders.saved import build_from_payload, read_payload

        k = key("csl", name, epochs, seed, self.max_train)
        if k in self.results:
            return self.results[k]
        self.data()
        variant = f"{name}-e{epochs}-s{seed}"
        self.write_params({variant: csl_variant(name, epochs, seed)})
        shutil.rmtree(self.project / "checkpoints" / variant, ignore_errors=True)  # train afresh: honest seconds
        print(f"[{time.strftime('%H:%M:%S')}] csl {name}, {epochs} epochs, seed {seed}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        self.csl("pretrain", "--variant", variant)
        wall = time.perf_counter() - start
        out = self.project / "runs" / variant / "pretrain"
        hist = json.loads((out / "history.json").read_text())
        train_s = sum(r["epoch_seconds"] for r in hist)
        images = sum(r["images_per_s"] * r["epoch_seconds"] for r in hist)
        res = {**self.evaluate(build_from_payload(read_payload(out / "encoder.pt"))), "seconds": train_s,
               "wall_seconds": wall, "images_per_s": images / train_s, "last_loss": hist[-1].get("loss"),
               "epochs": epochs}
        self.save(k, res)
        return res

    def run_peer(self, name: str, epochs: int, seed: int) -> dict[str, Any]:
        k = key("peer", name, epochs, seed, self.max_train)
        if k in self.results:
            return self.results[k]
        data = self.data()
        npz = self.root / "peer-data.npz"
        if npz.is_file():
            with np.load(npz) as z:
                if "labels" not in z.files:  # written before SupCon's peer needed them
                    npz.unlink()
        if not npz.is_file():
            np.savez(npz, images=data.train.images, labels=data.train.labels, mean=np.array(data.meta["mean"]),
                     std=np.array(data.meta["std"]))
        recipe = self.root / f"peer-{name}.json"
        recipe.write_text(json.dumps(peer_recipe(name)))
        save = self.root / f"peer-{name}-e{epochs}-s{seed}.pt"
        print(f"[{time.strftime('%H:%M:%S')}] peer {name}, {epochs} epochs, seed {seed}", file=sys.stderr, flush=True)
        env = {**os.environ, "PYTHONPATH": f"{self.peer_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               "PYTHONWARNINGS": "ignore"}
        cmd = [sys.executable, str(REPO / "benchmarks" / "peer_fidelity.py"), str(recipe), str(npz), "--epochs",
               str(epochs), "--seed", str(seed), "--workers", str(self.workers), "--save", str(save)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"peer {name} failed:\n{out.stderr[-3000:]}")
        p = json.loads(out.stdout.strip().splitlines()[-1])
        from csl.encoders.small_cnn import SmallCNN

        net = SmallCNN(data.channels, WIDTHS)
        net.load_state_dict(torch.load(save, weights_only=True))
        res = {**self.evaluate(net), **p, "epochs": epochs}
        self.save(k, res)
        return res

    def random_init(self) -> dict[str, float]:
        k = f"random/{self.max_train}"
        if k not in self.results:
            from csl.encoders.small_cnn import SmallCNN

            torch.manual_seed(0)
            self.save(k, self.evaluate(SmallCNN(self.data().channels, WIDTHS)))
        return self.results[k]


def cpu_name() -> str:
    """The CPU model (throughput figures compare only on one machine)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="csl's seeds (the peer runs the first)")
    ap.add_argument("--wallclock", nargs="*", default=["simclr", "byol"], choices=list(RECIPES),
                    help="methods of the equal wall-clock table")
    ap.add_argument("--max-train", type=int, default=None, help="a subset of the training set (smoke runs)")
    ap.add_argument("--workers", type=int, default=2, help="the peer's DataLoader workers")
    ap.add_argument("--peer-dir", default=str(REPO / "build" / "peer"))
    ap.add_argument("--root", default=str(REPO / "build" / "fidelity"))
    ap.add_argument("--fresh", action="store_true", help="retrain every run (default: reuse results.json)")
    ap.add_argument("--resume-from", help="a results.json of an earlier (interrupted) run to continue from, e.g. "
                    "the committed benchmarks/raw/fidelity-results-2026-12-07.json")
    args = ap.parse_args()
    peer_dir = Path(args.peer_dir)
    if not (peer_dir / "lightly").is_dir():
        raise SystemExit(f"lightly is not installed in {peer_dir}: run 'make peer'")
    if "supcon" in args.methods and not (peer_dir / "pytorch_metric_learning").is_dir():
        raise SystemExit(f"pytorch-metric-learning (SupCon's peer loss) is not installed in {peer_dir}: run 'make peer'")
    if not CIFAR_ZIP.is_file():
        raise SystemExit(f"CIFAR-10 is not at {CIFAR_ZIP}")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print(f"command: {Path(sys.executable).name} benchmarks/fidelity.py {' '.join(sys.argv[1:])}")
    print(f"commit {commit}{' (modified)' if dirty else ''}; {cpu_name()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads; peer: lightly 1.6.0, "
          f"{args.workers} DataLoader workers; {time.strftime('%Y-%m-%d %H:%M')}")
    b = Bench(Path(args.root), args.max_train, peer_dir, args.workers, args.fresh)
    if args.resume_from:
        b.results = {**json.loads(Path(args.resume_from).read_text()), **b.results}
    n_train = len(b.data().train.images)
    rnd = b.random_init()
    print(f"CIFAR-10: {n_train} training images; {args.epochs} epochs, batch {BATCH}; SGD lr {OPTIMIZER['lr']} "
          f"x B/256, wd {OPTIMIZER['weight_decay']}, cosine, warm-up {WARMUP_EPOCHS}; random-init encoder: "
          f"linear {pct(rnd['linear'])}, kNN {pct(rnd['knn'])}", flush=True)
    rows: dict[str, Any] = {}
    hdr = (f"{'method':<14}{'csl linear':>22}{'csl kNN':>18}{'peer linear':>13}{'peer kNN':>10}{'diff':>7}"
           f"{'csl img/s':>11}{'peer img/s':>12}{'speed':>7}")
    print("\nequal epochs\n" + hdr, flush=True)
    for name in args.methods:
        ours = [b.run_csl(name, args.epochs, s) for s in args.seeds]
        theirs = b.run_peer(name, args.epochs, args.seeds[0])
        lin = [r["linear"] for r in ours]
        knn = [r["knn"] for r in ours]
        ips = float(np.mean([r["images_per_s"] for r in ours]))
        diff = float(np.mean(lin)) - theirs["linear"]
        rows[name] = {"csl": ours, "peer": theirs, "diff_linear": diff}
        print(f"{name:<14}{pct(np.mean(lin)):>8} ({'/'.join(pct(x) for x in lin)}){pct(np.mean(knn)):>7} "
              f"({'/'.join(pct(x) for x in knn)}){pct(theirs['linear']):>13}{pct(theirs['knn']):>10}"
              f"{100 * diff:>+7.2f}{ips:>11.0f}{theirs['images_per_s']:>12.0f}{ips / theirs['images_per_s']:>6.2f}x",
              flush=True)
    wall_rows: dict[str, Any] = {}
    if args.wallclock:
        print(f"\nequal wall-clock (the peer's seconds for {args.epochs} epochs; csl: the whole epochs its images/s "
              "fits in them, seed 0)")
        print(f"{'method':<14}{'budget s':>9}{'peer epochs':>12}{'peer s':>8}{'peer linear':>12}{'peer kNN':>9}"
              f"{'csl epochs':>11}{'csl s':>8}{'csl linear':>11}{'csl kNN':>9}{'diff':>7}")
    for name in args.wallclock:
        theirs = b.run_peer(name, args.epochs, args.seeds[0])
        ours0 = b.run_csl(name, args.epochs, args.seeds[0])
        budget = theirs["seconds"]
        epochs = max(args.epochs, int(budget * ours0["images_per_s"] // (n_train // BATCH * BATCH)))
        ours = b.run_csl(name, epochs, args.seeds[0])
        diff = ours["linear"] - theirs["linear"]
        wall_rows[name] = {"budget_seconds": budget, "csl": ours, "peer": theirs, "diff_linear": diff}
        print(f"{name:<14}{budget:>9.0f}{args.epochs:>12}{theirs['seconds']:>8.0f}{pct(theirs['linear']):>12}"
              f"{pct(theirs['knn']):>9}{epochs:>11}{ours['seconds']:>8.0f}{pct(ours['linear']):>11}"
              f"{pct(ours['knn']):>9}{100 * diff:>+7.2f}", flush=True)
    print(json.dumps({"commit": commit, "epochs": args.epochs, "seeds": args.seeds, "n_train": n_train,
                      "random_init": rnd, "equal_epochs": rows, "equal_wallclock": wall_rows}))


if __name__ == "__main__":
    main()
