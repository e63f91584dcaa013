"""The journal of stage runs a tracking server missed: kept in ``.csl/pending-tracking/`` when
the server goes away in the middle of a stage, logged by ``csl relog`` once it answers."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from csl.errors import TrackingError
from csl.tracking.recorder import Recorder
from csl.tracking.store import connect

PENDING = Path(".csl") / "pending-tracking"


def save_pending(project_dir: Path, rec: Recorder, status: str) -> Path:
    from csl.io import atomic_write_text

    d = project_dir / PENDING
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{time.strftime('%Y%m%d-%H%M%S')}-{rec.run_id[:8]}-{rec.journal['name'].replace('@', '_')}.json"
    atomic_write_text(f, json.dumps({**rec.journal, "status": status, "error": rec.offline}, indent=1) + "\n")
    return f


def pending(project_dir: Path) -> list[Path]:
    """Journals of stage runs the tracking server did not receive (``csl relog`` logs them)."""
    return sorted((project_dir / PENDING).glob("*.json"))


def relog(project_dir: Path) -> list[tuple[str, str]]:
    """Log every pending journal as a new run (tag ``csl.relogged_from``); the server must answer.
    Returns ``(name, new run id)`` pairs; each journal is removed once its run is logged."""
    import mlflow
    from mlflow.tracking import MlflowClient

    done = []
    for f in pending(project_dir):
        j = json.loads(f.read_text())
        exp_id = connect(project_dir, j["experiment"])
        client = MlflowClient()
        parent = j["parent"]
        if parent:
            try:
                client.get_run(parent)
            except Exception:
                parent = None
        with mlflow.start_run(experiment_id=exp_id, run_name=j["name"], parent_run_id=parent,
                              tags={**j["tags"], "csl.relogged_from": j["run_id"]},
                              nested=mlflow.active_run() is not None) as run:
            rec = Recorder(run.info.run_id)
            for e in j["entries"]:
                kind = e["kind"]
                if kind == "params":
                    rec.params(e["values"])
                elif kind == "metrics":
                    rec.metrics(e["values"], e["step"])
                elif kind == "tags":
                    rec.tags(e["values"])
                elif kind == "dataset":
                    rec.dataset(e["meta"], e["path"], e["md5"])
                elif kind == "artifact" and Path(e["path"]).exists():
                    rec.artifact(Path(e["path"]), e["subdir"])
                if rec.offline:
                    raise TrackingError(f"the MLflow server stopped answering again while re-logging {f.name} "
                                        f"({rec.offline}); nothing was removed, run 'csl relog' again")
        with contextlib.suppress(Exception):  # the run the server lost: mark it so
            client.set_terminated(j["run_id"], "FAILED")
            client.set_tag(j["run_id"], "csl.relogged_as", run.info.run_id)
        f.unlink()
        done.append((j["name"], run.info.run_id))
    return done
