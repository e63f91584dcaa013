"""Thin typed KFP v2 components over csl's stage entry points (the same ones DVC calls).

(No ``from __future__ import annotations`` here: KFP reads the annotations as types.)

Each step assembles a project directory from its inputs (``csl.stages.workspace``), runs the
stage, and exports the stage's outputs as artifacts. MLflow settings come from the pod's
environment (``MLFLOW_TRACKING_URI``, set from a ConfigMap on the cluster) or the
``tracking_uri`` parameter; ``pipeline_run_id`` is written on every stage run and registered
model so that lineage reaches the pipeline run.
"""


from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

IMAGE = "ghcr.io/csl-project/csl:latest"  # the Dockerfile's image: csl and its pinned dependencies


@dsl.component(base_image=IMAGE)
def prepare(params_yaml: str, tracking_uri: str, pipeline_run_id: str, data: Output[Dataset]) -> str:
    """``csl prepare`` -> the prepared dataset; returns its content hash."""
    import json
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    ws = assemble(params_yaml, {}, tracking_uri, pipeline_run_id)
    run_stage(ws, "prepare")
    export(ws / "data" / "prepared", data.path)
    meta = json.loads((Path(data.path) / "meta.json").read_text())
    data.metadata.update({"name": meta["name"], "content_hash": meta["content_hash"]})
    return str(meta["content_hash"])


@dsl.component(base_image=IMAGE)
def pretrain(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             encoder: Output[Model]) -> None:
    """``csl pretrain --variant V`` in this step -> ``runs/V/pretrain`` as a Model artifact."""
    from csl.stages.workspace import assemble, export, run_stage

    ws = assemble(params_yaml, {"data/prepared": data.path}, tracking_uri, pipeline_run_id)
    run_stage(ws, "pretrain", "--variant", variant)
    export(ws / "runs" / variant / "pretrain", encoder.path)
    encoder.metadata["variant"] = variant


@dsl.component(base_image=IMAGE)
def linear_eval(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
                encoder: Input[Model], metrics: Output[Metrics], run: Output[Artifact]) -> float:
    """``csl linear-eval --variant V`` -> metrics, and ``runs/V`` (pretrain + eval) as one artifact."""
    import json
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    ws = assemble(params_yaml, {"data/prepared": data.path, f"runs/{variant}/pretrain": encoder.path}, tracking_uri,
                  pipeline_run_id)
    run_stage(ws, "linear-eval", "--variant", variant)
    values = json.loads((ws / "runs" / variant / "eval" / "metrics.json").read_text())
    for k, v in values.items():
        if isinstance(v, (int, float)):
            metrics.log_metric(k, float(v))
    export(ws / "runs" / variant, run.path)
    run.metadata["variant"] = variant
    Path(run.path, "variant.txt").write_text(variant)
    return float(values["linear_top1"])


@dsl.component(base_image=IMAGE)
def register(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             run: Input[Artifact]) -> str:
    """``csl register --variant V``: the MLflow registry (champion rule, lineage); returns the model URI."""
    import json

    from csl.stages.workspace import assemble, run_stage

    ws = assemble(params_yaml, {"data/prepared": data.path, f"runs/{variant}": run.path}, tracking_uri,
                  pipeline_run_id)
    run_stage(ws, "register", "--variant", variant)
    return str(json.loads((ws / "runs" / variant / "register" / "registration.json").read_text())["uri"])


@dsl.component(base_image=IMAGE)
def report(params_yaml: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
           runs: Input[List[Artifact]], report: Output[Artifact]) -> None:
    """``csl report`` over every variant's run -> the report directory (HTML, Markdown, PNGs)."""
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    inputs = {"data/prepared": data.path, **{f"runs/{Path(r.path, 'variant.txt').read_text()}": r.path for r in runs}}
    ws = assemble(params_yaml, inputs, tracking_uri, pipeline_run_id)
    run_stage(ws, "report")
    export(ws / "reports", report.path)
