"""Where the runs go: the MLflow store (SQLite file by default, or a server that must answer).

Default store: ``sqlite:///<project>/mlflow.db`` with artifacts in ``<project>/mlartifacts``;
``MLFLOW_TRACKING_URI`` overrides.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

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
