"""Thin typed KFP v2 components over csl's stage entry points (the same ones DVC calls).

(No ``from __future__ import annotations`` here: KFP reads the annotations as types.)

Each step assembles a project directory from its inputs (``csl.stages.workspace``), runs the
stage, and exports the stage's outputs as artifacts. MLflow settings come from the pod's
environment (``MLFLOW_TRACKING_URI``, set from a ConfigMap on the cluster) or the
``tracking_uri`` parameter; ``pipeline_run_id`` is written on every stage run and registered
model so that lineage reaches the pipeline run.
"""


from typing import Dict, List

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

IMAGE = "ghcr.io/csl-project/csl:latest"  # the Dockerfile's image: csl and its pinned dependencies


@dsl.component(base_image=IMAGE)
def prepare(params_yaml: str, tracking_uri: str, pipeline_run_id: str, data_repo: str, data_rev: str,
            allow_unversioned: bool, data: Output[Dataset]) -> str:
    """The DVC-versioned ``data/prepared`` of ``data_repo`` at ``data_rev``, fetched from its DVC
    remote and verified (``csl fetch-data``); unversioned data is refused unless
    ``allow_unversioned`` (then ``csl prepare`` from params' data.source). Returns the DVC md5.
    Also opens the MLflow parent run of this pipeline run."""
    import json
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    ws = assemble(params_yaml, {}, tracking_uri, pipeline_run_id)
    if data_repo:
        run_stage(ws, "fetch-data", "--repo", data_repo, "--rev", data_rev or "HEAD")
    elif allow_unversioned:
        run_stage(ws, "prepare")
    else:
        raise ValueError("no data_repo given: the pipeline refuses unversioned data. Pass data_repo (the git "
                         "repository whose dvc.lock versions data/prepared, pushed to its DVC remote) and "
                         "data_rev, or allow_unversioned=True for a trial run")
    export(ws / "data", data.path)
    meta = json.loads((Path(data.path) / "prepared" / "meta.json").read_text())
    origin_file = Path(data.path) / "prepared.origin.json"
    origin = json.loads(origin_file.read_text()) if origin_file.is_file() else {}
    data.metadata.update({"name": meta["name"], "content_hash": meta["content_hash"], **origin})
    return str(origin.get("md5") or "untracked")


@dsl.component(base_image=IMAGE)
def pretrain(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             launcher: str, data_repo: str, data_rev: str, job_image: str, job_nodes: int, job_gpus_per_node: int,
             job_namespace: str, node_selector: Dict[str, str], tolerations: List[dict],
             encoder: Output[Model]) -> None:
    """Pretrain one variant -> ``runs/V/pretrain`` as a Model artifact. ``launcher``: ``local``
    (``csl pretrain`` in this step) or ``pytorchjob`` (a PyTorchJob of ``job_nodes`` pods with
    ``job_gpus_per_node`` GPUs each, followed to the end; the step fails with the job's reason)."""
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage, step_namespace

    ws = assemble(params_yaml, {"data": data.path}, tracking_uri, pipeline_run_id)
    out = ws / "runs" / variant / "pretrain"
    if launcher == "local":
        run_stage(ws, "pretrain", "--variant", variant)
    elif launcher == "pytorchjob":
        from csl.k8s.launch import pretrain_job

        pretrain_job(params_yaml, variant, data_repo, data_rev, pipeline_run_id, Path(out), image=job_image,
                     nodes=job_nodes, nproc_per_node=max(1, job_gpus_per_node), gpus_per_node=job_gpus_per_node,
                     namespace=job_namespace or step_namespace(), node_selector=node_selector,
                     tolerations=[t["key"] for t in tolerations if t.get("key")])
    else:
        raise ValueError(f"unknown launcher {launcher!r}: use 'local' or 'pytorchjob'")
    export(out, encoder.path)
    encoder.metadata.update({"variant": variant, "launcher": launcher})


@dsl.component(base_image=IMAGE)
def linear_eval(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
                encoder: Input[Model], metrics: Output[Metrics], run: Output[Artifact]) -> float:
    """``csl linear-eval --variant V`` -> metrics, and ``runs/V`` (pretrain + eval) as one artifact."""
    import json
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    ws = assemble(params_yaml, {"data": data.path, f"runs/{variant}/pretrain": encoder.path}, tracking_uri,
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

    ws = assemble(params_yaml, {"data": data.path, f"runs/{variant}": run.path}, tracking_uri,
                  pipeline_run_id)
    run_stage(ws, "register", "--variant", variant)
    return str(json.loads((ws / "runs" / variant / "register" / "registration.json").read_text())["uri"])


@dsl.component(base_image=IMAGE)
def report(params_yaml: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
           runs: Input[List[Artifact]], registered: List[str], report: Output[Artifact]) -> None:
    """``csl report`` over every variant's run and the registry (all pipeline runs) -> the report
    directory (HTML, Markdown, PNGs); also logged to this pipeline run's MLflow parent run."""
    from pathlib import Path

    from csl.stages.workspace import assemble, export, run_stage

    print("registered in this run:", ", ".join(registered))
    import json

    ran = [Path(r.path, "variant.txt").read_text() for r in runs]
    inputs = {"data": data.path, **{f"runs/{v}": r.path for v, r in zip(ran, runs)}}
    ws = assemble(params_yaml, inputs, tracking_uri, pipeline_run_id)
    run_stage(ws, "report", f"variants={json.dumps(ran)}")  # the variants this run trained
    export(ws / "reports", report.path)


@dsl.component(base_image=IMAGE)
def cleanup(params_yaml: str, tracking_uri: str, pipeline_run_id: str, launcher: str, job_namespace: str) -> None:
    """The exit handler (runs however the pipeline ended): delete this run's PyTorchJobs that did
    not succeed, and mark the MLflow parent run FAILED if the report did not finish it."""
    from csl.stages.workspace import assemble, close_parent, step_namespace

    if launcher == "pytorchjob":
        from csl.k8s.launch import cleanup as delete_failed_jobs

        delete_failed_jobs(pipeline_run_id, job_namespace or step_namespace())
    close_parent(assemble(params_yaml, {}, tracking_uri, pipeline_run_id), "FAILED")
