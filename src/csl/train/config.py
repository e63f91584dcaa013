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
    ``init_from``: a warm start: the encoder starts from a registered encoder
    (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``) or an ``encoder.pt``, of the same architecture,
    instead of random init (the heads start fresh; EMA teachers copy the started encoder). The
    parent is resolved when training starts (an alias follows the registry); its sha256 keys the
    checkpoints and is recorded in the encoder, so the registered version's lineage names it.
    What a nightly pipeline on a grown collection uses to continue from last night's champion.
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
    init_from: str | None = None

    def validate(self, path: str) -> None:
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError(f"'{path}.init_from' must be models:/NAME@ALIAS, models:/NAME/VERSION, a path to an "
                              "encoder.pt, or null")
        for key in ("epochs", "batch_size", "devices", "num_nodes"):
            if getattr(self, key) < 1:
                raise ConfigError(f"'{path}.{key}' must be >= 1, got {getattr(self, key)}")
        if self.batch_size < 2:
            raise ConfigError(f"'{path}.batch_size' must be >= 2 for contrastive losses")
        if self.limit_train_batches is not None and self.limit_train_batches < 1:
            raise ConfigError(f"'{path}.limit_train_batches' must be >= 1 or null")
        if self.gradient_clip is not None and self.gradient_clip <= 0:
            raise ConfigError(f"'{path}.gradient_clip' must be > 0 or null (no clipping), got {self.gradient_clip}")


@dataclass(frozen=True)
class HealthConfig:
    """The online health check of pretraining (``health`` in params.yaml): the label-free measures
    (:mod:`csl.evaluate.label_free`) of the encoder on a fixed batch of ``samples`` held-out
    images, at the end of every epoch and, with ``every_steps``, every that many steps; logged to
    MLflow (``health/rankme`` ...) and shown in the epoch's progress line.

    The collapse guard stops the run (:class:`~csl.errors.CollapseError`, exit 2, the stage's
    MLflow run FAILED naming the measure) when ``patience`` consecutive checks find the embeddings
    collapsed: RankMe below ``rankme_min`` or the per-dimension std of the l2-normalised
    embeddings times ``sqrt(d)`` below ``std_ratio_min``. The defaults:

    - ``rankme_min: 1.5``: a complete collapse (every image one point, or on one line) has an
      effective rank of 1 (Garrido et al. 2023, Eq. 1); any encoder that still separates images
      along two directions is above 1.5. A random-init small CNN measures 4 to 9 here, trained
      SimCLR tens (the report's ``rankme``).
    - ``std_ratio_min: 0.02``: SimSiam Sec. 4.1 (Fig. 2) shows the std of collapsed outputs at
      0 and that of working ones near ``1/sqrt(d)`` (ratio 1); a random-init encoder measures
      about 0.3, so 0.02 is 15x below an untrained network.
    - ``patience: 3``: one low check can be a transient early in training (warm-up); three in a row
      are not, and stop a collapsed cloud job within three epochs (or ``3 x every_steps`` steps).

    ``enabled: false`` turns the check (and the guard) off.
    """

    enabled: bool = True
    samples: int = 512
    every_steps: int | None = None
    rankme_min: float = 1.5
    std_ratio_min: float = 0.02
    patience: int = 3

    def validate(self, path: str) -> None:
        if self.samples < 2 or self.patience < 1 or (self.every_steps is not None and self.every_steps < 1):
            raise ConfigError(f"'{path}': samples must be >= 2, patience >= 1 and every_steps null or >= 1")
