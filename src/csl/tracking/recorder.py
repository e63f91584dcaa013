"""What a stage may log (params, metrics, tags, the dataset input, artifacts), journaled so that a
run a lost server missed can be logged later (:mod:`csl.tracking.journal`)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

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
