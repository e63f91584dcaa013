"""MoCo v2 and v3 as one composition: a query branch (encoder, head, optional predictor) and
an EMA key branch, with InfoNCE against a queue of past keys (v2) or in-batch keys (v3).

* MoCo v2 (Chen et al., 2020, arXiv 2003.04297; MoCo v1, He et al., 2020, arXiv 1911.05722):
  queue of ``K = 65,536`` keys, key momentum ``m = 0.999``, MLP head, ``tau = 0.2``, the v2
  augmentation, asymmetric loss ``L(q_1, k_2)``. Shuffle-BN (Sec. 3.3 of v1) keeps batch
  statistics from leaking the positive: on one process, ``key_bn_groups = G`` runs queries in
  ``G`` contiguous groups and keys in ``G`` groups of a random permutation, so a query and its
  key are normalized with different sub-batches (the official CIFAR demo's SplitBatchNorm).
  Across processes, issue 4 gathers keys into the queue.
* MoCo v3 (Chen et al., 2021, arXiv 2104.02057, Alg. 1): no queue (in-batch negatives), a
  predictor on the query branch, symmetric loss ``ctr(q_1, k_2) + ctr(q_2, k_1)``, momentum
  0.99 -> 1 with a cosine schedule; ResNet-50: ``tau = 1.0``, loss scaled by ``2 tau``.

The queue is explicit state: buffers ``queue`` ``(K, D)`` and ``queue_ptr``, checkpointed
with the model, so a resumed run continues with the same negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from csl.methods.base import Batch, Method, Parts

from csl.distributed import gather, gather_all, rank, world_size
from csl.losses.imix import sample_beta
from csl.errors import ConfigError
from csl.extract.projection import PredictorConfig, build_predictor
from csl.losses.kcl import k_same_class
from csl.losses.mochi import hard_negative_mixes
from csl.methods.ema import ema_update, make_target
from csl.methods.views import require_views
from csl.train.schedule import cosine_momentum


def _check_momentum(base: float, final: float, path: str) -> None:
    if not 0 <= base <= final <= 1:
        raise ConfigError(f"'{path}': need 0 <= momentum_base <= momentum_final <= 1")


@dataclass(frozen=True)
class MoCoSettings:
    """What the MoCo module runs with, explicit for both versions (each config states its own)."""

    queue_size: int  # 0: in-batch keys (v3)
    key_bn_groups: int  # 1: no Shuffle-BN
    symmetric: bool
    momentum_base: float
    momentum_final: float
    predictor: PredictorConfig | None


Mix = tuple[torch.Tensor, torch.Tensor] | None  # i-Mix's (partner permutation, lam)


@dataclass(frozen=True)
class HardNegatives:
    """MoCHi's mixing (:func:`csl.losses.mochi.hard_negative_mixes`): from ``start_step`` on, ``s``
    mixes of two and ``s_prime`` mixes with the query, from each query's ``n_hardest`` queue negatives."""

    n_hardest: int
    s: int
    s_prime: int
    start_step: int


@dataclass(frozen=True)
class MoCoV2Config:
    """MoCo v2 defaults (arXiv 2003.04297 / 1911.05722): K = 65,536, m = 0.999 constant."""

    queue_size: int = 65536
    momentum_base: float = 0.999
    momentum_final: float = 0.999
    key_bn_groups: int = 8
    symmetric: bool = False

    def settings(self) -> MoCoSettings:
        return MoCoSettings(self.queue_size, self.key_bn_groups, self.symmetric, self.momentum_base,
                            self.momentum_final, predictor=None)

    def validate(self, path: str) -> None:
        _check_momentum(self.momentum_base, self.momentum_final, path)
        if self.queue_size < 1:
            raise ConfigError(f"'{path}.queue_size' must be >= 1 (MoCo v3 is the queue-free variant)")
        if self.key_bn_groups < 1:
            raise ConfigError(f"'{path}.key_bn_groups' must be >= 1")

    def check_composition(self, train: Any, parts: Any, path: str) -> None:
        global_batch = train.batch_size * train.devices * train.num_nodes
        if self.queue_size % global_batch:
            raise ConfigError(f"'{path}.queue_size' ({self.queue_size}) must be a multiple of the global batch "
                              f"({global_batch} = train.batch_size x devices x num_nodes) so that every key batch "
                              "fits the queue (MoCo's assertion)")
        if train.batch_size % self.key_bn_groups:
            raise ConfigError(f"'{path}.key_bn_groups' ({self.key_bn_groups}) must divide train.batch_size "
                              f"({train.batch_size})")


