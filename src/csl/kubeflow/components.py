"""Thin typed KFP v2 components over csl's stage entry points (the same ones DVC calls).

(No ``from __future__ import annotations`` here: KFP reads the annotations as types.)

Each step makes a project directory (``csl.stages.workspace.step``: params.yaml, validated), puts
its input artifacts at their :class:`~csl.stages.layout.Layout` paths, calls the stage's entry
point (the function ``csl <stage>`` calls for DVC), and exports the stage's outputs as artifacts. MLflow settings come from the pod's
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
    from dataclasses import asdict

    from csl.data import read_meta
    from csl.stages import prepare as stage
    from csl.stages.layout import PREPARED
    from csl.stages.workspace import export, step
    from csl.tracking.dvc_data import read_origin

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    if data_repo:
        stage.fetch_main(s.params, s.project, data_repo, data_rev or "HEAD", PREPARED)
    elif allow_unversioned:
        stage.main(s.params, s.project)
    else:
        raise ValueError("no data_repo given: the pipeline refuses unversioned data. Pass data_repo (the git "
                         "repository whose dvc.lock versions data/prepared, pushed to its DVC remote) and "
                         "data_rev, or allow_unversioned=True for a trial run")
    export(s.layout.data_dir, data.path)
    meta = read_meta(s.layout.prepared)
    origin = read_origin(s.layout.prepared)
    data.metadata.update({"name": meta["name"], "content_hash": meta["content_hash"],
                          **(asdict(origin) if origin else {})})
    return origin.md5 if origin else "untracked"


@dsl.component(base_image=IMAGE)
def pretrain(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             launcher: str, data_repo: str, data_rev: str, job_image: str, job_nodes: int, job_gpus_per_node: int,
             job_namespace: str, node_selector: Dict[str, str], tolerations: List[dict],
             encoder: Output[Model]) -> None:
    """Pretrain one variant -> ``runs/V/pretrain`` as a Model artifact. ``launcher``: ``local``
    (``csl pretrain`` in this step) or ``pytorchjob`` (a PyTorchJob of ``job_nodes`` pods with
    ``job_gpus_per_node`` GPUs each, followed to the end; the step fails with the job's reason)."""
    from csl.stages import pretrain as stage
    from csl.stages.workspace import export, step, step_namespace

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    v = s.params.variant(variant)
    s.put(s.layout.data_dir, data.path)
    out = s.layout.pretrain_dir(v)
    if launcher == "local":
        stage.main(s.params, s.project, v)
    elif launcher == "pytorchjob":
        from csl.k8s.launch import pretrain_job

        pretrain_job(params_yaml, variant, data_repo, data_rev, pipeline_run_id, out, image=job_image,
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
    from pathlib import Path

    from csl.stages import linear_eval as stage
    from csl.stages.workspace import export, step

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    v = s.params.variant(variant)
    s.put(s.layout.data_dir, data.path)
    s.put(s.layout.pretrain_dir(v), encoder.path)
    values = stage.main(s.params, s.project, v)
    for k, x in values.items():
        if isinstance(x, (int, float)):
            metrics.log_metric(k, float(x))
    export(s.layout.variant_dir(v), run.path)
    run.metadata["variant"] = variant
    Path(run.path, "variant.txt").write_text(variant)
    return float(values["linear_top1"])


@dsl.component(base_image=IMAGE)
def register(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             run: Input[Artifact]) -> str:
    """``csl register --variant V``: the MLflow registry (champion rule, lineage); returns the model URI."""
    from csl.stages import register as stage
    from csl.stages.workspace import step

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    v = s.params.variant(variant)
    s.put(s.layout.data_dir, data.path)
    s.put(s.layout.variant_dir(v), run.path)
    return str(stage.main(s.params, s.project, v)["uri"])


@dsl.component(base_image=IMAGE)
def report(params_yaml: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
           runs: Input[List[Artifact]], registered: List[str], report: Output[Artifact]) -> None:
    """``csl report`` over every variant's run and the registry (all pipeline runs) -> the report
    directory (HTML, Markdown, PNGs); also logged to this pipeline run's MLflow parent run."""
    from pathlib import Path

    from csl.stages import report as stage
    from csl.stages.workspace import export, step

    print("registered in this run:", ", ".join(registered))
    ran = [Path(r.path, "variant.txt").read_text() for r in runs]
    s = step(params_yaml, tracking_uri, pipeline_run_id, variants=ran)  # the variants this run trained
    s.put(s.layout.data_dir, data.path)
    for v, r in zip(s.params.selected, runs):
        s.put(s.layout.variant_dir(v), r.path)
    stage.main(s.params, s.project)
    export(s.layout.reports, report.path)


@dsl.component(base_image=IMAGE)
def cleanup(params_yaml: str, tracking_uri: str, pipeline_run_id: str, launcher: str, job_namespace: str) -> None:
    """The exit handler (runs however the pipeline ended): delete this run's PyTorchJobs that did
    not succeed, and mark the MLflow parent run FAILED if the report did not finish it."""
    from csl.stages.workspace import close_parent, step, step_namespace

    if launcher == "pytorchjob":
        from csl.k8s.launch import cleanup as delete_failed_jobs

        delete_failed_jobs(pipeline_run_id, job_namespace or step_namespace())
    close_parent(step(params_yaml, tracking_uri, pipeline_run_id), "FAILED")
