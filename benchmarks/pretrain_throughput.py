"""Pretraining step throughput (augmentation + forward + backward + optimizer step).

Side by side in one process on the same machine: images/s for each encoder with fp32 vs
bf16 autocast, with and without channels_last, and the ratio to the fp32 baseline. The data
path is csl's: uint8 batch in memory, batched augmentation on the training device.

    python benchmarks/pretrain_throughput.py [--encoders small_cnn resnet] [--steps 5] [--batch 256]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

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
            loss = method.training_loss(images, g)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", nargs="+", default=["small_cnn", "resnet"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    setups = {
        "small_cnn": ({"name": "small_cnn", "widths": [32, 64, 128]}, 28, 1, "Fashion-MNIST-sized 1x28x28"),
        "resnet": ({"name": "resnet", "depth": 18, "cifar_stem": True}, 32, 3, "CIFAR-sized 3x32x32"),
    }
    print(f"command: python {' '.join(sys.argv)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, 2 views per image")
    print(f"{'encoder':<12}{'input':<30}{'precision':<11}{'layout':<15}{'images/s':>10}{'vs fp32':>9}")
    for name in args.encoders:
        enc, size, ch, desc = setups[name]
        base = None
        for bf16, cl in ((False, False), (True, False), (True, True)):
            ips = measure(enc, size, ch, args.batch, args.steps, bf16, cl)
            base = base or ips
            print(f"{name:<12}{desc:<30}{'bf16' if bf16 else 'fp32':<11}{'channels_last' if cl else 'contiguous':<15}"
                  f"{ips:>10.1f}{ips / base:>8.2f}x")


if __name__ == "__main__":
    main()
