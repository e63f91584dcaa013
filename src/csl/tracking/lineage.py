"""The facts a run's lineage records that live outside MLflow: the git commit of the code, and the
md5s and remote that DVC records for the data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

# files the pipeline itself rewrites: a change there does not make the code or params differ
PIPELINE_OUTPUTS = ("dvc.lock", "runs", "reports", "data")  # csl.stages.layout's RUNS, REPORTS, data/


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
    from csl.tracking.dvc_data import read_origin

    lock = project_dir / "dvc.lock"
    if lock.is_file():
        data = yaml.safe_load(lock.read_text()) or {}
        for stage in (data.get("stages") or {}).values():
            for o in stage.get("outs", []) or []:
                if Path(o.get("path", "")) == Path(out):
                    return o.get("md5")
    origin = read_origin(project_dir / out)
    return origin.md5 if origin else None


def dvc_remote_url(project_dir: Path, out: str = "data/prepared") -> str | None:
    """The URL of the project's default DVC remote (or the remote ``out`` was fetched from), or None."""
    from csl.tracking.dvc_data import read_origin

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
