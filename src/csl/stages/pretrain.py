"""``csl pretrain --variant NAME``: pretrain one method variant; write its encoder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from csl import data as csl_data
from csl.io import atomic_write_bytes, atomic_write_json
from csl.params import Params, Variant
from csl.stages.deps import fingerprint
from csl.stages.layout import PREPARED, Layout
from csl.train.fit import FitResult, fit
from csl.train.history import MetricSink

from csl.encoders.saved import ENCODER_FORMAT


def encoder_payload(variant: Variant, meta: dict[str, Any], state: dict[str, torch.Tensor],
                    head: dict[str, Any] | None = None, parent: dict[str, Any] | None = None) -> dict:
    """Everything needed to rebuild and use the encoder: spec, normalization, weights; the MLP
    projection head where the method has one (``None`` otherwise; fine-tuning from its layers); and
    the warm start's parent (``{"uri", "model_version", "sha256"}``, or None)."""
    return {
        "format": ENCODER_FORMAT,
        "variant": variant.name,
        "method": variant.method,
        "encoder": variant.config.parts["encoder"].as_dict(),
        "in_channels": int(meta["shape"][0]),
        "image_size": int(meta["shape"][1]),
        "mean": list(meta["mean"]),
        "std": list(meta["std"]),
        "classes": list(meta["classes"]),
        "dataset": meta["name"],
        "dataset_content_hash": meta["content_hash"],
        "state_dict": state,
        "head": head,
        "parent": parent,
    }


def resolve_parent(init_from: str | None, project: Path) -> dict[str, Any] | None:
    """The warm start's parent encoder as it is now: ``{"uri", "model_version", "sha256", "state_dict"}``
    (a registry URI follows its alias; the store is the project's, as for every stage), or None."""
    if init_from is None:
        return None
    from csl.embed.load import is_model_uri, load_encoder_with_source

    if is_model_uri(init_from):
        from csl import tracking

        tracking.use_store(project)
    path = Path(init_from) if is_model_uri(init_from) or Path(init_from).is_absolute() else project / init_from
    extractor, source = load_encoder_with_source(init_from if is_model_uri(init_from) else path)
    state = {k: v.detach().clone() for k, v in extractor.encoder.state_dict().items()}
    return {"uri": init_from, "model_version": source.model_version, "sha256": source.encoder_sha256,
            "state_dict": state}


def check_parents(params: Params, project: Path) -> list[str]:
    """Remove the encoder of each variant whose warm-start parent is no longer what it was trained
    from (an alias moved, a file changed), so that DVC pretrains it again: the registry is state DVC
    cannot see. Returns one line per encoder removed."""
    layout = Layout(project, params)
    stale = []
    for v in params.selected:
        init = v.config.train.init_from
        metrics = layout.pretrain_dir(v) / "metrics.json"
        if init is None or not metrics.is_file():
            continue
        recorded = (json.loads(metrics.read_text()).get("parent") or {}).get("sha256")
        now = resolve_parent(init, project)
        if now is not None and now["sha256"] != recorded:
            (layout.pretrain_dir(v) / "encoder.pt").unlink(missing_ok=True)
            stale.append(f"pretrain@{v.name}: train.init_from {init} is now encoder sha256 {now['sha256'][:12]} (was "
                         f"{(recorded or 'none')[:12]}); pretraining it again")
    return stale


def pretrain(params: Params, variant: Variant, project: Path, sink: MetricSink | None = None) -> FitResult:
    """Pure stage: prepared data -> ``runs/<variant>/pretrain/{encoder.pt,history.json,metrics.json}``."""
    layout = Layout(project, params)
    layout.check_storage()
    data = csl_data.load(layout.prepared)
    code = fingerprint()
    parent = resolve_parent(variant.config.train.init_from, project)
    sha = parent["sha256"] if parent else None
    ckpt = layout.checkpoint_dir(variant, data.meta["content_hash"], code, sha)
    remote = layout.remote_checkpoint_dir(variant, data.meta["content_hash"], code, sha)
    result = fit(variant.config, data, ckpt, sink, remote_ckpt=remote, health=params.health,
                 init_state=parent.pop("state_dict") if parent else None)
    result.summary["parent"] = parent
    resumed = result.summary["resumed_from"]  # project-relative: the same in every clone
    result.summary.update({"code_fingerprint": code, "checkpoint_dir": ckpt.relative_to(project).as_posix(),
                           "resumed_from": Path(resumed).resolve().relative_to(project.resolve()).as_posix()
                           if resumed else None})
    if result.summary["rank"] != 0:
        return result  # every process trains; rank 0 alone writes the outputs
    out = layout.pretrain_dir(variant)
    buf = io.BytesIO()
    torch.save(encoder_payload(variant, data.meta, result.encoder_state, result.head, parent), buf)
    atomic_write_bytes(out / "encoder.pt", buf.getvalue())
    atomic_write_json(out / "history.json", result.history)
    atomic_write_json(out / "metrics.json", result.summary)
    layout.upload_artifacts(out)
    return result


def main(params: Params, project: Path, variant: Variant) -> None:
    from csl import tracking
    from csl.distributed import launch_rank

    if launch_rank() != 0:  # the other processes of a multi-process run train and leave the rest to rank 0
        pretrain(params, variant, project)
        return
    layout = Layout(project, params)
    with tracking.stage_run(project, params.tracking.experiment, "pretrain", variant.name) as rec:
        rec.params({"variant": variant.name, **variant.as_dict()})
        meta = csl_data.read_meta(layout.prepared)
        rec.dataset(meta, str(layout.prepared), tracking.dvc_out_md5(project, PREPARED))
        result = pretrain(params, variant, project, sink=rec.metrics)
        rec.metrics({k: v for k, v in result.summary.items() if isinstance(v, (int, float))})
        out = layout.pretrain_dir(variant)
        rec.artifact(out / "history.json")
        rec.artifact(out / "encoder.pt", "encoder")
        rec.tags({"csl.code_fingerprint": str(result.summary.get("code_fingerprint", ""))})
        if result.summary.get("parent"):
            p = result.summary["parent"]
            rec.tags({"csl.parent.uri": p["uri"], "csl.parent.model_version": p["model_version"] or "file",
                      "csl.parent.sha256": p["sha256"]})
        rec.artifact(project / str(result.summary["checkpoint_dir"]) / "last.ckpt", "checkpoint")
    s = result.summary
    print(f"pretrained {variant.name}: {s['epochs']} epochs, loss {s['final_loss']:.4f}, "
          f"{s['images_per_s']:.0f} images/s -> {layout.pretrain_dir(variant) / 'encoder.pt'}")
