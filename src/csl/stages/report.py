"""``csl report``: collect every variant's results into reports/report.{html,md} + PNGs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from csl import data as csl_data
from csl.io import atomic_dir
from csl.params import Params
from csl.report import plots
from csl.report.render import html_page, markdown
from csl.stages.layout import PREPARED, Layout


def _read_json(path: Path) -> Any:
    from csl.errors import CslError

    if not path.is_file():
        raise CslError(f"{path} is missing: run the earlier stages first ('csl run' or 'dvc repro')")
    return json.loads(path.read_text())


def collect(params: Params, project: Path) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, float]]]]:
    layout = Layout(project, params)
    rows, histories = [], {}
    for v in params.selected:
        pre = _read_json(layout.pretrain_dir(v) / "metrics.json")
        ev = _read_json(layout.eval_dir(v) / "metrics.json")
        histories[v.name] = _read_json(layout.pretrain_dir(v) / "history.json")
        rows.append({"variant": v.name, "method": v.method, "encoder": v.encoder,
                     **{k: pre.get(k) for k in ("images_per_s", "pretrain_seconds", "epochs")}, **ev})
    return rows, histories


REGISTRY_COLUMNS = [
    ("name", "registered model", "{}"), ("version", "version", "{}"), ("alias", "alias", "{}"),
    ("linear_top1", "linear top-1", "{:.2%}"), ("knn_top1", "kNN top-1", "{:.2%}"),
    ("data_md5", "data (DVC md5)", "{:.12}"), ("commit", "code commit", "{:.10}"),
    ("pipeline_run", "pipeline run", "{:.12}"), ("decision", "champion decision", "{}"),
]


def registry_table(dataset: str) -> list[dict[str, Any]]:
    """Every encoder registered for ``dataset`` (all variants, all pipeline runs), oldest first:
    the comparison across runs with each version's lineage and registry status."""
    from csl.tracking import model_registry

    rows = model_registry.listing(model_registry.dataset_prefix(dataset))
    for r in rows:
        for k in ("linear_top1", "knn_top1"):
            r[k] = float(r[k]) if r[k] else None
    return sorted(rows, key=lambda r: (r["created"], r["name"]))


def report(params: Params, project: Path, lineage: list[str] | None = None,
           registry: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Pure stage: results of all variants -> ``reports/`` (written atomically)."""
    layout = Layout(project, params)
    meta = csl_data.read_meta(layout.prepared)
    rows, histories = collect(params, project)
    with atomic_dir(layout.reports) as tmp:
        figures = [("Pretraining loss", "loss_curves.png"), ("Test top-1 accuracy", "accuracy.png")]
        plots.loss_curves(histories, tmp / "loss_curves.png")
        plots.accuracy_chart(rows, tmp / "accuracy.png")
        for v in params.selected:
            m = np.load(layout.eval_dir(v) / "embedding_map.npz")
            file = f"map_{v.name}.png"
            plots.embedding_map_plot(m["xy"], m["labels"], meta["classes"],
                                     f"{v.name}: {params.eval.map.method} of {len(m['labels'])} test embeddings",
                                     tmp / file)
            figures.append((f"2-D map of test embeddings: {v.name}", file))
        title = f"csl report: {meta['name']}"
        notes = [
            f"Dataset {meta['name']} ({meta['num_train']} train / {meta['num_test']} test, shape {meta['shape']}), "
            f"content hash {meta['content_hash'][:12]}.",
            f"Evaluation protocol {params.eval.linear.epochs}-epoch linear probe on frozen standardized features; "
            f"weighted kNN k={params.eval.knn.k}, T={params.eval.knn.temperature}. Random init = same "
            "architecture, untrained.",
            *(lineage or []),
        ]
        tables = [("Registered encoders across pipeline runs", REGISTRY_COLUMNS, registry)] if registry else []
        (tmp / "report.md").write_text(markdown(title, rows, figures, notes, tables))
        (tmp / "report.html").write_text(html_page(title, rows, figures, notes, tmp, tables))
        (tmp / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
        if registry is not None:
            (tmp / "registry.json").write_text(json.dumps(registry, indent=2) + "\n")
    return rows


def main(params: Params, project: Path) -> None:
    from csl import tracking

    layout = Layout(project, params)
    with tracking.stage_run(project, params.tracking.experiment, "report") as rec:
        rec.params({"variants": ",".join(params.variants)})
        commit, dirty = tracking.git_commit(project)
        md5 = tracking.dvc_out_md5(project, PREPARED)
        lineage = [f"Code: git commit {commit}{' (with uncommitted changes)' if dirty else ''}. "
                   f"Prepared data: DVC md5 {md5 or 'not yet recorded in dvc.lock'}. "
                   f"MLflow store: {tracking.tracking_uri(project)}, experiment '{params.tracking.experiment}'."]
        rows = report(params, project, lineage, registry_table(csl_data.read_meta(layout.prepared)["name"]))
        summary = {f"{r['variant']}.{k}": r[k] for r in rows for k in ("linear_top1", "knn_top1") if k in r}
        rec.metrics(summary)
        rec.artifact(layout.reports, "report")
    # a Kubeflow run's parent run gets the report and ends here ('csl run' ends its own)
    tracking.close_pipeline_parent(project, params.tracking.experiment, "FINISHED", layout.reports, summary)
    print(f"report: {layout.reports / 'report.html'} (and report.md)")
