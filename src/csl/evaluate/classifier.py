"""A classifier on a pretrained encoder for fine-tuning and distillation (SimCLR v2, arXiv 2006.10029):
``encoder -> [the first L hidden layers of the projection head] -> Linear(num_classes)``, and the
small training loop both protocols share (crop-and-flip augmentation, SGD with Nesterov momentum,
cosine decay without warm-up: SimCLR, arXiv 2002.05709 §B.5)."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from csl.errors import CslError


def encoder_dim(encoder: nn.Module, in_channels: int, image_size: int) -> int:
    dim = getattr(encoder, "out_dim", None)
    if isinstance(dim, int):
        return dim
    was = encoder.training
    encoder.eval()
    with torch.no_grad():
        d = int(encoder(torch.zeros(1, in_channels, image_size, image_size)).shape[1])
    encoder.train(was)
    return d


def head_layers(payload: dict[str, Any], layers: int, random_init_seed: int | None = None) -> tuple[nn.Module, int]:
    """The first ``layers`` hidden layers (Linear[-BN]-ReLU each) of the pretrained projection head
    saved in the encoder file, with their weights (or freshly initialized for the baseline), and
    their output width. ``layers = 0``: identity."""
    if layers == 0:
        return nn.Identity(), -1
    head = payload.get("head")
    if head is None:
        raise CslError(f"fine-tuning from head layer {layers} needs the projection head, but the encoder of "
                       f"{payload.get('variant')} ({payload.get('method')}) was saved without one (only methods "
                       "with an MLP projection head 'head' save it; rerun 'csl pretrain' if it predates this) ; "
                       "set eval.finetune.from_head_layer: 0")
    from csl.extract.projection import ProjectionHead

    args = dict(head["args"])
    hidden = int(args["layers"]) - 1
    if layers > hidden:
        raise CslError(f"eval.finetune.from_head_layer is {layers}, but the projection head of "
                       f"{payload.get('variant')} has {hidden} hidden layer(s); use 0..{hidden}")
    with torch.random.fork_rng():
        if random_init_seed is not None:
            torch.manual_seed(random_init_seed)
        full = ProjectionHead(**args)
    if random_init_seed is None:
        full.load_state_dict(head["state_dict"])
    per_layer = 3 if args["batch_norm"] else 2
    return nn.Sequential(*list(full.net.children())[: layers * per_layer]), int(args["hidden_dim"])


class Classifier(nn.Module):
    """``uint8 or normalized (N, C, H, W) -> logits (N, num_classes)``."""

    def __init__(self, encoder: nn.Module, head: nn.Module, in_dim: int, num_classes: int, seed: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.encoder(x)))


def build_classifier(payload: dict[str, Any], from_head_layer: int, num_classes: int, seed: int,
                     random_init: bool = False, encoder_spec: dict[str, Any] | None = None) -> Classifier:
    """The pretrained encoder (and head layers) with a new linear layer, or (``random_init``) the
    same architecture from random init; ``encoder_spec`` replaces the encoder's spec (a smaller
    student), which implies random init."""
    from csl.encoders.saved import build_from_payload

    if encoder_spec is not None:
        payload = {**payload, "encoder": encoder_spec}
        random_init = True
    encoder = build_from_payload(payload, random_init_seed=seed if random_init else None)
    if encoder_spec is not None and payload.get("head") is not None:  # the head's layers take the student's width
        in_dim = encoder_dim(encoder, int(payload["in_channels"]), int(payload["image_size"]))
        payload = {**payload, "head": {"args": {**payload["head"]["args"], "in_dim": in_dim}}}
    head, width = head_layers(payload, from_head_layer, random_init_seed=seed + 1 if random_init else None)
    dim = width if from_head_layer else encoder_dim(encoder, int(payload["in_channels"]), int(payload["image_size"]))
    return Classifier(encoder, head, dim, num_classes, seed + 2)


def crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int) -> torch.Tensor:
    """Random crop of the zero-padded image (pad on each side) and a random horizontal flip, per image;
    ``x`` uint8 ``(N, C, H, W)`` on the CPU."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    i = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    j = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (i[:, None] + torch.arange(h))[:, None, :, None]
    cols = (j[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (logits, indices, inputs) -> loss


def train(net: nn.Module, images: np.ndarray, loss_fn: Loss, mean: list[float], std: list[float], epochs: int,
          batch_size: int, lr: float, momentum: float, weight_decay: float, seed: int, device: str,
          desc: str) -> dict[str, float]:
    """Train ``net`` on ``images`` uint8 ``(N, C, H, W)``: each step draws a batch of indices, augments it
    (crop + flip), and minimizes ``loss_fn(logits, indices, normalized inputs)``. SGD with Nesterov
    momentum, ``lr x B/256``, cosine decay to 0, bf16 autocast where it pays (:mod:`csl.precision`).
    Returns the step count and last loss."""
    from csl.augment.view import normalize
    from csl.precision import autocast as fast_autocast

    net.to(device).train()
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.SGD(net.parameters(), lr=lr * batch_size / 256, momentum=momentum, nesterov=True,
                          weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    m = torch.tensor(mean, device=device)
    s = torch.tensor(std, device=device)
    src = torch.as_tensor(images)
    pad = max(1, images.shape[-1] // 8)
    autocast = fast_autocast(device)
    last = float("nan")
    running = torch.tensor(float("nan"))
    bar = tqdm(total=total, desc=desc, unit="step", mininterval=2.0)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(0, n, batch_size):
            idx = perm[b:b + batch_size]
            x = normalize(crop_flip(src[idx], g, pad).to(device), m, s)
            with autocast:
                logits = net(x).float()
            loss = loss_fn(logits, idx, x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running = loss.detach()  # read once per epoch: no host sync in the step
            bar.update(1)
        last = float(running)
        if not math.isfinite(last):
            raise CslError(f"{desc}: the loss became {last}; lower the learning rate")
    bar.close()
    return {"steps": float(total), "final_loss": last}


def predict(net: nn.Module, images: np.ndarray, mean: list[float], std: list[float], batch_size: int,
            device: str) -> torch.Tensor:
    """Logits ``(N, num_classes)`` in eval mode, unaugmented, on the CPU (the feature extraction's loop)."""
    from csl.evaluate.features import extract_features

    return extract_features(net, images, mean, std, batch_size, device, desc="predict").cpu()


def top1(logits: torch.Tensor, labels: np.ndarray) -> float:
    return float((logits.argmax(1) == torch.as_tensor(labels)).float().mean())
