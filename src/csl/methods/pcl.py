"""PCL (Li et al., ICLR 2021, "Prototypical Contrastive Learning of Unsupervised Representations",
arXiv 2005.04966; official code salesforce/PCL).

MoCo v2 plus ProtoNCE. After ``warmup_epochs`` of InfoNCE alone, before every epoch the momentum
encoder's normalized embeddings of the whole training set (the framework's between-epochs hook:
eval mode, no augmentation, gathered across ranks) are clustered by k-means at each granularity
of ``num_clusters``; each cluster's concentration ``phi`` is estimated
(:func:`csl.losses.pcl.concentration`); during the epoch each query is pulled to its prototype at
temperature ``phi`` against ``r`` sampled negative prototypes (:func:`csl.losses.pcl.proto_nce`),
averaged over the granularities and added to InfoNCE. It needs each image's index in the training
set (to look up its cluster).

Official ImageNet settings: ``num_clusters = [25000, 50000, 100000]``, ``r = 16384``,
``temperature = 0.2`` (``phi``'s mean), 20 warm-up epochs, k-means with 20 iterations and 5
restarts (faiss); MoCo v2's queue of 16,384, momentum 0.999, ``tau = 0.2``.

The clusters are state derived from the weights: they are recomputed before the epoch a resumed
run restarts at, from the restored weights, so a resume reaches the uninterrupted run's state.
They are also kept in buffers (checkpointed) for inspection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F

from csl.cluster import kmeans
from csl.distributed import gather
from csl.errors import ConfigError
from csl.losses.pcl import concentration, proto_nce, sample_negative_prototypes
from csl.methods.base import Batch, Needs, Parts
from csl.methods.moco import MoCo, MoCoV2Config
from csl.methods.views import require_views


@dataclass(frozen=True)
class PCLConfig(MoCoV2Config):
    """MoCo v2's settings and PCL's: the granularities, the negative prototypes ``r``, the mean
    concentration, the InfoNCE-only warm-up and the k-means iterations and restarts."""

    num_clusters: list[int] = field(default_factory=lambda: [25000, 50000, 100000])
    negative_prototypes: int = 16384
    temperature: float = 0.2
    warmup_epochs: int = 20
    kmeans_iterations: int = 20
    kmeans_redo: int = 5

    def validate(self, path: str) -> None:
        super().validate(path)
        if not self.num_clusters or min(self.num_clusters) < 2:
            raise ConfigError(f"'{path}.num_clusters' must list at least one number of clusters >= 2")
        if self.negative_prototypes < 0 or self.temperature <= 0 or self.warmup_epochs < 0:
            raise ConfigError(f"'{path}': need negative_prototypes >= 0, temperature > 0, warmup_epochs >= 0")
        if self.kmeans_iterations < 1 or self.kmeans_redo < 1:
            raise ConfigError(f"'{path}': kmeans_iterations and kmeans_redo must be >= 1")


class PCL(MoCo):
    """MoCo v2 + ProtoNCE over k-means prototypes of the training set."""

    needs: ClassVar[Needs] = Needs(indices=True)

    def __init__(self, pcl: PCLConfig, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pcl = pcl
        self._ready = False  # prototypes exist for this epoch (a Python flag: no device read per step)

    def check_dataset(self, n_train: int, labelled: bool) -> None:
        super().check_dataset(n_train, labelled)
        if max(self.pcl.num_clusters) > n_train:
            raise ConfigError(f"PCL num_clusters {self.pcl.num_clusters} asks for more clusters than the {n_train} "
                              "training images; lower num_clusters")
        dim = self.queue.shape[1]
        for m, k in enumerate(self.pcl.num_clusters):  # the state, allocated now that N is known
            self.register_buffer(f"im2cluster_{m}", torch.zeros(n_train, dtype=torch.long, device=self.queue.device))
            self.register_buffer(f"centroids_{m}", torch.zeros(k, dim, device=self.queue.device))
            self.register_buffer(f"density_{m}", torch.ones(k, device=self.queue.device))

    def wants_features(self, epoch: int) -> bool:
        return epoch >= self.pcl.warmup_epochs

    def feature_net(self, x: torch.Tensor) -> torch.Tensor:
        """The momentum encoder's normalized embedding (the official ``compute_features``)."""
        return F.normalize(self.target_projector(self.target_encoder(x)).float(), dim=1)

    @torch.no_grad()
    def on_epoch_features(self, epoch: int, features: torch.Tensor) -> None:
        for m, k in enumerate(self.pcl.num_clusters):
            g = torch.Generator().manual_seed(1_000_003 * epoch + m)  # the same clustering on every rank
            km = kmeans(features, k, self.pcl.kmeans_iterations, self.pcl.kmeans_redo, g)
            getattr(self, f"im2cluster_{m}").copy_(km.assign)
            getattr(self, f"centroids_{m}").copy_(F.normalize(km.centroids, dim=1))
            getattr(self, f"density_{m}").copy_(concentration(km.dist, km.assign, k, self.pcl.temperature))
        self._ready = True

    def training_loss(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        queries, keys, mix = self.embed(batch, generator)
        loss = self.instance_loss(queries, keys, batch, generator, mix)
        if not self._ready:  # warm-up: InfoNCE alone
            return {"loss": loss}
        if batch.indices is None:
            raise ValueError("PCL needs the batch's sample indices (the data path loads them when a method needs them)")
        index = gather(batch.indices)
        proto = torch.zeros((), device=loss.device)
        for m, k in enumerate(self.pcl.num_clusters):
            pos = getattr(self, f"im2cluster_{m}")[index]
            neg = sample_negative_prototypes(pos, k, self.pcl.negative_prototypes, generator)
            for q in queries:
                proto = proto + proto_nce(q, pos, neg, getattr(self, f"centroids_{m}"), getattr(self, f"density_{m}"))
        proto = proto / (len(self.pcl.num_clusters) * len(queries))
        return {"loss": loss + proto, "proto_nce": proto.detach()}


def build_pcl(cfg: PCLConfig, parts: Parts, channels_last: bool) -> PCL:
    require_views(parts.augment, 2, "pcl")
    return PCL(cfg, cfg.settings(), parts.augment, parts.encoder, parts.extract, parts.loss, channels_last)
