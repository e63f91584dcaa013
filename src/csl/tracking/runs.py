"""Runs: one MLflow run per stage (a child of the pipeline run when there is one), the pipeline
run of ``csl run``, and searches over them. ``csl run`` opens one parent run per pipeline
invocation and passes its id to the stages in ``CSL_PARENT_RUN_ID``."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator

from csl.errors import TrackingError
from csl.tracking.lineage import git_commit
from csl.tracking.liveness import PROCESS_TAG, REASON_TAG, process_tag, reap
from csl.tracking.parents import current_parent
from csl.tracking.recorder import Recorder
from csl.tracking.store import connect, tracking_uri

ERROR_TAG = "csl.error"


@contextlib.contextmanager
def _ending(rec: Recorder) -> Iterator[Recorder]:
    """End the active run FINISHED; FAILED with the error in ``csl.error`` when the body raised
    (KILLED on Ctrl-C). A server that does not answer then takes the recorder offline
    (mlflow.end_run leaves the run's context first)."""
    import mlflow

    status = "FAILED"
    try:
        yield rec
        status = "FINISHED"
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        if not rec.offline:
            with contextlib.suppress(Exception):
                mlflow.set_tags({ERROR_TAG: f"{type(e).__name__}: {e}"[:5000],
                                 REASON_TAG: f"{status}: the process stopped on an error" if status == "FAILED"
                                 else "KILLED: interrupted (Ctrl-C)"})
        raise
    finally:
        try:
            mlflow.end_run(status)
        except Exception as e:
            rec.go_offline(e)


def open_experiment(project_dir: Path, experiment: str) -> str:
    """Connect, end the runs whose process is gone (saying so), and return the experiment id."""
    exp_id = connect(project_dir, experiment)
    try:
        ended = reap(exp_id)
    except Exception:  # a search the server refuses must not stop the stage: the runs stay as they are
        ended = []
    for name, why in ended:
        print(f"csl: marked MLflow run {name!r} KILLED: {why}", file=sys.stderr, flush=True)
    return exp_id


@contextlib.contextmanager
def stage_run(project_dir: Path, experiment: str, stage: str, variant: str | None = None,
              parent_run_id: str | None = None) -> Iterator[Recorder]:
    """An MLflow run for one stage (child of the pipeline run when there is one). The server must
    answer at the start (else a TrackingError, before any work); if it goes away during the
    stage, the results are kept for ``csl relog`` (see :class:`Recorder`)."""
    import mlflow

    exp_id = open_experiment(project_dir, experiment)
    parent = parent_run_id or current_parent(exp_id)
    commit, dirty = git_commit(project_dir)
    name = stage if variant is None else f"{stage}@{variant}"
    tags = {"csl.stage": stage, "csl.git_commit": commit, "csl.git_dirty": str(dirty),
            "mlflow.source.git.commit": commit, PROCESS_TAG: process_tag()}
    if variant:
        tags["csl.variant"] = variant
    try:
        run = mlflow.start_run(experiment_id=exp_id, run_name=name, parent_run_id=parent, tags=tags,
                               nested=mlflow.active_run() is not None)
    except Exception as e:
        raise TrackingError(f"cannot start an MLflow run in {tracking_uri(project_dir)}: {e}") from None
    rec = Recorder(run.info.run_id, name, experiment, parent, tags)
    with _ending(rec):
        yield rec
    if rec.offline:
        from csl.tracking.journal import save_pending

        f = save_pending(project_dir, rec, "FINISHED")
        print(f"csl: warning: the MLflow server {tracking_uri(project_dir)} became unreachable during {name} "
              f"({rec.offline}). Its results are written locally and kept; the run is saved in {f}: log it "
              "with 'csl relog' once the server answers.", file=sys.stderr, flush=True)


@contextlib.contextmanager
def pipeline_run(project_dir: Path, experiment: str, name: str, tags: dict[str, str]) -> Iterator[Recorder]:
    """The parent run of one pipeline invocation; its id is exported for the stages."""
    import mlflow

    exp_id = open_experiment(project_dir, experiment)
    commit, dirty = git_commit(project_dir)
    run = mlflow.start_run(experiment_id=exp_id, run_name=name,
                           tags={"csl.stage": "pipeline", "csl.git_commit": commit, "csl.git_dirty": str(dirty),
                                 "mlflow.source.git.commit": commit, PROCESS_TAG: process_tag(), **tags})
    rec = Recorder(run.info.run_id, name, experiment, None, dict(run.data.tags))
    with _ending(rec):
        yield rec
    if rec.offline:
        print(f"csl: warning: the pipeline run {run.info.run_id} could not be completed in MLflow "
              f"({rec.offline})", file=sys.stderr, flush=True)


def child_runs(project_dir: Path, experiment: str, parent_run_id: str) -> list[dict[str, Any]]:
    """Stage runs under a pipeline run (for reports and tests)."""
    import mlflow

    connect(project_dir, experiment)
    df = mlflow.search_runs(experiment_names=[experiment],
                            filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", output_format="list")
    return [{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
             "tags": r.data.tags, "metrics": r.data.metrics} for r in df]


def latest_stage_runs(project_dir: Path, experiment: str, variant: str, stages: tuple[str, ...],
                      parent_run_id: str | None = None) -> dict[str, str]:
    """The newest finished run id of each stage for ``variant`` (under ``parent_run_id`` if given)."""
    import mlflow

    connect(project_dir, experiment)
    found = {}
    for stage in stages:
        f = f"tags.`csl.stage` = '{stage}' AND tags.`csl.variant` = '{variant}' AND attributes.status = 'FINISHED'"
        if parent_run_id:
            f += f" AND tags.mlflow.parentRunId = '{parent_run_id}'"
        runs = mlflow.search_runs(experiment_names=[experiment], filter_string=f, order_by=["start_time DESC"],
                                  max_results=1, output_format="list")
        if runs:
            found[stage] = runs[0].info.run_id
    return found
