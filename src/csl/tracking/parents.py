"""The MLflow parent run of a pipeline invocation run by an orchestrator (a Kubeflow pipeline
run): found or created by tag, so that every step's stage run nests under it; ``csl run``'s own
parent is passed in ``CSL_PARENT_RUN_ID`` instead."""

from __future__ import annotations

import os
from pathlib import Path

from csl.tracking.store import PARENT_ENV, connect

PIPELINE_RUN_ENV = ("CSL_PIPELINE_RUN_ID", "KFP_RUN_ID")


def pipeline_run_id() -> str:
    """The orchestrator's run id (a Kubeflow pipeline run), or ``""``."""
    return next((os.environ[k] for k in PIPELINE_RUN_ENV if os.environ.get(k)), "")


def _pipeline_parent(exp_id: str, run_id: str, create: bool) -> str | None:
    """The MLflow parent run of Kubeflow pipeline run ``run_id`` (tag ``csl.pipeline_run_id``),
    created RUNNING by its first step (prepare) when ``create``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    found = mlflow.search_runs(experiment_ids=[exp_id], output_format="list", max_results=1,
                               filter_string=f"tags.`csl.stage` = 'pipeline' AND tags.`csl.pipeline_run_id` = '{run_id}'")
    if found:
        return str(found[0].info.run_id)
    if not create:
        return None
    run = MlflowClient().create_run(exp_id, run_name=f"pipeline {run_id}",
                                    tags={"csl.stage": "pipeline", "csl.pipeline_run_id": run_id,
                                          "csl.orchestrator": "kubeflow"})
    return str(run.info.run_id)


def current_parent(exp_id: str) -> str | None:
    """The parent run for this process's stage runs: ``csl run``'s (``CSL_PARENT_RUN_ID``), else
    the Kubeflow pipeline run's (found or created by tag), else none."""
    if os.environ.get(PARENT_ENV):
        return os.environ[PARENT_ENV]
    run_id = pipeline_run_id()
    return _pipeline_parent(exp_id, run_id, create=True) if run_id else None


def close_pipeline_parent(project_dir: Path, experiment: str, status: str = "FINISHED",
                          report_dir: Path | None = None, metrics: dict[str, float] | None = None) -> str | None:
    """End a Kubeflow pipeline's parent run (report step: FINISHED with the report and the
    summary metrics; exit handler: FAILED if nothing finished it). ``csl run``'s parent is
    ended by ``csl run`` itself, so this does nothing there. Returns the parent run id."""
    from mlflow.tracking import MlflowClient

    run_id = pipeline_run_id()
    if os.environ.get(PARENT_ENV) or not run_id:
        return None
    parent = _pipeline_parent(connect(project_dir, experiment), run_id, create=False)
    if parent is None:
        return None
    client = MlflowClient()
    if client.get_run(parent).info.status != "RUNNING":
        return parent
    if report_dir is not None and report_dir.is_dir():
        client.log_artifacts(parent, str(report_dir), "report")
    for k, v in (metrics or {}).items():
        client.log_metric(parent, k, float(v))
    client.set_terminated(parent, status)
    return parent
