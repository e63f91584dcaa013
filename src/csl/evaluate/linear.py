"""Linear probe on cached frozen features (the standard linear evaluation protocol).

Features are standardized with the training-set mean and std; a single linear layer is
trained with cross-entropy, AdamW and a cosine learning-rate decay; test top-1 is reported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from csl.evaluate.config import LinearConfig


def linear_top1(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
    num_classes: int, cfg: LinearConfig, seed: int = 0,
) -> float:
    g = torch.Generator().manual_seed(seed)
    mu = train_x.mean(0, keepdim=True)
    sd = train_x.std(0, keepdim=True).clamp_min(1e-6)
    xtr = (train_x - mu) / sd
    xte = (test_x - mu) / sd
    with torch.random.fork_rng(devices=[]):  # the layer's initial weights come from the seed too
        torch.manual_seed(seed)
        layer = torch.nn.Linear(xtr.shape[1], num_classes)
    opt = torch.optim.AdamW(layer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = xtr.shape[0]
    steps = cfg.epochs * math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(layer(xtr[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return float((layer(xte).argmax(1) == test_y).float().mean())
