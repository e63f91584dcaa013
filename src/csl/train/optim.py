"""Optimizers (SGD, LARS, AdamW) with parameter groups and learning-rate scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from csl.errors import ConfigError
from csl.train.lars import LARS


@dataclass(frozen=True)
class OptimizerConfig:
    """``lr`` is the base rate; the effective rate is ``lr * global_batch / 256`` (linear,
    Goyal et al. 2017; SimCLR's LARS uses 0.3 x B/256), ``lr * sqrt(global_batch)`` (sqrt;
    SimCLR Appendix B.1 uses 0.075 x sqrt(B) for small batches) or ``lr`` (none).
    Biases and normalization parameters (ndim <= 1) are excluded from weight decay and
    LARS adaptation when ``exclude_bias_and_norm``.
    """

    name: Literal["sgd", "lars", "adamw"] = "lars"
    lr: float = 0.3
    lr_scaling: Literal["linear", "sqrt", "none"] = "linear"
    weight_decay: float = 1e-6
    momentum: float = 0.9
    eta: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    exclude_bias_and_norm: bool = True

    def validate(self, path: str) -> None:
        if self.lr <= 0:
            raise ConfigError(f"'{path}.lr' must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"'{path}.weight_decay' must be >= 0")


def effective_lr(cfg: OptimizerConfig, global_batch: int) -> float:
    if cfg.lr_scaling == "linear":
        return cfg.lr * global_batch / 256
    if cfg.lr_scaling == "sqrt":
        return cfg.lr * math.sqrt(global_batch)
    return cfg.lr


def param_groups(model: nn.Module, cfg: OptimizerConfig) -> list[dict[str, Any]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if cfg.exclude_bias_and_norm and p.ndim <= 1 else decay).append(p)
    groups: list[dict[str, Any]] = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_adapt": False})
    return groups


def build_optimizer(model: nn.Module, cfg: OptimizerConfig, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, eta=cfg.eta)
    for g in groups:
        g.pop("lars_adapt", None)
    if cfg.name == "sgd":
        # torch's default: multi-tensor (foreach) on CUDA; the per-tensor loop on CPU, where it
        # measured fastest (benchmarks/optimizers.py)
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    # fused AdamW: one kernel for all parameters, on CPU and CUDA (4.4x the loop on ResNet-18's
    # parameters on this CPU, benchmarks/optimizers.py)
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=True)
