"""The losses of ``fidelity.py``'s two sides on the same embeddings: value and gradient.

Where csl and its peer disagree after training, this separates the loss from everything around it
(heads, batch norm, data, optimizer). For each loss, random embeddings at the fidelity shapes
(batch 256, two views, 128-d; 10 classes for SupCon) go through csl's function and the peer's
(lightly 1.6.0's ``NTXentLoss`` for SimCLR, pytorch-metric-learning 2.9.0's ``SupConLoss`` for
SupCon, as ``peer_fidelity.py`` calls them), and it prints both values and the largest absolute
difference of their gradients with respect to the embeddings. Needs ``make peer``.

    make peer && .venv/bin/python benchmarks/peer_loss_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / "build" / "peer"


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def compare(name: str, ours, theirs, inputs: list[torch.Tensor]) -> float:  # type: ignore[no-untyped-def]
    a, b = ours(*inputs), theirs(*inputs)
    va, vb = a.item(), b.item()
    ga, gb = torch.autograd.grad(a, inputs), torch.autograd.grad(b, inputs)
    diff = max(float((x - y).abs().max()) for x, y in zip(ga, gb, strict=True))
    norm = max(float(x.abs().max()) for x in ga)
    print(f"{name:<38}{va:>12.6f}{vb:>12.6f}{abs(va - vb):>11.2e}{diff:>12.2e}{norm:>11.2e}")
    return diff


def main() -> None:
    if not (PEER / "lightly").is_dir() or not (PEER / "pytorch_metric_learning").is_dir():
        raise SystemExit(f"the peer libraries are not in {PEER}: run 'make peer'")
    sys.path.insert(0, str(PEER))
    from lightly.loss import NTXentLoss
    from pytorch_metric_learning.losses import SupConLoss

    from csl.losses.nt_xent import nt_xent
    from csl.losses.supcon import supcon

    torch.manual_seed(0)
    n, d = 256, 128
    z0, z1 = torch.randn(n, d, requires_grad=True), torch.randn(n, d, requires_grad=True)
    y = torch.randint(0, 10, (n,))
    print("command: python benchmarks/peer_loss_check.py")
    print(f"random embeddings: 2 views x {n} x {d}, {int(y.max()) + 1} classes; fp32; torch {torch.__version__}")
    print(f"{'loss':<38}{'csl':>12}{'peer':>12}{'|diff|':>11}{'grad diff':>12}{'grad max':>11}")
    worst = max(
        compare(
            "SimCLR nt_xent t=0.5 / NTXentLoss",
            lambda a, b: nt_xent(a, b, 0.5, cosine),
            NTXentLoss(temperature=0.5),
            [z0, z1],
        ),
        compare(
            "SupCon t=0.1 / SupConLoss",
            lambda a, b: supcon([a, b], y, cosine, 0.1, 0.1),
            lambda a, b: SupConLoss(temperature=0.1)(torch.cat([a, b]), y.repeat(2)),
            [z0, z1],
        ),
    )
    print(f"largest gradient difference: {worst:.2e}")


if __name__ == "__main__":
    main()
