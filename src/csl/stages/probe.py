"""``csl probe --variant NAME --protocol P``: a probe protocol on the frozen features of ``csl features``
(trained encoder and random-init baseline) -> ``runs/<variant>/eval/<protocol>/``.

The probes (:data:`csl.evaluate.config.PROBES`, run by :data:`csl.stages.probes.RUNNERS`):

- clustering (labels): k-means with k = number of classes on the test features; NMI, ARI,
  Hungarian accuracy.
- retrieval (labels): test images query the training set (cosine); recall@k, mAP@R, and
  ``grid.png``: a few queries with their nearest training images, wrong-class neighbours framed red.
- rankme, alignment (and uniformity), dim_std: label-free measures of the held-out embeddings
  (:mod:`csl.evaluate.label_free`).
- gallery: label-free pictures of the held-out images: neighbours, k-means clusters, the map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csl.config.strict import to_dict
from csl.errors import ConfigError
from csl.evaluate.config import PROBES, ProtocolItem
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.stages.features import read_meta
from csl.stages.layout import Layout
from csl.stages.probes import RUNNERS, Context


def check(params: Params, protocol: str, meta: dict[str, Any]) -> None:
    """Refuse what cannot run, before any work."""
    if protocol not in PROBES:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROBES)}")
    if PROBES[protocol].needs_labels and len(meta["classes"]) < 2:
        raise ConfigError(f"probe {protocol} needs labels, and {meta['dataset']} has none: it is not planned for "
                          "this data (csl run leaves it out); use a label-free probe (" +
                          ", ".join(p for p, s in PROBES.items() if not s.needs_labels) + ")")
    runner = RUNNERS[protocol]
    if runner.check is not None:
        runner.check(params, meta)


def settings(params: Params, protocol: str) -> dict[str, Any]:
    """The probe's settings as recorded (protocol.json, the MLflow run)."""
    section = PROBES[protocol].section
    return {"protocol": protocol, "seed": params.eval.seed,
            **(to_dict(getattr(params.eval, section)) if section else {})}


def probe(params: Params, variant: Variant, project: Path, protocol: str) -> dict[str, Any]:
    """Pure stage: features -> ``runs/<variant>/eval/<protocol>/{metrics.json,protocol.json,...}``."""
    layout = Layout(project, params)
    meta = read_meta(layout.features_dir(variant))
    check(params, protocol, meta)
    ctx = Context(params, layout, variant, meta)
    runner = RUNNERS[protocol]
    metrics: dict[str, Any] = dict(runner.measure(ctx, False))
    if ctx.random is not None:
        metrics.update({f"random_{k}": v for k, v in runner.measure(ctx, True).items()})
    out = layout.item_dir(variant, ProtocolItem("probe", protocol))
    with atomic_dir(out) as tmp:
        if runner.draw is not None:
            runner.draw(ctx, tmp)
        (tmp / "protocol.json").write_text(json.dumps({**settings(params, protocol),
                                                       "split": "held-out (test)"}, indent=2) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    layout.upload_artifacts(out)
    return metrics


def main(params: Params, project: Path, variant: Variant, protocol: str) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    check(params, protocol, read_meta(layout.features_dir(variant)))
    with tracking.stage_run(project, params.tracking.experiment, ProtocolItem("probe", protocol).stage,
                            variant.name) as rec:
        rec.params({"variant": variant.name, **settings(params, protocol)})
        metrics = probe(params, variant, project, protocol)
        rec.metrics(metrics)
        rec.artifact(layout.item_dir(variant, ProtocolItem("probe", protocol)), protocol)
    print(f"{protocol} of {variant.name}: " + (", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or
                                               f"pictures in {layout.item_dir(variant, ProtocolItem('probe', protocol))}"))
    return metrics
