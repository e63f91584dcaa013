"""The one module that talks to MLflow (and reads DVC's lock file for lineage).

Default store: ``sqlite:///<project>/mlflow.db`` with artifacts in ``<project>/mlartifacts``;
``MLFLOW_TRACKING_URI`` overrides. ``csl run`` opens one parent run per pipeline invocation
and passes its id to the stages in ``CSL_PARENT_RUN_ID``; each stage (and variant) logs a
child run under it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import yaml

from csl.errors import TrackingError

PARENT_ENV = "CSL_PARENT_RUN_ID"
RETRIES_ENV = "CSL_TRACKING_RETRIES"


HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}  # ~15 s of retries, then 'csl relog' later


def tracking_uri(project_dir: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(project_dir / 'mlflow.db').resolve()}"


def _check_server(uri: str) -> None:
    import requests

    attempts = int(os.environ.get(RETRIES_ENV, "4"))
    delay = 1.0
    last: Exception | None = None
    for i in range(attempts):
        try:
            r = requests.get(uri.rstrip("/") + "/health", timeout=5)
            if r.status_code < 500:
                return
            last = RuntimeError(f"HTTP {r.status_code}")
        except requests.RequestException as e:
            last = e
        if i + 1 < attempts:
            time.sleep(delay)
            delay *= 2
    raise TrackingError(
        f"MLflow tracking server {uri} is unreachable after {attempts} attempts ({last}). "
        "Start the server, fix MLFLOW_TRACKING_URI, or unset it to use the local SQLite store."
    )


def use_store(project_dir: Path) -> str:
    """Point MLflow at the store (a server must answer, with retries); returns the URI."""
    import mlflow

    uri = tracking_uri(project_dir)
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
        # MLflow retries each request with exponential backoff; its defaults (7 retries, 120 s
        # timeouts) would stall training for minutes per logged metric once the server is gone
        for k, v in HTTP_RETRY_DEFAULTS.items():
            os.environ.setdefault(k, v)
    mlflow.set_tracking_uri(uri)
    return uri


def connect(project_dir: Path, experiment: str) -> str:
    """Point MLflow at the store, check it answers, and return the experiment id."""
    import mlflow

    uri = use_store(project_dir)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is not None:
            return exp.experiment_id
        location = None
        if uri.startswith("sqlite:"):
            location = (project_dir / "mlartifacts").resolve().as_uri()
        return mlflow.create_experiment(experiment, artifact_location=location)
    except Exception as e:  # MlflowException, OperationalError, ...
        raise TrackingError(f"cannot use the MLflow store {uri}: {e}") from None


# files the pipeline itself rewrites: a change there does not make the code or params differ
PIPELINE_OUTPUTS = ("dvc.lock", "runs", "reports", "data")


def git_commit(project_dir: Path) -> tuple[str, bool]:
    """``(commit, dirty)`` of the project's git checkout; outside a checkout (a pipeline step in the
    image) ``CSL_GIT_COMMIT`` set at image build, else ``"unknown"``. Dirty means tracked code or
    parameters differ from the commit (pipeline outputs are not counted)."""
    image_commit = os.environ.get("CSL_GIT_COMMIT") or "unknown"
    if not (project_dir / ".git").exists() and image_commit != "unknown":
        return image_commit, False
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True,
                                text=True, check=True).stdout.strip()
        excludes = [f":(exclude){p}" for p in PIPELINE_OUTPUTS]
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excludes],
                                    cwd=project_dir, capture_output=True, text=True, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.CalledProcessError):
        return image_commit, False


def dvc_out_md5(project_dir: Path, out: str) -> str | None:
    """The md5 DVC recorded in dvc.lock for output ``out`` (``...dir`` for directories), or,
    for data fetched by ``csl fetch-data`` (no dvc.lock here), the md5 it was verified against."""
    from csl.data.versioned import read_origin

    lock = project_dir / "dvc.lock"
    if lock.is_file():
        data = yaml.safe_load(lock.read_text()) or {}
        for stage in (data.get("stages") or {}).values():
            for o in stage.get("outs", []) or []:
                if Path(o.get("path", "")) == Path(out):
                    return o.get("md5")
    origin = read_origin(project_dir / out)
    return origin.md5 if origin else None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Recorder:
    """What a stage may log: params, metrics, the dataset input and artifacts.

    Every call is also kept in a journal. When the tracking server stops answering in the middle
    of a stage (after MLflow's own retries with backoff), the recorder goes offline: the stage
    finishes and writes its outputs as usual, and ``stage_run`` saves the journal under
    ``.csl/pending-tracking/`` for ``csl relog`` to log once the server is back.
    """

    def __init__(self, run_id: str, name: str = "", experiment: str = "", parent: str | None = None,
                 tags: dict[str, str] | None = None) -> None:
        self.run_id = run_id
        self.offline: str | None = None  # the error that took the server away
        self.journal: dict[str, Any] = {"run_id": run_id, "name": name, "experiment": experiment, "parent": parent,
                                        "tags": dict(tags or {}), "entries": []}

    def _log(self, kind: str, payload: dict[str, Any], fn: Any) -> None:
        self.journal["entries"].append({"kind": kind, **payload})
        if self.offline:
            return
        try:
            fn()
        except Exception as e:  # MlflowException, requests' ConnectionError, ... after MLflow's retries
            self.go_offline(e)
            print(f"csl: warning: MLflow stopped answering ({self.offline}); the stage goes on and its results are "
                  "kept for 'csl relog'", file=sys.stderr, flush=True)

    def go_offline(self, e: Exception) -> None:
        self.offline = self.offline or f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"

    def params(self, params: dict[str, Any]) -> None:
        import mlflow

        flat = {k: str(v)[:6000] for k, v in flatten(params).items()}

        def log() -> None:
            items = list(flat.items())
            for i in range(0, len(items), 100):
                mlflow.log_params(dict(items[i : i + 100]))

        self._log("params", {"values": flat}, log)

    def metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        values = {k: float(v) for k, v in metrics.items()}
        self._log("metrics", {"values": values, "step": step}, lambda: mlflow.log_metrics(values, step=step))

    def tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        values = {k: str(v) for k, v in tags.items()}
        self._log("tags", {"values": values}, lambda: mlflow.set_tags(values))

    def dataset(self, meta: dict[str, Any], path: str, md5: str | None) -> None:
        """Log the prepared dataset as the run's input, digest = DVC md5 (or content hash)."""
        self._log("dataset", {"meta": {k: meta[k] for k in ("name", "content_hash", "source")}, "path": path,
                              "md5": md5}, lambda: self._dataset(meta, path, md5))

    def _dataset(self, meta: dict[str, Any], path: str, md5: str | None) -> None:
        import mlflow
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.data.http_dataset_source import HTTPDatasetSource  # noqa: F401  (registers sources)
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        digest = (md5 or meta["content_hash"])[:36]
        try:
            with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are local
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(str(Path(path).resolve()))
        except Exception:
            source = None
        ds = MetaDataset(source=source, name=f"{meta['name']}-prepared", digest=digest) if source else None  # type: ignore[abstract]
        if ds is not None:
            mlflow.log_input(ds, context="training")
        mlflow.set_tags({"csl.data.dvc_md5": md5 or "untracked", "csl.data.content_hash": meta["content_hash"],
                         "csl.data.name": meta["name"], "csl.data.source": meta["source"]})

    def artifact(self, path: Path, subdir: str | None = None) -> None:
        import mlflow

        def log() -> None:
            if path.is_dir():
                mlflow.log_artifacts(str(path), subdir)
            elif path.is_file():
                mlflow.log_artifact(str(path), subdir)

        self._log("artifact", {"path": str(Path(path).resolve()), "subdir": subdir}, log)


@contextlib.contextmanager
def _ending(rec: Recorder) -> Iterator[Recorder]:
    """End the active run FINISHED (or FAILED when the body raised); a server that does not
    answer then takes the recorder offline (mlflow.end_run leaves the run's context first)."""
    import mlflow

    status = "FAILED"
    try:
        yield rec
        status = "FINISHED"
    finally:
        try:
            mlflow.end_run(status)
        except Exception as e:
            rec.go_offline(e)


@contextlib.contextmanager
def stage_run(project_dir: Path, experiment: str, stage: str, variant: str | None = None,
              parent_run_id: str | None = None) -> Iterator[Recorder]:
    """An MLflow run for one stage (child of the pipeline run when there is one). The server must
    answer at the start (else a TrackingError, before any work); if it goes away during the
    stage, the results are kept for ``csl relog`` (see :class:`Recorder`)."""
    import mlflow

    exp_id = connect(project_dir, experiment)
    parent = parent_run_id or current_parent(exp_id)
    commit, dirty = git_commit(project_dir)
    name = stage if variant is None else f"{stage}@{variant}"
    tags = {"csl.stage": stage, "csl.git_commit": commit, "csl.git_dirty": str(dirty),
            "mlflow.source.git.commit": commit}
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

    exp_id = connect(project_dir, experiment)
    commit, dirty = git_commit(project_dir)
    run = mlflow.start_run(experiment_id=exp_id, run_name=name,
                           tags={"csl.stage": "pipeline", "csl.git_commit": commit, "csl.git_dirty": str(dirty),
                                 "mlflow.source.git.commit": commit, **tags})
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


def dvc_remote_url(project_dir: Path, out: str = "data/prepared") -> str | None:
    """The URL of the project's default DVC remote (or the remote ``out`` was fetched from), or None."""
    from csl.data.versioned import read_origin

    origin = read_origin(project_dir / out)
    if origin is not None:
        return origin.remote
    try:
        from dvc.repo import Repo

        with Repo(str(project_dir)) as repo:
            conf = repo.config
            name = conf.get("core", {}).get("remote")
            return str(conf["remote"][name]["url"]) if name else None
    except Exception:
        return None


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


# the journal of runs a lost server missed, and the Kubeflow pipeline's parent run (re-exported)
from csl.tracking.journal import PENDING, pending, relog  # noqa: E402
from csl.tracking.parents import (  # noqa: E402
    PIPELINE_RUN_ENV,
    close_pipeline_parent,
    current_parent,
    pipeline_run_id,
)

__all__ = ["PENDING", "PIPELINE_RUN_ENV", "Recorder", "close_pipeline_parent", "connect", "current_parent", "pending",
           "pipeline_run", "pipeline_run_id", "relog", "stage_run", "use_store"]
