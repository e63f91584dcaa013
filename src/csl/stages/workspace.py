"""A project directory assembled from parts, for running one stage where the pipeline's files
arrive one by one (a Kubeflow step receives its inputs as artifacts): ``params.yaml`` from a
string, inputs copied to their layout paths, then the stage's usual entry point."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from csl.errors import CslError


def assemble(params_yaml: str, inputs: dict[str, str] | None = None, tracking_uri: str = "",
             pipeline_run_id: str = "", root: str | None = None) -> Path:
    """A fresh project directory with ``params.yaml`` and each ``inputs`` path (relative layout
    path -> existing file or directory) copied in. ``tracking_uri`` (when not empty) and
    ``pipeline_run_id`` go to this process's environment for the stage to log with."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    if pipeline_run_id:
        os.environ["CSL_PIPELINE_RUN_ID"] = pipeline_run_id
    ws = Path(tempfile.mkdtemp(prefix="csl-step-", dir=root))
    (ws / "params.yaml").write_text(params_yaml)
    for rel, src in (inputs or {}).items():
        dst, src_p = ws / rel, Path(src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src_p.is_dir():
            shutil.copytree(src_p, dst)
        elif src_p.is_file():
            shutil.copy2(src_p, dst)
        else:
            raise CslError(f"input {src} for {rel} does not exist")
    return ws


def run_stage(ws: Path, *args: str) -> None:
    """``csl --project WS ARGS...``; a failure raises with the stage's exit status."""
    from csl.cli import main

    rc = main(["--project", str(ws), *args])
    if rc != 0:
        raise CslError(f"csl {' '.join(args)} failed with exit status {rc} (its error is printed above)")


def export(src: Path, dst: str) -> None:
    """Copy a stage output (file or directory) to an artifact path."""
    d = Path(dst)
    d.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, d, dirs_exist_ok=True)
    else:
        shutil.copy2(src, d)


def step_namespace() -> str:
    """The Kubernetes namespace this step's pod runs in (its service account's), else ``default``."""
    f = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    return f.read_text().strip() if f.is_file() else "default"


def close_parent(ws: Path, status: str) -> str | None:
    """End this pipeline run's MLflow parent run with ``status`` if it is still running."""
    from csl import tracking
    from csl.params import load_params

    return tracking.close_pipeline_parent(ws, load_params(ws / "params.yaml").tracking.experiment, status)
