"""The probe protocols, one entry each: what ``csl probe --protocol NAME`` computes and draws.

``PROBES`` (:mod:`csl.evaluate.config`) says what the configuration knows of a probe (labels
needed, settings section, metric names); ``RUNNERS`` here says how it runs, keyed alike:

- ``measure(ctx, random)``: the metrics of the trained encoder (``random``: of the random-init
  baseline, stored with a ``random_`` prefix);
- ``draw(ctx, out)``: pictures written beside the metrics (optional);
- ``check(params, meta)``: refuse what cannot run, before any work (optional).

A new probe is an entry in both tables; the stage, the CLI's choices, the DVC matrix, the
Kubeflow plan and the report read them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csl import data as csl_data
from csl.errors import ConfigError
from csl.evaluate import label_free
from csl.evaluate.protocol import Features
from csl.params import Params, Variant
from csl.stages.features import read_features
from csl.stages.layout import Layout

UNIFORMITY_SAMPLES = 4096  # pairs grow as N^2: a seeded subset of held-out embeddings (8.4M pairs)


@dataclass
class Context:
    """What a probe reads: the params, the variant, the features of ``csl features`` and, on
    demand, the held-out images and the encoders."""

    params: Params
    layout: Layout
    variant: Variant
    meta: dict[str, Any]  # the features' meta.json

    @cached_property
    def trained(self) -> Features:
        f = read_features(self.layout.features_dir(self.variant))
        assert f is not None
        return f

    @cached_property
    def random(self) -> Features | None:
        return read_features(self.layout.features_dir(self.variant), random=True)

    def features(self, random: bool) -> Features:
        f = self.random if random else self.trained
        assert f is not None
        return f

    @cached_property
    def data(self) -> csl_data.Prepared:
        return csl_data.load(self.layout.prepared)

    def heldout_images(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), C, S, S)``: the held-out images at these rows of the test features."""
        from csl.evaluate.features import heldout_images

        return heldout_images(self.data, rows)

    def encoder(self, random: bool) -> torch.nn.Module:
        from csl.encoders.saved import build_from_payload
        from csl.stages.features import checked_payload

        payload = checked_payload(self.layout, self.variant, self.data.meta)
        seed = self.params.eval.seed if random else None
        return build_from_payload(payload, random_init_seed=seed).eval()


@dataclass(frozen=True)
class Runner:
    measure: Callable[[Context, bool], dict[str, float]]
    draw: Callable[[Context, Path], None] | None = None
    check: Callable[[Params, dict[str, Any]], None] | None = None


# -- label-based ----------------------------------------------------------------------------------

def _clustering(ctx: Context, random: bool) -> dict[str, float]:
    from csl.evaluate.clustering import cluster_metrics

    c, f = ctx.params.eval.clustering, ctx.features(random)
    return cluster_metrics(f.test, f.test_labels, len(ctx.meta["classes"]), ctx.params.eval.seed, c.restarts,
                           c.iterations)


def _check_clustering(params: Params, meta: dict[str, Any]) -> None:
    if len(meta["classes"]) > meta["num_test"]:
        raise ConfigError(f"clustering needs k = {len(meta['classes'])} (the number of classes) <= the "
                          f"{meta['num_test']} test images")


def _retrieval(ctx: Context, random: bool) -> dict[str, float]:
    from csl.evaluate.retrieval import retrieval_metrics

    f = ctx.features(random)
    return retrieval_metrics(f.test, f.test_labels, f.train, f.train_labels, ctx.params.eval.retrieval.ks)


def _check_retrieval(params: Params, meta: dict[str, Any]) -> None:
    if max(params.eval.retrieval.ks) > meta["num_train"]:
        raise ConfigError(f"eval.retrieval.ks asks for recall@{max(params.eval.retrieval.ks)}, but the training "
                          f"set has {meta['num_train']} images; use smaller ks")


def _retrieval_grid(ctx: Context, out: Path) -> None:
    """``grid.png`` and ``neighbours.json``: test queries and their nearest training images, framed
    green (same class) or red (in-memory datasets; streamed shards get none)."""
    from csl.data.dataset import Split
    from csl.evaluate.retrieval import nearest, neighbour_grid

    data = ctx.data
    if not isinstance(data.train, Split) or not isinstance(data.test, Split):
        return
    r, f = ctx.params.eval.retrieval, ctx.trained
    rng = np.random.default_rng(ctx.params.eval.seed)
    queries = np.sort(rng.choice(len(data.test.images), size=min(r.grid_queries, len(data.test.images)),
                                 replace=False))
    nb = nearest(f.test[queries], f.train, min(r.grid_neighbours, len(data.train.images))).numpy()
    wrong = data.train.labels[nb] != data.test.labels[queries][:, None]
    (out / "grid.png").write_bytes(neighbour_grid(data.test.images[queries], data.train.images[nb], wrong))
    record = {"queries": queries.tolist(), "neighbours": nb.tolist(), "wrong": wrong.tolist(),
              "query_labels": data.test.labels[queries].tolist()}
    (out / "neighbours.json").write_text(json.dumps(record) + "\n")


# -- label-free -----------------------------------------------------------------------------------

def _rankme(ctx: Context, random: bool) -> dict[str, float]:
    return {"rankme": label_free.rankme(ctx.features(random).test)}


def _subset(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(n, k)])


