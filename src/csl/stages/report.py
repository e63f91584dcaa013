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
from csl.evaluate.subsets import fraction_key
from csl.stages.plan import describe
from csl.stages.protocols import evaluation_metrics, planned


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
        ev = evaluation_metrics(params, layout, v)
        histories[v.name] = _read_json(layout.pretrain_dir(v) / "history.json")
        rows.append({"variant": v.name, "method": v.method, "encoder": v.encoder,
                     **{k: pre.get(k) for k in ("images_per_s", "pretrain_seconds", "epochs")}, **ev})
    return rows, histories


def metric_label(name: str) -> str:
    """``finetune_1pct_top1 -> "fine-tune 1% top-1"`` and the like, for table headers and legends."""
    import re

    fixed = {"cluster_nmi": "clustering NMI", "cluster_ari": "clustering ARI",
             "cluster_acc": "clustering accuracy (Hungarian)", "map_at_r": "mAP@R", "linear_top1": "linear top-1",
             "knn_top1": "kNN top-1", "rankme": "RankMe (effective rank)",
             "alignment": "alignment (lower is better)", "uniformity": "uniformity (lower is better)",
             "dim_std": "per-dimension std (l2-normalised)", "std_ratio": "per-dimension std x sqrt(d) (1: spread)"}
    if name in fixed:
        return fixed[name]
    if m := re.fullmatch(r"recall_at_(\d+)", name):
        return f"recall@{m.group(1)}"
    if m := re.fullmatch(r"finetune_(.+)pct_top1", name):
        return f"fine-tune {m.group(1).replace('_', '.')}% top-1"
    if m := re.fullmatch(r"distill_(.+)pct_(student|teacher)_top1", name):
        return f"distilled {m.group(2)} ({m.group(1).replace('_', '.')}%) top-1"
    if m := re.fullmatch(r"transfer_(.+)_(linear|knn)_top1", name):
        return f"transfer {m.group(1)} {'linear' if m.group(2) == 'linear' else 'kNN'} top-1"
    return name.replace("_", " ")


FORMATS = {"cluster_nmi": "{:.3f}", "cluster_ari": "{:.3f}", "rankme": "{:.1f}", "alignment": "{:.3f}",
           "uniformity": "{:.3f}", "dim_std": "{:.4f}", "std_ratio": "{:.2f}"}


def protocol_metrics(params: Params) -> list[tuple[str, str]]:
    """``(protocol, metric)`` of every metric the protocols that run on this data write, in order."""
    from csl.evaluate.config import PROBES

    run = planned(params)
    out = [("linear-eval", m) for m in ("linear_top1", "knn_top1")] if params.data.labelled else []
    out += [(p, m) for p in run.probes for m in PROBES[p].metrics(params.eval)]
    out += [(f"finetune {f}", f"finetune_{fraction_key(f)}_top1") for f in run.finetune]
    out += [(f"distill {f}", f"distill_{fraction_key(f)}_{w}_top1") for f in run.distill for w in ("student", "teacher")]
    out += [(f"transfer {t}", f"transfer_{t}_{m}_top1") for t in run.transfer for m in ("linear", "knn")]
    return out


EVAL_COLUMNS = [("variant", "variant", "{}"), ("protocol", "protocol", "{}"), ("label", "metric", "{}"),
                ("value", "encoder", "{}"), ("random", "random init", "{}")]


