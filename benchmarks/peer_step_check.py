"""One training step of ``fidelity.py``'s two sides from the same weights on the same views.

``peer_loss_check.py`` compares the losses alone; this compares everything a step computes: csl's
method as ``fidelity.py`` configures it (``csl_variant``: encoder, head, similarity, loss, built by
``csl.train.build.build_method``) and the peer's network (``peer_fidelity.Peer`` from
``peer_recipe``: lightly's head, its loss, the recipe's one-pass forward), with the peer's weights
copied from csl's, on the same two views (random, since the augmentation is not what is compared)
and, for SupCon, the same labels. It prints both losses and the largest relative difference
(``|g_csl - g_peer| / |g_csl|`` per tensor) of the encoder's and the head's gradients.

csl trains in ``channels_last`` (``train.channels_last``); the step is compared in both layouts,
since the convolution kernels of the two layouts round differently in fp32; a last line per method
gives the scale of fp32 rounding itself: the peer's fp32 gradients against the same step in fp64.
Needs ``make peer``.

    make peer && .venv/bin/python benchmarks/peer_step_check.py
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PEER = REPO / "build" / "peer"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def relative(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).norm() / x.norm()) for x, y in zip(a, b, strict=True))


class FixedViews(torch.nn.Module):
    """Stands in for csl's augmentation: returns the given views whatever the batch."""

    def __init__(self, views: list[torch.Tensor]) -> None:
        super().__init__()
        self.views = views

    def forward(self, images: torch.Tensor, generator: torch.Generator | None) -> list[torch.Tensor]:
        return self.views


def check(name: str, n: int) -> None:
    import fidelity
    import peer_fidelity

    from csl.methods.base import Batch
    from csl.methods.config import parse_method
    from csl.train.build import build_method

    torch.manual_seed(0)
    cfg = parse_method(fidelity.csl_variant(name, 1, 0), f"methods.{name}")
    ours = build_method(cfg, {"shape": [3, 32, 32], "mean": [0.5] * 3, "std": [0.25] * 3})
    recipe = fidelity.peer_recipe(name)
    backbone = peer_fidelity.small_cnn(3, recipe["widths"])
    peer = peer_fidelity.Peer(recipe, backbone, backbone.out_dim, 1)
    peer.backbone.load_state_dict(ours.encoder.state_dict())
    mine, theirs = ours.head.state_dict(), peer.head.state_dict()
    shapes = [tuple(v.shape) for v in mine.values()], [tuple(v.shape) for v in theirs.values()]
    if shapes[0] != shapes[1]:
        raise SystemExit(f"{name}: the peer's head is not csl's network: {shapes[1]} vs {shapes[0]}")
    peer.head.load_state_dict(dict(zip(theirs, mine.values(), strict=True)))
    views = [torch.randn(n, 3, 32, 32), torch.randn(n, 3, 32, 32)]
    labels = torch.randint(0, 10, (n,))
    ours.augment = FixedViews(views)
    ours.train()
    peer.train()
    enc = len(list(peer.backbone.parameters()))  # gradients: the encoder's first, then the head's

    def grads(model: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
        return list(torch.autograd.grad(loss, list(model.parameters())))

    def row(label: str, loss: torch.Tensor, g: list[torch.Tensor], ref_loss: torch.Tensor,
            ref: list[torch.Tensor]) -> None:
        print(f"{name:<8}{label:<15}{loss.item():>12.6f}{ref_loss.item():>12.6f}"
              f"{abs(loss.item() - ref_loss.item()):>11.2e}{relative(g[:enc], ref[:enc]):>15.2e}"
              f"{relative(g[enc:], ref[enc:]):>13.2e}")

    peer_net = torch.nn.Sequential(peer.backbone, peer.head)
    lp = peer.loss(views, 0, labels if name == "supcon" else None)
    gp = grads(peer_net, lp)
    for layout in ("contiguous", "channels_last"):
        ours.channels_last = layout == "channels_last"
        ours.to(memory_format=torch.channels_last if ours.channels_last else torch.contiguous_format)
        batch = Batch(images=torch.zeros(n, 3, 32, 32, dtype=torch.uint8), labels=labels)
        lc = ours.training_loss(batch, torch.Generator())["loss"]
        row(layout, lc, grads(torch.nn.Sequential(ours.encoder, ours.head), lc), lp, gp)
    wide = copy.deepcopy(peer).double()
    lw = wide.loss([v.double() for v in views], 0, labels if name == "supcon" else None)
    row("peer fp64", lw, [g.float() for g in grads(torch.nn.Sequential(wide.backbone, wide.head), lw)], lp, gp)


def main() -> None:
    if not (PEER / "lightly").is_dir() or not (PEER / "pytorch_metric_learning").is_dir():
        raise SystemExit(f"the peer libraries are not in {PEER}: run 'make peer'")
    sys.path.insert(0, str(PEER))
    n = 256
    print("command: python benchmarks/peer_step_check.py")
    print(f"one step, fidelity.py's recipes, csl's weights copied to the peer; 2 random views x {n}, "
          f"10 classes; fp32; torch {torch.__version__}")
    print(f"{'method':<8}{'csl layout':<15}{'csl loss':>12}{'peer loss':>12}{'|diff|':>11}"
          f"{'encoder grad':>15}{'head grad':>13}")
    for name in ("simclr", "supcon"):
        check(name, n)


if __name__ == "__main__":
    main()