def _views(ctx: Context, encoder: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's embeddings of two augmented views (the variant's first two) of every held-out
    image, with one fixed generator (``eval.seed``): Wang & Isola's positive pairs."""
    from csl.augment import AUGMENTATIONS, MultiViewAugment
    from csl.registry import build

    meta = ctx.data.meta
    augment = build(AUGMENTATIONS, ctx.variant.config.parts["augment"], image_size=int(meta["shape"][1]),
                    mean=torch.tensor(meta["mean"]), std=torch.tensor(meta["std"]))
    if len(augment.specs) < 2:
        raise ConfigError(f"alignment needs two views; the augmentation of {ctx.variant.name} gives one")
    augment = MultiViewAugment(augment.specs[:2], augment.mean, augment.std)
    g = torch.Generator().manual_seed(ctx.params.eval.seed)
    bs = ctx.params.eval.batch_size
    z: list[list[torch.Tensor]] = [[], []]
    test = ctx.data.test
    from csl.data.dataset import Split

    if isinstance(test, Split):
        batches: Any = (torch.as_tensor(test.images[i:i + bs]) for i in range(0, len(test.images), bs))
    else:  # crops from the stored native-size images, as in training
        from csl.data.shards import ShardStream

        batches = ShardStream(test.root, bs, int(meta["shape"][1]), int(meta["shape"][0]), buffer=1,
                              drop_last=False, labels=False, seed=ctx.params.eval.seed, crops=augment.crops())
    with torch.no_grad():
        for x in batches:
            for k, view in enumerate(augment(x, g)):
                z[k].append(encoder(view).float())
    return torch.cat(z[0]), torch.cat(z[1])


def _alignment(ctx: Context, random: bool) -> dict[str, float]:
    z1, z2 = _views(ctx, ctx.encoder(random))
    test = ctx.features(random).test
    rows = _subset(len(test), UNIFORMITY_SAMPLES, ctx.params.eval.seed)
    return {"alignment": label_free.alignment(z1, z2), "uniformity": label_free.uniformity(test[rows])}


def _dim_std(ctx: Context, random: bool) -> dict[str, float]:
    test = ctx.features(random).test
    return {"dim_std": label_free.dimension_std(test), "std_ratio": label_free.std_ratio(test)}


def _no_metrics(ctx: Context, random: bool) -> dict[str, float]:
    return {}


def _gallery(ctx: Context, out: Path) -> None:
    """``neighbours.png``: held-out queries and their nearest held-out images (no frames: there are
    no labels to judge them by); ``clusters.png``: one row per k-means cluster of the held-out
    features (biggest first), its images closest to the centre; ``map.png``: the embedding map
    coloured by cluster; ``gallery.json``: the rows, clusters and their sizes."""
    from csl.cluster.kmeans import kmeans
    from csl.evaluate.embedding_map import embedding_map
    from csl.evaluate.retrieval import image_grid, nearest, neighbour_grid
    from csl.report import plots

    cfg, seed = ctx.params.eval.gallery, ctx.params.eval.seed
    z = torch.nn.functional.normalize(ctx.trained.test.float(), dim=1)
    n = z.shape[0]
    queries = _subset(n, cfg.queries, seed)
    nb = nearest(z[queries], z, min(cfg.neighbours + 1, n)).numpy()[:, 1:]  # the first is the query itself
    k = min(cfg.clusters, n)
    km = kmeans(z, k, iterations=ctx.params.eval.clustering.iterations, redo=ctx.params.eval.clustering.restarts,
                generator=torch.Generator().manual_seed(seed))
    assign, dist = km.assign.numpy(), km.dist.numpy()
    sizes = np.bincount(assign, minlength=k)
    order = np.argsort(-sizes, kind="stable")  # biggest cluster first
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    rows = [m[np.argsort(dist[m], kind="stable")][: cfg.per_cluster]
            for m in (np.flatnonzero(assign == c) for c in order) if len(m)]
    needed = np.unique(np.concatenate([queries, nb.ravel(), *rows]))
    images = dict(zip(needed.tolist(), ctx.heldout_images(needed)))
    pick = lambda idx: np.stack([images[int(i)] for i in idx])  # noqa: E731
    (out / "neighbours.png").write_bytes(neighbour_grid(pick(queries), np.stack([pick(r) for r in nb]), None))
    (out / "clusters.png").write_bytes(image_grid([pick(r) for r in rows]))
    emap = embedding_map(ctx.trained.test, torch.as_tensor(rank[assign]), ctx.params.eval.map, seed)
    plots.embedding_map_plot(emap["xy"], emap["labels"], [f"cluster {c + 1} ({sizes[order[c]]})" for c in range(k)],
                             f"{ctx.variant.name}: held-out embeddings by k-means cluster", out / "map.png")
    record = {"queries": queries.tolist(), "neighbours": nb.tolist(), "clusters": [r.tolist() for r in rows],
              "cluster_sizes": sizes[order].tolist()}
    (out / "gallery.json").write_text(json.dumps(record) + "\n")


RUNNERS: dict[str, Runner] = {
    "clustering": Runner(_clustering, check=_check_clustering),
    "retrieval": Runner(_retrieval, _retrieval_grid, _check_retrieval),
    "rankme": Runner(_rankme),
    "alignment": Runner(_alignment),
    "dim_std": Runner(_dim_std),
    "gallery": Runner(_no_metrics, _gallery),
}
