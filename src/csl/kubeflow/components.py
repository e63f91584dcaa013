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
from kfp.dsl import Artifact, Dataset, Input, Model, Output

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
def features(params_yaml: str, variant: str, tracking_uri: str, pipeline_run_id: str, data: Input[Dataset],
             encoder: Input[Model], features: Output[Artifact], run: Output[Artifact]) -> None:
    """``csl features --variant V``: frozen features of the encoder (and a random-init one), once; ``run``:
    ``runs/V`` so far (pretrain, features) as one artifact for the protocols that follow."""
    from pathlib import Path

    from csl.stages import features as stage
    from csl.stages.workspace import export, step

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    v = s.params.variant(variant)
    s.put(s.layout.data_dir, data.path)
    s.put(s.layout.pretrain_dir(v), encoder.path)
    stage.main(s.params, s.project, v)
    export(s.layout.features_dir(v), features.path)
    export(s.layout.variant_dir(v), run.path)
    run.metadata["variant"] = variant
    Path(run.path, "variant.txt").write_text(variant)


@dsl.component(base_image=IMAGE)
def plan(params_yaml: str, variants: List[str], runs: Input[List[Artifact]], tree: Output[Artifact]) -> List[dict]:
    """The evaluation protocol items that need only an encoder and its features, as DVC fans them out
    (:mod:`csl.stages.plan`): linear-eval of each variant when the data has labels, then params'
    ``eval.run`` items that run on this data (probes, fine-tuning, transfer), one per variant x protocol
    x fraction/target; a label-based protocol on data without labels is no task at all. A single no-op
    item when none is selected (a loop over nothing cannot be collected by kfp.local). ``tree``: every
    variant's ``runs/V`` (pretrain, features) under ``runs/`` (one artifact for what follows)."""
    from csl.stages.protocols import planned
    from csl.stages.workspace import merge_results, step

    s = step(params_yaml, variants=list(variants))
    merge_results(tree.path, "", [r.path for r in runs])
    linear = [{"variant": v.name, "kind": "linear", "item": ""} for v in s.params.selected] \
        if s.params.data.labelled else []
    items = linear + [{"variant": v.name, "kind": i.kind, "item": i.item} for v in s.params.selected
                      for i in planned(s.params).items() if i.kind != "distill"]  # distillation: the task after
    return items or [{"variant": "", "kind": "none", "item": ""}]


@dsl.component(base_image=IMAGE)
def evaluate(params_yaml: str, tracking_uri: str, pipeline_run_id: str, item: dict, data: Input[Dataset],
             tree: Input[Artifact], data_repo: str, data_rev: str, allow_unversioned: bool,
             result: Output[Artifact]) -> None:
    """One protocol item of :func:`plan` (``csl linear-eval | probe | finetune | transfer``) for one variant,
    with its own MLflow child run -> ``result`` (:func:`csl.stages.workspace.run_protocol`). ``tree``: the
    variants' pretraining and features. A transfer target is fetched from ``data_repo`` at ``data_rev``
    (``data/transfer/<name>``, DVC-versioned), or prepared from params with ``allow_unversioned``."""
    from csl.stages.workspace import run_protocol, step

    s = step(params_yaml, tracking_uri, pipeline_run_id)
    run_protocol(s, item, data.path, tree.path, data_repo, data_rev, allow_unversioned, result.path)
    result.metadata.update(item)


@dsl.component(base_image=IMAGE)
def distill(params_yaml: str, tracking_uri: str, pipeline_run_id: str, variants: List[str], data: Input[Dataset],
            tree: Input[Artifact], results: Input[List[Artifact]], merged: Output[Artifact]) -> None:
    """Self-distillation (``csl distill``, each variant x fraction of ``eval.run.distill`` its own MLflow
    child run), after the protocols of :func:`plan` (its teachers are their fine-tuned models) ->
    ``merged``: ``tree`` with every protocol's outputs."""
    from csl.stages.protocols import planned
    from csl.stages.workspace import merge_results, run_protocol, step

    merge_results(merged.path, tree.path, [r.path for r in results])
    s = step(params_yaml, tracking_uri, pipeline_run_id, variants=list(variants))
    done = []
    for v in s.params.selected:
        for f in planned(s.params).distill:
            out = f"{merged.path}.distill-{v.name}-{f}"
            run_protocol(s, {"variant": v.name, "kind": "distill", "item": str(f)}, data.path, merged.path, "", "",
                         False, out)
            done.append(out)
    merge_results(merged.path, "", done)  # the distilled students join the tree


@dsl.component(base_image=IMAGE)
def register(params_yaml: str, tracking_uri: str, pipeline_run_id: str, variants: List[str], data: Input[Dataset],
             tree: Input[Artifact], runs: Output[Artifact]) -> List[str]:
    """``csl register --variant V`` for every variant (each its own MLflow child run): the registry's
    champion rule ranks by ``eval.champion_metric``, which may be any protocol's metric -> the model URIs,
    and ``runs``: every variant's ``runs/V`` with all its protocols' outputs."""
    from pathlib import Path

    from csl.stages import register as stage
    from csl.stages.workspace import export, step

    s = step(params_yaml, tracking_uri, pipeline_run_id, variants=list(variants))
    s.put(s.layout.data_dir, data.path)
    uris = []
    for v in s.params.selected:
        s.put_variant(v, tree.path)
        uris.append(str(stage.main(s.params, s.project, v)["uri"]))
    export(s.project / "runs", str(Path(runs.path, "runs")))
    return uris


@dsl.component(base_image=IMAGE)
def report(params_yaml: str, tracking_uri: str, pipeline_run_id: str, variants: List[str], data: Input[Dataset],
           runs: Input[Artifact], report: Output[Artifact]) -> None:
    """``csl report`` over every variant's run and the registry (all pipeline runs) -> the report
    directory (HTML, Markdown, PNGs); also logged to this pipeline run's MLflow parent run."""
    from csl.stages import report as stage
    from csl.stages.workspace import export, step

    s = step(params_yaml, tracking_uri, pipeline_run_id, variants=list(variants))  # the variants this run trained
    s.put(s.layout.data_dir, data.path)
    for v in s.params.selected:
        s.put_variant(v, runs.path)
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
