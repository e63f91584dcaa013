"""``csl linear-eval --variant NAME``: linear and kNN top-1 of the frozen encoder and of
a randomly initialised encoder of the same architecture (the baseline)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csl import data as csl_data
from csl.encoders.saved import build_from_payload, read_payload
from csl.evaluate.embedding_map import embedding_map
from csl.evaluate.protocol import evaluate_encoder, protocol_record
from csl.io import atomic_write_bytes, atomic_write_json
from csl.params import Params, Variant
from csl.stages.layout import PREPARED, Layout


def linear_eval(params: Params, variant: Variant, project: Path) -> dict[str, Any]:
    """Pure stage: encoder + prepared data -> ``runs/<variant>/eval/{metrics.json,embedding_map.npz}``."""
    layout = Layout(project, params)
    layout.check_storage()
    data = csl_data.load(layout.prepared)
    payload = read_payload(layout.pretrain_dir(variant) / "encoder.pt")
    if payload["dataset_content_hash"] != data.meta["content_hash"]:
        from csl.errors import DataError

        raise DataError(f"the encoder of {variant.name} was trained on other data than {layout.prepared}; "
                        "rerun 'csl pretrain' (dvc repro does this for you)")
    cfg = params.eval
    device = "cuda" if torch.cuda.is_available() else "cpu"
    trained, test_features, test_labels = evaluate_encoder(build_from_payload(payload), data, cfg, device,
                                                           name=variant.name)
    metrics: dict[str, Any] = dict(trained)
    if cfg.random_baseline:
        rand, _, _ = evaluate_encoder(build_from_payload(payload, random_init_seed=cfg.seed), data, cfg, device,
                                   name="random-init")
        metrics.update({f"random_{k}": v for k, v in rand.items()})
    emap = embedding_map(test_features, test_labels, cfg.map, cfg.seed)
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
        rec.artifact(layout.eval_dir(variant), "eval")
    line = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    print(f"evaluated {variant.name}: {line}")
    return metrics
