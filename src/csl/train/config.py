"""The ``train`` section of a method variant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from csl.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """Loop settings. ``batch_size`` is per process; the global batch is
    ``batch_size * devices * num_nodes`` and is what the learning rate is scaled by.
    ``precision: auto`` is bf16 autocast on a CPU with native bf16 (AVX-512 BF16 or AMX), fp32 on
    other CPUs (emulated bf16 is ~10x slower: :mod:`csl.precision`), bf16 (or fp16 where bf16 is
    missing) on GPU.
    ``limit_train_batches`` caps the steps per epoch (quick runs and tests).
    ``sync_batchnorm``: with more than one process, batch norm uses the global batch's
    statistics (:class:`csl.encoders.global_bn.GlobalBatchNorm`, on CPU and GPU), as the
    papers' multi-device runs do.
    ``compile``: ``torch.compile`` the encoder and heads (:mod:`csl.train.compile`); off by
    default: measured +16% images/s for the small CNN and +7% for ResNet-18 on this project's
    CPU after a 10-40 s compile (``benchmarks/throughput.py``).
    ``gradient_clip``: null, or the largest L2 norm of each parameter tensor's gradient: a larger
    one is scaled down to it (DINO's ``clip_gradients``, per tensor, 3.0 for ViT: arXiv 2104.14294,
    App. and official ``utils.py``).
    """

    epochs: int = 100
    batch_size: int = 256
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed"] = "auto"
    channels_last: bool = True
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    devices: int = 1
    num_nodes: int = 1
    seed: int = 0
    deterministic: bool = True
    limit_train_batches: int | None = None
    progress_bar: bool = True
    sync_batchnorm: bool = True
    compile: bool = False
    gradient_clip: float | None = None

    def validate(self, path: str) -> None:
        for key in ("epochs", "batch_size", "devices", "num_nodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'{path}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.batch_size < 2:
            raise ConfigError(f"'{path}.batch_size' must be >= 2 for contrastive losses")
        if self.limit_train_batches is not None and self.limit_train_batches < 1:
            raise ConfigError(f"'{path}.limit_train_batches' must be >= 1 or null")
        if self.gradient_clip is not None and self.gradient_clip <= 0:
            raise ConfigError(f"'{path}.gradient_clip' must be > 0 or null (no clipping), got {self.gradient_clip}")
