"""``csl probe --variant NAME --protocol clustering|retrieval``: a protocol on the frozen features of
``csl features`` (trained encoder and random-init baseline) -> ``runs/<variant>/eval/<protocol>/``.

- clustering: k-means with k = number of classes on the test features; NMI, ARI, Hungarian accuracy.
- retrieval: test images query the training set (cosine); recall@k, mAP@R, and ``grid.png``: a few
  queries with their nearest training images, wrong-class neighbours framed in red.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.data.dataset import Split
from csl.errors import ConfigError
from csl.evaluate.clustering import cluster_metrics
from csl.evaluate.config import PROBES, ProtocolItem
from csl.evaluate.protocol import Features
from csl.evaluate.retrieval import nearest, neighbour_grid, retrieval_metrics
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.stages.features import read_features, read_meta
from csl.stages.layout import Layout


def _clustering(params: Params, f: Features, classes: int) -> dict[str, float]:
    c = params.eval.clustering
    return cluster_metrics(f.test, f.test_labels, classes, params.eval.seed, c.restarts, c.iterations)


def _retrieval(params: Params, f: Features) -> dict[str, float]:
    return retrieval_metrics(f.test, f.test_labels, f.train, f.train_labels, params.eval.retrieval.ks)


def check(params: Params, protocol: str, meta: dict[str, Any]) -> None:
    """Refuse what cannot run, before any work."""
    if protocol not in PROBES:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROBES)}")
    if protocol == "clustering" and len(meta["classes"]) > meta["num_test"]:
        raise ConfigError(f"clustering needs k = {len(meta['classes'])} (the number of classes) <= the "
                          f"{meta['num_test']} test images")
    if protocol == "retrieval" and max(params.eval.retrieval.ks) > meta["num_train"]:
        raise ConfigError(f"eval.retrieval.ks asks for recall@{max(params.eval.retrieval.ks)}, but the training "
                          f"set has {meta['num_train']} images; use smaller ks")


def grid(params: Params, layout: Layout, f: Features, out: Path) -> dict[str, Any] | None:
    """``grid.png`` and ``neighbours.json`` (in-memory datasets; streamed shards get none)."""
    data = csl_data.load(layout.prepared)
    if not isinstance(data.train, Split) or not isinstance(data.test, Split):
        return None
    r = params.eval.retrieval
    rng = np.random.default_rng(params.eval.seed)
    queries = np.sort(rng.choice(len(data.test.images), size=min(r.grid_queries, len(data.test.images)),
                                 replace=False))
    nb = nearest(f.test[queries], f.train, min(r.grid_neighbours, len(data.train.images))).numpy()
    wrong = data.train.labels[nb] != data.test.labels[queries][:, None]
    (out / "grid.png").write_bytes(neighbour_grid(data.test.images[queries], data.train.images[nb], wrong))
    record = {"queries": queries.tolist(), "neighbours": nb.tolist(), "wrong": wrong.tolist(),
              "query_labels": data.test.labels[queries].tolist()}
    (out / "neighbours.json").write_text(json.dumps(record) + "\n")
    return record


def probe(params: Params, variant: Variant, project: Path, protocol: str) -> dict[str, Any]:
    """Pure stage: features -> ``runs/<variant>/eval/<protocol>/{metrics.json,protocol.json}``."""
    layout = Layout(project, params)
    fdir = layout.features_dir(variant)
    meta = read_meta(fdir)
    check(params, protocol, meta)
    trained, rand = read_features(fdir), read_features(fdir, random=True)
    assert trained is not None
    run = (lambda f: _clustering(params, f, len(meta["classes"]))) if protocol == "clustering" else \
        (lambda f: _retrieval(params, f))
    metrics: dict[str, Any] = dict(run(trained))
    if rand is not None:
        metrics.update({f"random_{k}": v for k, v in run(rand).items()})
    out = layout.item_dir(variant, ProtocolItem("probe", protocol))
    with atomic_dir(out) as tmp:
        if protocol == "retrieval":
            grid(params, layout, trained, tmp)
        settings = to_dict(params.eval.clustering if protocol == "clustering" else params.eval.retrieval)
        (tmp / "protocol.json").write_text(json.dumps({"protocol": protocol, "seed": params.eval.seed,
                                                       "split": "test" if protocol == "clustering" else
                                                       "test queries, train database", **settings}, indent=2) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    layout.upload_artifacts(out)
    return metrics


def main(params: Params, project: Path, variant: Variant, protocol: str) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    check(params, protocol, read_meta(layout.features_dir(variant)))
    with tracking.stage_run(project, params.tracking.experiment, ProtocolItem("probe", protocol).stage,
                            variant.name) as rec:
        settings = params.eval.clustering if protocol == "clustering" else params.eval.retrieval
        rec.params({"variant": variant.name, "protocol": protocol, "seed": params.eval.seed, **to_dict(settings)})
        metrics = probe(params, variant, project, protocol)
        rec.metrics(metrics)
        rec.artifact(layout.item_dir(variant, ProtocolItem("probe", protocol)), protocol)
    print(f"{protocol} of {variant.name}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics
