"""The peer side of ``benchmarks/fidelity.py``: each method built from lightly 1.6.0's parts as
its examples and CIFAR-10 benchmark use them (heads from ``lightly.models.modules``, losses from
``lightly.loss``, ``update_momentum``/``batch_shuffle`` from ``lightly.models.utils``,
``cosine_schedule`` from ``lightly.utils.scheduler``, views from ``lightly.transforms`` on PIL
images through a torch ``DataLoader``), fp32, with the recipe that ``fidelity.py`` gives csl:
the same backbone (csl's small CNN), view parameters, head sizes, batch, optimizer, schedule,
epochs and method constants. Run with lightly on PYTHONPATH (``make peer`` -> build/peer);
prints one JSON line (images/s, seconds, last loss) and saves the backbone's state_dict.

    python benchmarks/peer_fidelity.py RECIPE.json DATA.npz --epochs E --seed S --save OUT.pt

SupCon, which lightly 1.6 lacks, takes its loss from pytorch-metric-learning 2.9.0
(``SupConLoss``, adapted from the official HobbitLong/SupContrast code: the same
L^sup_out of Eq. 2; ``make peer`` installs it beside lightly) and SimCLR's head
(:func:`simclr_head`); the labels come with the images. Its views, and SimCLR's, go through the
backbone in one forward pass, as the official ``main_supcon.py`` and SimCLR code do
(``torch.cat([images[0], images[1]])``: batch norm over both views), where lightly's SimCLR example
runs one pass per view. Both heads are csl's network, Linear-BN-ReLU-Linear, built from lightly's
``ProjectionHead``: lightly's ``SimCLRProjectionHead`` adds a batch norm on the output, which cost
the SupCon peer 15 points (``FIDELITY.md``).

Where a recipe needs what lightly's example does not do, it is written with lightly's parts
and said here: BYOL's loss is the paper's ``sum over both directions of 2 - 2 cos`` (arXiv
2006.07733, Eq. 2; lightly's example averages ``-cos``, a quarter of the gradient), which is
``2 + 2 * NegativeCosineSimilarity``; MoCo v2's Shuffle-BN (arXiv 1911.05722, Sec. 3.3) runs
queries in G contiguous groups and keys in G groups after ``batch_shuffle``, as csl's
``key_bn_groups`` does on one process.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch
from peer_lightly import ArrayImages  # in-memory uint8 images as PIL, as the SimCLR peer reads them
from torch import nn
from torch.utils.data import DataLoader

from csl.train.schedule import warmup_cosine  # the same lr curve as csl's side (a pure function)


def view_transform(group: dict[str, Any], size: int, mean: list[float], std: list[float]) -> Any:
    """One view group of the recipe as lightly's view transform (RandomResizedCrop, flip,
    ColorJitter with probability, grayscale, blur, solarization, ToTensor, Normalize)."""
    from lightly.transforms.byol_transform import BYOLView1Transform

    return BYOLView1Transform(
        input_size=group.get("size") or size, cj_prob=group["jitter_p"], cj_strength=1.0,
        cj_bright=group["brightness"], cj_contrast=group["contrast"], cj_sat=group["saturation"],
        cj_hue=group["hue"], min_scale=group["crop_scale"][0], random_gray_scale=group["grayscale_p"],
        gaussian_blur=group.get("blur_p", 0.0), solarization_prob=group.get("solarize_p", 0.0),
        hf_prob=group.get("flip_p", 0.5), normalize={"mean": mean, "std": std})


def transform(recipe: dict[str, Any], size: int, mean: list[float], std: list[float]) -> Any:
    from lightly.transforms.multi_view_transform import MultiViewTransform

    views = [view_transform(g, size, mean, std) for g in recipe["views"] for _ in range(g["count"])]
    return MultiViewTransform(transforms=views)


def small_cnn(channels: int, widths: list[int]) -> nn.Module:
    from csl.encoders.small_cnn import SmallCNN  # the same architecture (and init) as csl's side

    return SmallCNN(channels, widths)


def simclr_head(dim: int, p: dict[str, Any]) -> nn.Module:
    """SimCLR's (and SupCon's) projection head. lightly's ``SimCLRProjectionHead`` ends in a batch
    norm over the 128-d output (SimCLR v2's code); with ``output_bn: False`` in the recipe it is
    lightly's ``ProjectionHead`` as Linear(no bias)-BN-ReLU-Linear, the head csl's ``mlp_projection``
    builds (SimCLR v1, arXiv 2002.05709, Sec. 2.1), so both sides train the same network."""
    from lightly.models.modules import heads as H

    if p.get("output_bn", True):
        return H.SimCLRProjectionHead(dim, p["hidden"], p["out"])
    return H.ProjectionHead([(dim, p["hidden"], nn.BatchNorm1d(p["hidden"]), nn.ReLU()),
                             (p["hidden"], p["out"], None, None)])


class Peer(nn.Module):
    """One method: ``loss(views, step, total, epoch)``, ``after_step(step, total, epoch)``."""

    def __init__(self, recipe: dict[str, Any], backbone: nn.Module, dim: int, steps_per_epoch: int) -> None:
        from lightly import loss as L
        from lightly.models import utils as U
        from lightly.models.modules import heads as H

        super().__init__()
        self.recipe, self.name, p = recipe, recipe["method"], recipe["peer"]
        self.backbone, self.steps_per_epoch = backbone, steps_per_epoch
        m = self.name
        if m == "simclr":
            self.head = simclr_head(dim, p)
            self.criterion = L.NTXentLoss(temperature=p["temperature"])
        elif m == "supcon":
            from pytorch_metric_learning.losses import SupConLoss

            self.head = simclr_head(dim, p)
            self.criterion = SupConLoss(temperature=p["temperature"])
        elif m == "moco_v2":
            self.head = H.MoCoProjectionHead(dim, p["hidden"], p["out"])
            self.criterion = L.NTXentLoss(temperature=p["temperature"], memory_bank_size=(p["queue"], p["out"]))
        elif m == "byol":
            self.head = H.BYOLProjectionHead(dim, p["hidden"], p["out"])
            self.predictor = H.BYOLPredictionHead(p["out"], p["pred_hidden"], p["out"])
            self.criterion = L.NegativeCosineSimilarity()
        elif m == "simsiam":
            self.head = H.SimSiamProjectionHead(dim, p["hidden"], p["out"])
            self.predictor = H.SimSiamPredictionHead(p["out"], p["pred_hidden"], p["out"])
            self.criterion = L.NegativeCosineSimilarity()
        elif m == "barlow_twins":
            self.head = H.BarlowTwinsProjectionHead(dim, p["hidden"], p["out"])
            self.criterion = L.BarlowTwinsLoss(lambda_param=p["lambda"])
        elif m == "swav":
            self.head = H.SwaVProjectionHead(dim, p["hidden"], p["out"])
            self.prototypes = H.SwaVPrototypes(p["out"], p["prototypes"],
                                               n_steps_frozen_prototypes=p["freeze_epochs"] * steps_per_epoch)
            self.criterion = L.SwaVLoss(temperature=p["temperature"], sinkhorn_iterations=p["sinkhorn_iterations"],
                                        sinkhorn_epsilon=p["epsilon"])
        elif m == "dino":
            def dino_head() -> nn.Module:
                return H.DINOProjectionHead(dim, p["hidden"], p["bottleneck"], p["out"], batch_norm=p["batch_norm"],
                                            freeze_last_layer=p["freeze_last_layer_epochs"])

            self.head = dino_head()
            self.criterion = L.DINOLoss(output_dim=p["out"], warmup_teacher_temp=p["teacher_temp"],
                                        teacher_temp=p["teacher_temp_final"],
                                        warmup_teacher_temp_epochs=p["teacher_temp_warmup_epochs"],
                                        student_temp=p["student_temp"], center_momentum=p["center_momentum"])
        else:
            raise SystemExit(f"peer_fidelity: no lightly recipe for method '{m}'")
        if "momentum" in p:  # an EMA target/teacher branch (MoCo, BYOL, DINO)
            import copy

            self.backbone_t = copy.deepcopy(backbone)
            if m == "dino":  # its weight-normed last layer cannot be deep-copied: a twin with the same weights
                self.head_t = dino_head()
                self.head_t.load_state_dict(self.head.state_dict())
            else:
                self.head_t = copy.deepcopy(self.head)
            U.deactivate_requires_grad(self.backbone_t)
            U.deactivate_requires_grad(self.head_t)

    def _target(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.head_t(self.backbone_t(x))

    def _embed(self, views: list[torch.Tensor]) -> torch.Tensor:
        """``V x (N, C, S, S) -> (V*N, D)``: all views in one forward pass where the recipe has
        ``one_pass`` (the official SimCLR and SupCon code; batch norm over V*N), else one pass per
        view (lightly's SimCLR example; batch norm over N)."""
        if self.recipe["peer"].get("one_pass"):
            return self.head(self.backbone(torch.cat(views)))
        return torch.cat([self.head(self.backbone(x)) for x in views])

    def loss(self, views: list[torch.Tensor], epoch: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        from lightly.models import utils as U

        m, p = self.name, self.recipe["peer"]
        if m == "simclr":
            return self.criterion(*self._embed(views[:2]).chunk(2))
        if m == "supcon":  # every view of every image of the anchor's class is a positive
            assert labels is not None
            return self.criterion(self._embed(views), labels.repeat(len(views)))
        if m == "moco_v2":
            g = p["key_bn_groups"]
            q = torch.cat([self.head(self.backbone(x)) for x in views[0].chunk(g)])
            with torch.no_grad():
                shuffled, unshuffle = U.batch_shuffle(views[1])
                k = torch.cat([self._target(x) for x in shuffled.chunk(g)])
                k = U.batch_unshuffle(k, unshuffle)
            return self.criterion(q, k)
        if m in ("byol", "simsiam"):
            z = [self.head(self.backbone(x)) for x in views[:2]]
            pr = [self.predictor(zi) for zi in z]
            if m == "simsiam":
                return 0.5 * (self.criterion(pr[0], z[1].detach()) + self.criterion(pr[1], z[0].detach()))
            t = [self._target(x) for x in views[:2]]
            return (2 + 2 * self.criterion(pr[0], t[1])) + (2 + 2 * self.criterion(pr[1], t[0]))
        if m == "barlow_twins":
            return self.criterion(self.head(self.backbone(views[0])), self.head(self.backbone(views[1])))
        if m == "swav":
            self.prototypes.normalize()
            step = getattr(self, "_step", 0)
            outs = [self.prototypes(nn.functional.normalize(self.head(self.backbone(x)), dim=1), step)
                    for x in views]
            n_global = self.recipe["n_global"]
            return self.criterion(outs[:n_global], outs[n_global:])
        if m == "dino":
            n_global = self.recipe["n_global"]
            teacher = [self._target(x) for x in views[:n_global]]
            student = [self.head(self.backbone(x)) for x in views]
            return self.criterion(teacher, student, epoch=epoch)
        raise AssertionError(m)

    def after_backward(self, epoch: int) -> None:
        if self.name == "dino":
            self.head.cancel_last_layer_gradients(current_epoch=epoch)

    def after_step(self, step: int, total: int) -> None:
        from lightly.models import utils as U
        from lightly.utils.scheduler import cosine_schedule

        p = self.recipe["peer"]
        self._step = step + 1
        if "momentum" in p:
            base, final = p["momentum"]
            m = cosine_schedule(step, total, base, final) if base != final else base
            U.update_momentum(self.backbone, self.backbone_t, m)
            U.update_momentum(self.head, self.head_t, m)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("recipe")
    ap.add_argument("data")
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--save", required=True)
    args = ap.parse_args()
    recipe = json.loads(open(args.recipe).read())
    d = np.load(args.data)
    images, mean, std = d["images"], d["mean"].tolist(), d["std"].tolist()
    torch.manual_seed(args.seed)
    batch = recipe["batch_size"]
    labels = d["labels"] if recipe["method"] == "supcon" else None
    loader = DataLoader(ArrayImages(images, transform(recipe, images.shape[2], mean, std), labels), batch_size=batch,
                        shuffle=True, drop_last=True, num_workers=args.workers, persistent_workers=args.workers > 0)
    backbone = small_cnn(images.shape[1], recipe["widths"])
    model = Peer(recipe, backbone, backbone.out_dim, len(loader))  # type: ignore[arg-type]
    o = recipe["optimizer"]
    lr = o["lr"] * batch / 256
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=o["momentum"], weight_decay=o["weight_decay"])
    total = args.epochs * len(loader)
    warmup = round(recipe["warmup_epochs"] * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warmup))
    model.train()
    step, n, last = 0, 0, float("nan")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        for views, labels in loader:
            loss = model.loss(views, epoch, labels)
            if not torch.isfinite(loss):
                raise SystemExit(f"peer {recipe['method']}: loss is {float(loss)} at step {step}")
            loss.backward()
            model.after_backward(epoch)
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            model.after_step(step, total)
            step += 1
            n += batch
        last = float(loss)
    secs = time.perf_counter() - start
    torch.save(backbone.state_dict(), args.save)
    print(json.dumps({"images_per_s": n / secs, "seconds": secs, "images": n, "last_loss": last}))


if __name__ == "__main__":
    main()