def evaluation_rows(params: Params, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The evaluation table in long form: one row per variant and metric, the trained encoder beside
    the same architecture from random init (readable whatever the number of protocols)."""
    out = []
    for r in rows:
        for protocol, name in protocol_metrics(params):
            fmt = FORMATS.get(name, "{:.2%}")
            value, rand = r.get(name), r.get(f"random_{name}")
            out.append({"variant": r["variant"], "protocol": protocol, "label": metric_label(name),
                        "value": "–" if value is None else fmt.format(value),
                        "random": "–" if rand is None else fmt.format(rand)})
    return out


def protocol_charts(params: Params) -> list[tuple[str, str, list[tuple[str, str]], str, float]]:
    """(title, file, series, y label, scale) of one chart per protocol that runs."""
    run, charts = planned(params), []
    def pair(name: str) -> list[tuple[str, str]]:
        return [(name, metric_label(name)), (f"random_{name}", f"{metric_label(name)} (random init)")]
    if "clustering" in run.probes:
        charts.append(("Clustering of test features (k-means, k = classes)", "clustering.png",
                       [s for n in ("cluster_nmi", "cluster_ari", "cluster_acc") for s in pair(n)], "score", 1.0))
    if "retrieval" in run.probes:
        names = [*(f"recall_at_{k}" for k in params.eval.retrieval.ks), "map_at_r"]
        charts.append(("Retrieval: test queries, training database (cosine)", "retrieval.png",
                       [s for n in names for s in pair(n)], "%", 100.0))
    if "rankme" in run.probes:
        charts.append(("RankMe of the held-out embeddings (higher: more dimensions used)", "rankme.png",
                       pair("rankme"), "effective rank", 1.0))
    if "dim_std" in run.probes:
        charts.append(("Per-dimension std x sqrt(d) of the held-out embeddings (0: collapsed)", "std_ratio.png",
                       pair("std_ratio"), "std x sqrt(d)", 1.0))
    if run.finetune:
        names = [f"finetune_{fraction_key(f)}_top1" for f in run.finetune]
        charts.append(("Few-label fine-tuning vs the same architecture from random init", "finetune.png",
                       [s for n in names for s in pair(n)], "test top-1 (%)", 100.0))
    if run.distill:
        series = [(f"distill_{fraction_key(f)}_{w}_top1", metric_label(f"distill_{fraction_key(f)}_{w}_top1"))
                  for f in run.distill for w in ("teacher", "student")]
        charts.append(("Self-distillation: teacher (fine-tuned) and student (no labels)", "distill.png", series,
                       "test top-1 (%)", 100.0))
    if run.transfer:
        names = [f"transfer_{t}_{m}_top1" for t in run.transfer for m in ("linear", "knn")]
        charts.append(("Transfer: frozen encoder on other datasets", "transfer.png",
                       [s for n in names for s in pair(n)], "test top-1 (%)", 100.0))
    return charts


REGISTRY_COLUMNS = [
    ("name", "registered model", "{}"), ("version", "version", "{}"), ("alias", "alias", "{}"),
    ("champion_metric", "ranked by", "{}"), ("champion_value", "its value", "{:.4g}"),
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
        for k in ("linear_top1", "knn_top1", "champion_value"):
            r[k] = float(r[k]) if r[k] else None
    return sorted(rows, key=lambda r: (r["created"], r["name"]))


def report(params: Params, project: Path, lineage: list[str] | None = None,
           registry: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Pure stage: results of all variants -> ``reports/`` (written atomically)."""
    layout = Layout(project, params)
    meta = csl_data.read_meta(layout.prepared)
    rows, histories = collect(params, project)
    run = planned(params)
    with atomic_dir(layout.reports) as tmp:
        figures = [("Pretraining loss", "loss_curves.png")]
        plots.loss_curves(histories, tmp / "loss_curves.png")
        if params.data.labelled:
            figures.append(("Test top-1 accuracy", "accuracy.png"))
            plots.accuracy_chart(rows, tmp / "accuracy.png")
            for v in params.selected:
                m = np.load(layout.eval_dir(v) / "embedding_map.npz")
                file = f"map_{v.name}.png"
                plots.embedding_map_plot(m["xy"], m["labels"], meta["classes"],
                                         f"{v.name}: {params.eval.map.method} of {len(m['labels'])} test embeddings",
                                         tmp / file)
                figures.append((f"2-D map of test embeddings: {v.name}", file))
        for title, file, series, ylabel, scale in protocol_charts(params):
            plots.metric_chart(rows, series, title, ylabel, tmp / file, scale)
            figures.append((title, file))
        pictures = [("retrieval", "grid.png", "Retrieval, {v}: test queries (left) and their nearest training "
                                               "images; red frame = another class"),
                    ("gallery", "clusters.png", "{v}: k-means clusters of the held-out images, one row each "
                                                "(biggest first), the images nearest the centre"),
                    ("gallery", "neighbours.png", "{v}: held-out queries (left) and their nearest held-out images"),
                    ("gallery", "map.png", "{v}: held-out embeddings, coloured by k-means cluster")]
        for v in params.selected:
            for protocol, name, caption in pictures:
                src = layout.protocol_dir(v, protocol) / name
                if protocol in run.probes and src.is_file():
                    file = f"{protocol}_{name.removesuffix('.png')}_{v.name}.png"
                    (tmp / file).write_bytes(src.read_bytes())
                    figures.append((caption.format(v=v.name), file))
        title = f"csl report: {meta['name']}"
        notes = [
            f"Dataset {meta['name']} ({meta['num_train']} train / {meta['num_test']} held out, shape "
            f"{meta['shape']}{', no labels' if not params.data.labelled else ''}), content hash "
            f"{meta['content_hash'][:12]}.",
            *([f"Evaluation protocol {params.eval.linear.epochs}-epoch linear probe on frozen standardized features; "
               f"weighted kNN k={params.eval.knn.k}, T={params.eval.knn.temperature}."] if params.data.labelled else []),
            "Random init = the same architecture, untrained.",
            f"Ran: {', '.join(['linear-eval'] * params.data.labelled + [f'{i.kind} {i.item}' for i in run.items()])}.",
            *[line[0].upper() + line[1:] + "." for line in describe(params)],
            f"Champion rule: the registry's 'champion' alias ranks encoders by {params.eval.champion_metric} "
            f"({metric_label(params.eval.champion_metric)}) on the same dataset version.",
            *(lineage or []),
        ]
        tables = [("Evaluation (each metric beside the same architecture from random init)", EVAL_COLUMNS,
                   evaluation_rows(params, rows))]
        tables += [("Registered encoders across pipeline runs", REGISTRY_COLUMNS, registry)] if registry else []
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
        summary = {f"{r['variant']}.{k}": r[k] for r in rows for k in ("linear_top1", "knn_top1", "rankme") if k in r}
        rec.metrics(summary)
        rec.artifact(layout.reports, "report")
    # a Kubeflow run's parent run gets the report and ends here ('csl run' ends its own)
    tracking.close_pipeline_parent(project, params.tracking.experiment, "FINISHED", layout.reports, summary)
    print(f"report: {layout.reports / 'report.html'} (and report.md)")
