"""``csl linear-eval --variant NAME``: linear and kNN top-1 of the frozen encoder and of a randomly
initialised encoder of the same architecture (the baseline), on the features of ``csl features``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from csl import data as csl_data
from csl.evaluate.embedding_map import embedding_map
from csl.evaluate.protocol import frozen_metrics, protocol_record
from csl.io import atomic_write_bytes, atomic_write_json
from csl.params import Params, Variant
from csl.stages.features import read_features, read_meta
from csl.stages.layout import PREPARED, Layout


def linear_eval(params: Params, variant: Variant, project: Path) -> dict[str, Any]:
    """Pure stage: features -> ``runs/<variant>/eval/{metrics.json,embedding_map.npz,protocol.json}``."""
    layout = Layout(project, params)
    layout.check_storage()
    cfg = params.eval
    fdir = layout.features_dir(variant)
    c = len(read_meta(fdir)["classes"])
    if c < 2:
        from csl.errors import ConfigError

        raise ConfigError(f"linear-eval needs labels, and {read_meta(fdir)['dataset']} has none: it is not planned for "
                          "this data (csl run leaves it out); the label-free probes (rankme, alignment, dim_std, "
                          "gallery) evaluate an encoder without labels")
    trained = read_features(fdir)
    assert trained is not None
    metrics: dict[str, Any] = dict(frozen_metrics(trained, c, cfg))
    rand = read_features(fdir, random=True) if cfg.random_baseline else None
    if rand is not None:
        metrics.update({f"random_{k}": v for k, v in frozen_metrics(rand, c, cfg).items()})
    emap = embedding_map(trained.test, trained.test_labels, cfg.map, cfg.seed)
    out = layout.eval_dir(variant)
    buf = io.BytesIO()
    np.savez(buf, xy=emap["xy"], labels=emap["labels"])
    atomic_write_bytes(out / "embedding_map.npz", buf.getvalue())
    atomic_write_json(out / "protocol.json", protocol_record(cfg))
    atomic_write_json(out / "metrics.json", metrics)  # last: its presence means the stage completed
    layout.upload_artifacts(out)
    return metrics


def main(params: Params, project: Path, variant: Variant) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    with tracking.stage_run(project, params.tracking.experiment, "linear-eval", variant.name) as rec:
        rec.params({"variant": variant.name, "eval": protocol_record(params.eval)})
        meta = csl_data.read_meta(layout.prepared)
        rec.dataset(meta, str(layout.prepared), tracking.dvc_out_md5(project, PREPARED))
        metrics = linear_eval(params, variant, project)
        rec.metrics(metrics)
        rec.artifact(layout.eval_dir(variant) / "metrics.json", "eval")
        rec.artifact(layout.eval_dir(variant) / "protocol.json", "eval")
        rec.artifact(layout.eval_dir(variant) / "embedding_map.npz", "eval")
    line = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"evaluated {variant.name}: {line}")
    return metrics
