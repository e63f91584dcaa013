"""Pretraining step throughput (augmentation + forward + backward + optimizer step).

Side by side in one process on the same machine: images/s for each encoder with fp32 vs
bf16 autocast, with and without channels_last, and the ratio to the fp32 baseline. The data
path is csl's: uint8 batch in memory, batched augmentation on the training device.

    python benchmarks/pretrain_throughput.py [--encoders small_cnn resnet] [--steps 5] [--batch 256]
    python benchmarks/pretrain_throughput.py --encoders resnet18_torchvision resnet18_timm vit_tiny \
        --precisions bf16_cl --rounds 3

``--rounds R`` measures the encoders in turn R times (interleaved, so that a load change on the
machine hits all of them alike) and prints each round and the median; the ratio column is then
to the first encoder, at equal precision.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.train.build import build_method
from csl.train.optim import build_optimizer


def method_cfg(encoder: dict, channels_last: bool) -> dict:
    return {
        "method": "simclr",
        "augment": {"name": "simclr", "strength": 0.5},
        "encoder": encoder,
        "extract": {"name": "mlp_projection", "hidden_dim": 512, "out_dim": 128},
        "similarity": "cosine",
        "loss": {"name": "nt_xent", "temperature": 0.5},
        "train": {"channels_last": channels_last},
    }


def measure(encoder: dict, size: int, channels: int, batch: int, steps: int, bf16: bool, cl: bool) -> float:
    cfg = parse_method(method_cfg(encoder, cl), "bench")
    meta = {"shape": [channels, size, size], "mean": [0.5] * channels, "std": [0.25] * channels}
    torch.manual_seed(0)
    method = build_method(cfg, meta)
    opt = build_optimizer(method, cfg.optimizer, 0.1)
    images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = method.training_loss(Batch(images), g)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


SETUPS = {
    "small_cnn": ({"name": "small_cnn", "widths": [32, 64, 128]}, 28, 1, "Fashion-MNIST-sized 1x28x28"),
    "resnet": ({"name": "resnet", "depth": 18, "cifar_stem": True}, 32, 3, "CIFAR-sized 3x32x32"),
    # the same ResNet-18 arithmetic (7x7 stem, max pool) from torchvision (csl's `resnet`) and from timm
    "resnet18_torchvision": ({"name": "resnet", "depth": 18, "cifar_stem": False}, 64, 3, "3x64x64"),
    "resnet18_timm": ({"name": "timm", "model": "resnet18"}, 64, 3, "3x64x64"),
    # the zoo's ViT-Tiny (dino-vit-tiny / moco-v3-vit-tiny): 16 patches of 7x7 + CLS, width 192, 12 blocks
    "vit_tiny": ({"name": "vit", "image_size": 28, "patch_size": 7, "dim": 192, "depth": 12, "heads": 3}, 28, 1,
                 "ViT-Tiny/7 1x28x28"),
    "convnext_atto_timm": ({"name": "timm", "model": "convnext_atto"}, 32, 3, "3x32x32"),
}
PRECISIONS = {"fp32": (False, False), "bf16": (True, False), "bf16_cl": (True, True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["small_cnn", "resnet"], choices=list(SETUPS))
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; > 1 prints the median")
    args = ap.parse_args()
    setups = SETUPS
    print(f"command: python {' '.join(sys.argv)}")
    if args.rounds > 1:
        interleaved(args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 2 views per image")
    print(f"{'encoder':<12}{'input':<30}{'precision':<11}{'layout':<15}{'images/s':>10}{'vs fp32':>9}")
    for name in args.encoders:
        enc, size, ch, desc = setups[name]
        base = None
        for bf16, cl in (PRECISIONS[p] for p in args.precisions):
            ips = measure(enc, size, ch, args.batch, args.steps, bf16, cl)
            base = base or ips
            print(f"{name:<12}{desc:<30}{'bf16' if bf16 else 'fp32':<11}{'channels_last' if cl else 'contiguous':<15}"
                  f"{ips:>10.1f}{ips / base:>8.2f}x")


def interleaved(args: argparse.Namespace) -> None:
    import statistics

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 2 views per image, "
          f"{args.steps} timed steps, {args.rounds} interleaved rounds")
    for prec in args.precisions:
        bf16, cl = PRECISIONS[prec]
        runs: dict[str, list[float]] = {n: [] for n in args.encoders}
        for r in range(args.rounds):
            for name in args.encoders:
                enc, size, ch, _ = SETUPS[name]
                runs[name].append(measure(enc, size, ch, args.batch, args.steps, bf16, cl))
            print(f"round {r + 1} ({prec}): " + ", ".join(f"{n} {v[-1]:.1f}" for n, v in runs.items()), flush=True)
        base = statistics.median(runs[args.encoders[0]])
        print(f"{'encoder':<22}{'input':<22}{'precision':<10}{'median img/s':>13}{'min':>9}{'max':>9}"
              f"{'vs ' + args.encoders[0]:>28}")
        for name, v in runs.items():
            med = statistics.median(v)
            print(f"{name:<22}{SETUPS[name][3]:<22}{prec:<10}{med:>13.1f}{min(v):>9.1f}{max(v):>9.1f}"
                  f"{med / base:>27.3f}x")


if __name__ == "__main__":
    main()
