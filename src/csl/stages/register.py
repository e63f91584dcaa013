"""``csl register --variant NAME``: register the variant's encoder in the MLflow model registry
as ``csl-encoder-<dataset>-<variant>``, with its lineage, after linear-eval; move the alias
``champion`` only when it beats the champion on the same dataset version.

Writes ``runs/<variant>/register/registration.json``: what this registration is in the store it was
made in (name, version, uri, the run that logged it, the encoder's sha256, the store's URI, the
champion decision). It is a local record, not in git: the store is the truth, and ``csl run``
checks the record against the store configured now before DVC decides what to run
(:func:`check_registrations`), so a registration that is absent or different there is made again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from csl import data as csl_data
from csl.data.prepared import StreamSplit
from csl.tracking.dvc_data import read_origin
from csl.encoders.saved import load_feature_extractor
from csl.io import atomic_write_json
from csl.params import Params, Variant
from csl.stages.layout import PREPARED, Layout
from csl.stages.protocols import evaluation_metrics, protocol_stages

def params_hash(params: Params, variant: Variant) -> str:
    """sha256 of everything that determines the encoder and its metrics."""
    from csl.config.strict import to_dict

    resolved = {"method": variant.as_dict(), "data": to_dict(params.data), "eval": to_dict(params.eval)}
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()


def input_example(data: csl_data.Prepared) -> Any:
    """Four test images, uint8 ``(4, C, H, W)`` (the first batch of the stream for shards)."""
    if isinstance(data.test, StreamSplit):
        from csl.data.shards import ShardStream

        meta = data.meta
        x = next(iter(ShardStream(data.test.root, 4, int(meta["shape"][1]), int(meta["shape"][0]), buffer=1,
                                  labels=False, drop_last=False)))
        return x.numpy()
    return data.test.images[:4]


def main(params: Params, project: Path, variant: Variant) -> dict[str, Any]:
    from csl import tracking
    from csl.tracking import model_registry

    layout = Layout(project, params)
    enc_path = layout.pretrain_dir(variant) / "encoder.pt"
    metrics = evaluation_metrics(params, layout, variant)
    rule = params.eval.champion_metric
    extractor = load_feature_extractor(enc_path)
    meta = csl_data.read_meta(layout.prepared)
    example = input_example(csl_data.load(layout.prepared))  # uint8 (4, C, H, W): images in
    name = model_registry.model_name(meta["name"], variant.name)
    md5 = tracking.dvc_out_md5(project, PREPARED)
    origin = read_origin(layout.prepared)  # data fetched by git revision (the Kubeflow pipeline)
    commit, dirty = tracking.git_commit(project)
    pipeline_run = tracking.pipeline_run_id() or os.environ.get(tracking.PARENT_ENV, "")
    pre_metrics = layout.pretrain_dir(variant) / "metrics.json"
    pre = json.loads(pre_metrics.read_text()) if pre_metrics.is_file() else {}
    fingerprint = pre.get("code_fingerprint", "")
    warm = pre.get("parent") or {}  # train.init_from: the registered (or file) encoder it started from
    with tracking.stage_run(project, params.tracking.experiment, "register", variant.name) as rec:
        parent = tracking.current_parent(tracking.connect(project, params.tracking.experiment))
        stage_runs = tracking.latest_stage_runs(project, params.tracking.experiment, variant.name,
                                                ("pretrain", "features", "linear-eval", *protocol_stages(params)),
                                                parent)
        tags = {
            "csl.variant": variant.name, "csl.method": variant.method,
            "csl.data.name": meta["name"], "csl.data.path": str(layout.prepared.relative_to(project)),
            "csl.data.dvc_md5": md5 or "untracked", "csl.data.content_hash": meta["content_hash"],
            "csl.data.remote": tracking.dvc_remote_url(project) or "none",
            **({"csl.data.repo": origin.repo, "csl.data.rev": origin.rev} if origin else {}),
            "csl.git_commit": commit, "csl.git_dirty": str(dirty), "csl.params_hash": params_hash(params, variant),
            "csl.code_fingerprint": fingerprint or "unknown",
            **({"csl.parent.uri": warm["uri"], "csl.parent.model_version": warm["model_version"] or "file",
                "csl.parent.sha256": warm["sha256"]} if warm else {}),
            "csl.pipeline_run_id": pipeline_run, "csl.run.register": rec.run_id,
            **{f"csl.run.{stage}": run_id for stage, run_id in stage_runs.items()},
            **{f"csl.metrics.{k}": f"{v:.6f}" for k, v in metrics.items() if isinstance(v, (int, float))},
        }
        rec.tags({"csl.model_name": name})
        rec.tags({"csl.champion_metric": rule})
        reg = model_registry.register(extractor, example, name, enc_path, tags, rule, float(metrics[rule]))
        rec.tags({"csl.model_version": reg.version, "csl.champion_decision": reg.decision})
    out = {"name": reg.name, "version": reg.version, "uri": reg.uri, "run_id": reg.run_id,
           "encoder_sha256": reg.encoder_sha256, "store": tracking.tracking_uri(project), "champion": reg.champion,
           "decision": reg.decision}
    atomic_write_json(layout.register_dir(variant) / "registration.json", out)
    verb = "registered" if reg.created else "unchanged:"
    print(f"{verb} {reg.uri}{' (champion)' if reg.champion else ''}: {reg.decision}")
    return out


def check_registrations(params: Params, project: Path) -> list[str]:
    """Remove each variant's ``registration.json`` that does not hold in the store configured now
    (the version is absent, holds another encoder, or came from another run), so that DVC
    registers that variant again. Returns one line per record removed."""
    from csl import tracking
    from csl.tracking import model_registry

    layout = Layout(project, params)
    records = [(v, layout.register_dir(v) / "registration.json") for v in params.selected]
    records = [(v, f) for v, f in records if f.is_file()]
    if not records:
        return []
    tracking.use_store(project)
    stale = []
    for variant, f in records:
        try:
            record = json.loads(f.read_text())
            why = model_registry.verify(record, layout.pretrain_dir(variant) / "encoder.pt")
        except (ValueError, OSError) as e:
            why = f"{f} is unreadable ({e})"
        if why is not None:
            f.unlink()
            stale.append(f"register@{variant.name}: {why} ({tracking.tracking_uri(project)}); registering it again")
    return stale