@dataclass(frozen=True)
class MoCoV3Config:
    """MoCo v3 defaults (arXiv 2104.02057, ResNet-50): predictor hidden 4096, m 0.99 -> 1."""

    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(hidden_dim=4096))
    momentum_base: float = 0.99
    momentum_final: float = 1.0
    symmetric: bool = True

    def settings(self) -> MoCoSettings:
        """In-batch keys (no queue), no Shuffle-BN groups (v3 relies on the predictor and, across
        processes, on sync BN)."""
        return MoCoSettings(0, 1, self.symmetric, self.momentum_base, self.momentum_final, self.predictor)

    def validate(self, path: str) -> None:
        _check_momentum(self.momentum_base, self.momentum_final, path)


class MoCo(Method):
    queue: torch.Tensor
    queue_ptr: torch.Tensor
    label_queue: torch.Tensor

    def __init__(self, cfg: MoCoSettings, augment: nn.Module, encoder: nn.Module,
                 head: nn.Module, loss: Callable[..., torch.Tensor], channels_last: bool,
                 hard_negatives: HardNegatives | None = None, k_positives: int = 0,
                 imix_alpha: float | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.hard_negatives = hard_negatives
        self.k_positives = k_positives
        self.imix_alpha = imix_alpha
        self._step = 0
        self.augment = augment
        self.encoder = encoder
        self.projector = head
        dim = int(head.out_dim)  # type: ignore[arg-type]
        self.predictor = build_predictor(cfg.predictor, dim) if cfg.predictor is not None else nn.Identity()
        self.target_encoder = make_target(encoder)
        self.target_projector = make_target(head)
        self.loss_fn = loss
        self.channels_last = channels_last
        self.groups = cfg.key_bn_groups
        if cfg.queue_size:
            # MoCo initializes the queue with random unit vectors
            self.register_buffer("queue", F.normalize(torch.randn(cfg.queue_size, dim), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
            if k_positives:  # KCL: the label of every queued key (-1: an empty slot)
                self.register_buffer("label_queue", torch.full((cfg.queue_size,), -1, dtype=torch.long))

    def check_dataset(self, n_train: int, labelled: bool) -> None:
        super().check_dataset(n_train, labelled)
        if self.cfg.queue_size > n_train:
            raise ConfigError(f"MoCo queue_size {self.cfg.queue_size} exceeds the {n_train} training images: the "
                              "queue would hold keys of the query's own image as negatives; lower queue_size")

    def _branch(self, x: torch.Tensor, encoder: nn.Module, head: nn.Module, perm: torch.Tensor | None) -> torch.Tensor:
        """One view through a branch, batch-normalized in ``groups`` sub-batches (in ``perm``
        order when given, then restored)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.groups == 1:
            return head(encoder(x)).float()
        if perm is not None:
            x = x[perm]
        out = torch.cat([head(encoder(c)).float() for c in x.chunk(self.groups)])
        return out[torch.argsort(perm)] if perm is not None else out

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        queries, keys, mix = self.embed(batch, generator)
        return {"loss": self.instance_loss(queries, keys, batch, generator, mix)}

    def embed(self, batch: Batch, generator: torch.Generator) -> tuple[list[torch.Tensor], list[torch.Tensor], Mix]:
        """The global batch's queries (one per loss direction), their keys (no gradient) and, for
        i-Mix, the partner permutation and ``lam`` with which the query inputs were mixed."""
        images = batch.images
        v1, v2 = self.augment(images, generator)[:2]
        n = images.shape[0]
        query_views = [v1, v2] if self.cfg.symmetric else [v1]
        mix = None
        if self.imix_alpha is not None:  # i-Mix: mix each query input with a partner of the global batch
            partners = torch.randperm(n * world_size(), generator=generator, device=generator.device).to(v1.device)
            lam = sample_beta(self.imix_alpha, generator).to(v1.device)
            lam = torch.maximum(lam, 1 - lam)
            mine = partners[rank() * n:(rank() + 1) * n]
            query_views = [lam * v + (1 - lam) * gather(v)[mine] for v in query_views]
            mix = (partners, lam)
        queries = gather_all([self.predictor(self._branch(v, self.encoder, self.projector, None)).float()
                              for v in query_views])
        with torch.no_grad():
            keys = []
            for v in (v2, v1)[: len(query_views)]:
                perm = torch.randperm(n, device=generator.device, generator=generator) if self.groups > 1 else None
                keys.append(self._branch(v, self.target_encoder, self.target_projector,
                                         perm.to(images.device) if perm is not None else None))
        return queries, gather_all(keys), mix  # the global batch's keys: negatives for v3, the queue's input for v2

    def instance_loss(self, queries: list[torch.Tensor], keys: list[torch.Tensor], batch: Batch,
                      generator: torch.Generator, mix: Mix = None) -> torch.Tensor:
        """InfoNCE of each query against its key and the negatives (queue, or in-batch keys), with
        MoCHi's mixes, KCL's queued positives and i-Mix's mixed targets when configured; then the
        keys are enqueued."""
        negatives = self.queue.clone() if self.cfg.queue_size else None
        labels = None
        positives = None
        if self.k_positives and negatives is not None:  # KCL: k same-class queue keys are positives too
            if batch.labels is None:
                raise ValueError("KCL needs the batch's labels (the data path loads them when a method needs them)")
            labels = gather(batch.labels)
            positives = k_same_class(labels, self.label_queue.clone(), self.k_positives, generator)
        hard = self.hard_negatives
        loss = torch.zeros((), device=batch.images.device)
        for q, k in zip(queries, keys):
            synthetic = None
            if hard is not None and negatives is not None and self._step >= hard.start_step:  # MoCHi
                synthetic = hard_negative_mixes(q, negatives, hard.n_hardest, hard.s, hard.s_prime, generator)
            loss = loss + self.loss_fn(q, k, negatives, synthetic, positives, mix)
        if self.cfg.queue_size:
            self._enqueue(torch.cat(keys), labels.repeat(len(keys)) if labels is not None else None)
        return loss

    def before_step(self, step: int, total_steps: int, steps_per_epoch: int) -> None:
        self._step = step  # MoCHi mixes from its start step on

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Replace the oldest entries (a ring buffer, as MoCo's ``_dequeue_and_enqueue``); KCL's
        labels go to the same slots of the label queue."""
        size = self.queue.shape[0]
        k = F.normalize(keys.float(), dim=1)[-size:]
        idx = (self.queue_ptr + torch.arange(k.shape[0], device=k.device)) % size
        self.queue[idx] = k
        if labels is not None:
            self.label_queue[idx] = labels[-size:]
        self.queue_ptr.copy_((self.queue_ptr + k.shape[0]) % size)

    def after_step(self, step: int, total_steps: int) -> dict[str, float]:
        m = cosine_momentum(step, total_steps, self.cfg.momentum_base, self.cfg.momentum_final)
        ema_update(self.target_encoder, self.encoder, m)
        ema_update(self.target_projector, self.projector, m)
        return {"momentum": m}


def build_moco(cfg: MoCoV2Config | MoCoV3Config, parts: Parts, channels_last: bool) -> MoCo:
    require_views(parts.augment, 2, "moco")
    return MoCo(cfg.settings(), parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
