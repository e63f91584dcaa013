"""The ``eval`` section of params.yaml: the versioned evaluation protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

from csl.data.config import DataConfig
from csl.errors import ConfigError

PROTOCOL_VERSION = "csl-eval-v1"


@dataclass(frozen=True)
class LinearConfig:
    """Linear classifier on standardized frozen features, trained with AdamW and a cosine lr."""

    epochs: int = 50
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4

    def validate(self, path: str) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"'{path}': epochs, batch_size and lr must be positive")


@dataclass(frozen=True)
class KNNConfig:
    """Weighted kNN of Wu et al. (2018, arXiv 1805.01978): k = 200, temperature 0.1."""

    k: int = 200
    temperature: float = 0.1

    def validate(self, path: str) -> None:
        if self.k < 1 or self.temperature <= 0:
            raise ConfigError(f"'{path}': k must be >= 1 and temperature > 0")


@dataclass(frozen=True)
class MapConfig:
    """2-D map of test embeddings for the report."""

    method: Literal["tsne", "pca"] = "tsne"
    points: int = 2000


@dataclass(frozen=True)
class ProbeSpec:
    """What the configuration knows of a probe protocol (:mod:`csl.stages.probes` runs it):
    whether it needs labels, its settings section under ``eval`` (None: none), the metrics it
    writes given the eval config, those of them that do not rank encoders (every other one is
    higher-is-better: what ``champion_metric`` may name), and a one-line summary."""

    needs_labels: bool
    section: str | None
    metrics: Callable[["EvalConfig"], list[str]]
    unranked: tuple[str, ...]
    summary: str


PROBES: dict[str, ProbeSpec] = {
    "clustering": ProbeSpec(True, "clustering", lambda e: ["cluster_nmi", "cluster_ari", "cluster_acc"], (),
                            "k-means (k = classes) on test features: NMI, ARI, Hungarian accuracy"),
    "retrieval": ProbeSpec(True, "retrieval",
                           lambda e: [*(f"recall_at_{k}" for k in e.retrieval.ks), "map_at_r"], (),
                           "test queries against the training set: recall@k, mAP@R, neighbour grid"),
    "rankme": ProbeSpec(False, None, lambda e: ["rankme"], (),
                        "RankMe (Garrido et al. 2023): effective rank of the held-out embeddings"),
    "alignment": ProbeSpec(False, None, lambda e: ["alignment", "uniformity"], ("alignment", "uniformity"),
                           "alignment of two augmented views and uniformity (Wang & Isola 2020); lower is "
                           "better"),
    "dim_std": ProbeSpec(False, None, lambda e: ["dim_std", "std_ratio"], ("dim_std", "std_ratio"),
                         "per-dimension std of l2-normalised embeddings vs 1/sqrt(d) (SimSiam Sec. 4.1)"),
    "gallery": ProbeSpec(False, "gallery", lambda e: [], (),
                         "pictures without labels: nearest-neighbour grid, a grid per k-means cluster, the "
                         "embedding map coloured by cluster"),
}


@dataclass(frozen=True)
class GalleryConfig:
    """The label-free pictures of the ``gallery`` probe: ``clusters`` k-means clusters of the
    held-out features, ``per_cluster`` images of each (the closest to its centre), and a
    neighbour grid of ``queries`` held-out images with their ``neighbours`` nearest."""

    clusters: int = 8
    per_cluster: int = 8
    queries: int = 8
    neighbours: int = 6

    def validate(self, path: str) -> None:
        if min(self.clusters, self.per_cluster, self.queries, self.neighbours) < 1:
            raise ConfigError(f"'{path}': every count must be >= 1")


@dataclass(frozen=True)
class ClusteringConfig:
    """k-means with k = number of classes on the L2-normalized test features (``restarts`` seeded
    restarts of ``iterations`` Lloyd steps, lowest objective kept)."""

    restarts: int = 5
    iterations: int = 50

    def validate(self, path: str) -> None:
        if self.restarts < 1 or self.iterations < 1:
            raise ConfigError(f"'{path}': restarts and iterations must be >= 1")


@dataclass(frozen=True)
class RetrievalConfig:
    """Test images query the training set (cosine): recall@k for each k, mAP@R, and a grid of
    ``grid_queries`` queries with their ``grid_neighbours`` nearest for the report."""

    ks: list[int] = field(default_factory=lambda: [1, 5])
    grid_queries: int = 8
    grid_neighbours: int = 5

    def validate(self, path: str) -> None:
        if not self.ks or min(self.ks) < 1 or self.grid_queries < 1 or self.grid_neighbours < 1:
            raise ConfigError(f"'{path}': ks (non-empty), grid_queries and grid_neighbours must be >= 1")


@dataclass(frozen=True)
class FineTuneConfig:
    """Few-label fine-tuning of the whole encoder (SimCLR, arXiv 2002.05709 §B.5: Nesterov momentum
    0.9, lr = 0.05 x B/256, no warm-up, no weight decay, random crop and flip only; 60 epochs on 1%
    of the labels, 30 on 10%). ``from_head_layer``: SimCLR v2 (arXiv 2006.10029 §2.2) fine-tunes from
    the first layer of a 3-layer projection head: the encoder plus that many of the head's hidden
    layers (Linear-BN-ReLU) with their pretrained weights, then a new linear classifier.
    ``epochs: null`` follows the paper (60 for fractions <= 1%, 30 above); ``baseline``: the same
    architecture from random init on the same subset with the same budget."""

    from_head_layer: int = 0
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    baseline: bool = True

    def validate(self, path: str) -> None:
        if self.from_head_layer < 0:
            raise ConfigError(f"'{path}.from_head_layer' must be >= 0, got {self.from_head_layer}")
        if (self.epochs is not None and self.epochs < 1) or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"'{path}': epochs (or null), batch_size and lr must be positive")

    def epochs_for(self, fraction: float) -> int:
        return self.epochs if self.epochs is not None else (60 if fraction <= 0.01 + 1e-12 else 30)


@dataclass(frozen=True)
class DistillConfig:
    """Self-distillation (SimCLR v2, arXiv 2006.10029 §2.3): the fine-tuned model is the teacher; a
    student of the same architecture (or a smaller ``small_cnn`` with ``student_widths``), from random
    init, learns from every training image without labels by minimizing
    ``-sum_y P^T(y|x; tau) log P^S(y|x; tau)`` (the paper sets tau = 1). Same augmentation and
    optimizer as fine-tuning."""

    temperature: float = 1.0
    epochs: int = 5
    batch_size: int = 256
    lr: float = 0.05
    momentum: float = 0.9
    student_widths: list[int] | None = None

    def validate(self, path: str) -> None:
        if self.temperature <= 0 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"'{path}': temperature, epochs, batch_size and lr must be positive")


@dataclass(frozen=True)
class TransferConfig:
    """Target datasets for the transfer probe, by name; each is prepared into ``data/transfer/<name>``
    (a DVC-tracked output, like ``data/prepared``) and adapted to the encoder's input explicitly."""

    datasets: dict[str, DataConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class ProtocolItem:
    """One protocol stage of a variant: ``kind`` (probe | finetune | distill | transfer) and ``item``
    (the probe's name, a label fraction as params.yaml writes it, e.g. ``0.01``, or a transfer target)."""

    kind: str
    item: str

    @property
    def stage(self) -> str:
        """Its MLflow stage name (``clustering``, ``finetune-1pct``, ``transfer-<T>``)."""
        from csl.evaluate.subsets import fraction_key

        if self.kind == "probe":
            return self.item
        if self.kind in ("finetune", "distill"):
            return f"{self.kind}-{fraction_key(float(self.item))}"
        return f"{self.kind}-{self.item}"

    @property
    def option(self) -> str:
        """Its command-line option (``--protocol``, ``--fraction``, ``--target``)."""
        return {"probe": "--protocol", "transfer": "--target"}.get(self.kind, "--fraction")


@dataclass(frozen=True)
class RunConfig:
    """Which protocols the pipeline runs, each item a DVC stage per variant (``[]`` turns one off):
    ``probes`` on the frozen features, ``finetune``/``distill`` label fractions (a distilled fraction
    must also be fine-tuned: its teacher), ``transfer`` target names of ``eval.transfer.datasets``."""

    probes: list[str] = field(default_factory=lambda: ["clustering", "retrieval"])
    finetune: list[float] = field(default_factory=lambda: [0.01])
    distill: list[float] = field(default_factory=list)
    transfer: list[str] = field(default_factory=list)

    def validate(self, path: str) -> None:
        for p in self.probes:
            if p not in PROBES:
                raise ConfigError(f"'{path}.probes': unknown protocol {p!r}; choose from {', '.join(PROBES)}")
        for f in [*self.finetune, *self.distill]:
            if not 0 < f <= 1:
                raise ConfigError(f"'{path}': a label fraction must be in (0, 1], got {f}")
        missing = [f for f in self.distill if f not in self.finetune]
        if missing:
            raise ConfigError(f"'{path}.distill' {missing}: distillation needs the fine-tuned teacher of the same "
                              f"fraction; add {missing} to '{path}.finetune'")

    def planned(self, labelled: bool, in_memory: bool = True) -> "RunConfig":
        """What runs on this data: without labels, the probes that need labels and the fine-tuning,
        distillation and transfer protocols are left out; on streamed data (shards, image
        collections) fine-tuning and distillation, which train on images held in memory
        (:meth:`not_planned` says why)."""
        if not labelled:
            return RunConfig([p for p in self.probes if not PROBES[p].needs_labels], [], [], [])
        if not in_memory:
            return RunConfig(list(self.probes), [], [], list(self.transfer))
        return self

    def not_planned(self, labelled: bool, in_memory: bool = True) -> dict[str, str]:
        """The configured protocols that do not run on this data (``kind item``), each with why."""
        kept = set(self.planned(labelled, in_memory).items())
        why = ("needs labels, and the data has none" if not labelled else
               "trains on images held in memory, and the data is streamed from shards")
        return {f"{i.kind} {i.item}": why for i in self.items() if i not in kept}

    def items(self) -> list[ProtocolItem]:
        """Every protocol stage that runs for a variant, distillation last (it needs its teachers)."""
        return [*(ProtocolItem("probe", p) for p in self.probes),
                *(ProtocolItem("finetune", str(f)) for f in self.finetune),
                *(ProtocolItem("transfer", t) for t in self.transfer),
                *(ProtocolItem("distill", str(f)) for f in self.distill)]


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 1024
    random_baseline: bool = True
    seed: int = 0
    champion_metric: str = "linear_top1"
    linear: LinearConfig = field(default_factory=LinearConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    map: MapConfig = field(default_factory=MapConfig)
    run: RunConfig = field(default_factory=RunConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    gallery: GalleryConfig = field(default_factory=GalleryConfig)
    finetune: FineTuneConfig = field(default_factory=FineTuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def validate(self, path: str) -> None:
        unknown = [t for t in self.run.transfer if t not in self.transfer.datasets]
        if unknown:
            raise ConfigError(f"'{path}.run.transfer' names {unknown}, which '{path}.transfer.datasets' does not "
                              f"define (defined: {', '.join(self.transfer.datasets) or 'none'})")
        names = self.metric_names()
        if self.champion_metric not in names:  # with labels; the plan checks it for the data at hand
            raise ConfigError(f"'{path}.champion_metric' {self.champion_metric!r} is not produced by the protocols "
                              f"that run ('{path}.run'); choose one of: {', '.join(names)}")
        for name, d in self.transfer.datasets.items():
            if d.dataset == "shards":
                raise ConfigError(f"'{path}.transfer.datasets.{name}': transfer targets are prepared in memory; "
                                  "shards are not supported")

    def metric_names(self, labelled: bool = True, in_memory: bool = True) -> list[str]:
        """The ranking metrics the protocols that run on this data write (higher is better for
        each): what ``champion_metric`` may name and the report's columns."""
        from csl.evaluate.subsets import fraction_key

        run = self.run.planned(labelled, in_memory)
        names = ["linear_top1", "knn_top1"] if labelled else []
        for p in run.probes:
            names += [m for m in PROBES[p].metrics(self) if m not in PROBES[p].unranked]
        names += [f"finetune_{fraction_key(f)}_top1" for f in run.finetune]
        names += [f"distill_{fraction_key(f)}_student_top1" for f in run.distill]
        names += [f"transfer_{t}_{m}" for t in run.transfer for m in ("linear_top1", "knn_top1")]
        return names
