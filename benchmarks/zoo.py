"""Train every method of the zoo at one budget on a real dataset and tabulate the results.

For each variant (default: every entry of ``methods`` in params.yaml): pretrain with the same
number of epochs, then the pipeline's evaluation (linear probe and weighted kNN on frozen
features, and both for a random-init encoder of the same architecture). Rows are merged into
``benchmarks/zoo-results.json`` and rendered to ``benchmarks/RESULTS.md`` with the hardware,
the git commit (and whether the checkout had uncommitted changes) and the command that
reproduces each row; each row's raw output (per-epoch history, training summary, evaluation
metrics) is kept in ``benchmarks/zoo-raw/<variant>.json``. Work files go to ``--work`` (not tracked).

    python benchmarks/zoo.py [--epochs 4] [--variants simclr-small dino-small ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks"


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores visible, {gpu}; torch {torch.__version__}"


def commit() -> str:
    """``<sha>`` of the checkout, ``+dirty`` when tracked code or parameters differ from it."""
    from csl.tracking.lineage import git_commit

    sha, dirty = git_commit(REPO)
    return f"{sha}{'+dirty' if dirty else ''}"


def finetune_rows(params_raw: dict[str, Any], variant: str, work: Path, fraction: float,
                  layers: list[int]) -> dict[str, dict[str, Any]]:
    """The few-label fine-tuning protocol (``csl finetune``) of the pretrained variant, once per
    ``from_head_layer`` in ``layers``, each beside its random-init baseline."""
    from csl.evaluate.subsets import fraction_key
    from csl.params import parse_params
    from csl.stages.finetune import finetune

    out = {}
    for layer in layers:
        raw = json.loads(json.dumps(params_raw))
        raw["variants"] = [variant]
        raw["eval"]["finetune"]["from_head_layer"] = layer
        raw["eval"]["run"]["finetune"] = [fraction]
        params = parse_params(raw)
        m = finetune(params, params.variant(variant), work, str(fraction))
        key = fraction_key(fraction)
        out[f"{key}@head{layer}"] = {"fraction": fraction, "from_head_layer": layer,
                                     "top1": m[f"finetune_{key}_top1"], "random_top1": m[f"random_finetune_{key}_top1"],
                                     "examples": m[f"finetune_{key}_examples"], "epochs": m[f"finetune_{key}_epochs"],
                                     "seconds": m[f"finetune_{key}_seconds"]}
    return out


def run_variant(params_raw: dict[str, Any], variant: str, epochs: int, work: Path,
                raw_dir: Path | None = None, code: str | None = None, finetune: float | None = None,
                head_layers: list[int] | None = None, limit_batches: int | None = None) -> dict[str, Any]:
    from csl.params import parse_params
    from csl.stages.features import features
    from csl.stages.linear_eval import linear_eval
    from csl.stages.pretrain import pretrain

    raw = json.loads(json.dumps(params_raw))
    raw["variants"] = [variant]
    raw["methods"][variant].setdefault("train", {})["epochs"] = epochs
    raw["methods"][variant]["train"]["progress_bar"] = False
    if limit_batches:  # a CPU budget for the costly encoders (ViT): this many steps per epoch
        raw["methods"][variant]["train"]["limit_train_batches"] = limit_batches
    params = parse_params(raw)
    v = params.variant(variant)
    start = time.perf_counter()
    fit = pretrain(params, v, work)
    features(params, v, work)
    metrics = linear_eval(params, v, work)
    tuned = finetune_rows(params_raw, variant, work, finetune, head_layers or [0]) if finetune else {}
    parts = v.as_dict()
    from csl import data as csl_data
    from csl.stages.layout import Layout
    from csl.train.build import build_method

    # a method that sees labels is the table's supervised reference, not a self-supervised row
    supervised = build_method(v.config, csl_data.read_meta(Layout(work, params).prepared)).needs.labels
    if raw_dir is not None:  # the run's raw output, committed beside the table
        raw_dir.mkdir(parents=True, exist_ok=True)
        (raw_dir / f"{variant}.json").write_text(json.dumps(
            {"variant": variant, "commit": code or commit(), "params": parts, "history": fit.history,
             "summary": fit.summary, "eval": metrics, "finetune": tuned}, indent=1, default=str) + "\n")
    return {
        "variant": variant,
        "method": v.method,
        "supervised": supervised,
        "parts": " | ".join(parts[k]["name"] for k in ("augment", "encoder", "extract", "similarity", "loss")),
        "epochs": epochs,
        "limit_batches": limit_batches,
        "batch_size": v.config.train.batch_size,
        "linear_top1": metrics["linear_top1"],
        "knn_top1": metrics["knn_top1"],
        "random_linear_top1": metrics["random_linear_top1"],
        "random_knn_top1": metrics["random_knn_top1"],
        "images_per_s": fit.summary["images_per_s"],
        "pretrain_seconds": fit.summary["pretrain_seconds"],
        "wall_seconds": time.perf_counter() - start,
        "final_loss": fit.summary["final_loss"],
        "finetune": tuned,
        "command": f"python benchmarks/zoo.py --epochs {epochs} --variants {variant}"
                   + (f" --limit-batches {limit_batches}" if limit_batches else "")
                   + (f" --finetune {finetune} --head-layers {' '.join(map(str, head_layers or [0]))}" if finetune else ""),
        "hardware": hardware(),
        "date": time.strftime("%Y-%m-%d"),
        "commit": code or commit(),
        "code_fingerprint": fit.summary.get("code_fingerprint"),
    }


def epochs_cell(r: dict[str, Any]) -> str:
    """``2``, or ``2 x 100 steps`` for a row whose epochs were capped (``--limit-batches``)."""
    return f"{r['epochs']} x {r['limit_batches']} steps" if r.get("limit_batches") else str(r["epochs"])


def render(rows: list[dict[str, Any]], dataset: str) -> str:
    lines = [
        "# Method zoo results",
        "",
        f"Every method of the zoo trained at the same small budget on {dataset} (60,000 training and 10,000",
        "test images, 28x28), then the pipeline's evaluation: a linear probe and weighted kNN (k=200,",
        "T=0.1) on frozen features, and the same for a random-init encoder of the same architecture",
        "(the baseline each row must beat). Settings: `params.yaml` (`methods:`), with `train.epochs`",
        "set by the command. Written by `benchmarks/zoo.py`; numbers come from the runs below, on the",
        "hardware listed per row. These are short CPU runs: far from the papers' budgets (hundreds of",
        "epochs, ResNet-50 on ImageNet), so they compare methods at equal cost, not the papers' accuracy.",
        "",
        "| variant | method: augment \\| encoder \\| extract \\| similarity \\| loss | epochs | linear top-1 "
        "| kNN top-1 | random-init linear | random-init kNN | beats random (both) | images/s | pretrain s "
        "| wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        beats = r["linear_top1"] > r["random_linear_top1"] and r["knn_top1"] > r["random_knn_top1"]
        lines.append(
            f"| {r['variant']}{' (supervised reference: sees labels)' if r.get('supervised') else ''} | {r['method']}: {r['parts'].replace('|', chr(92) + '|')} | {epochs_cell(r)} | {100 * r['linear_top1']:.2f}% "
            f"| {100 * r['knn_top1']:.2f}% | {100 * r['random_linear_top1']:.2f}% | {100 * r['random_knn_top1']:.2f}% "
            f"| {'yes' if beats else '**no**'} (+{100 * (r['linear_top1'] - r['random_linear_top1']):.1f} / "
            f"+{100 * (r['knn_top1'] - r['random_knn_top1']):.1f}) | {r['images_per_s']:.0f} "
            f"| {r['pretrain_seconds']:.0f} | {r['wall_seconds']:.0f} |".replace("+-", "-")
        )
    tuned = [(r, k, t) for r in rows for k, t in (r.get("finetune") or {}).items()]
    if tuned:
        lines += ["", "## Few-label fine-tuning", "",
                  "`csl finetune` after the same pretraining: the encoder (and, from head layer L > 0, the first L",
                  "layers of the pretrained projection head: SimCLR v2) fine-tuned on a class-balanced label subset",
                  "(the same images for every row), beside the same architecture from random init on the same",
                  "subset with the same budget (`eval.finetune` of params.yaml: Nesterov SGD, lr 0.05 x B/256, no",
                  "weight decay, crop + flip; 60 epochs at 1%).", "",
                  "| variant | labels | from head layer | images | epochs | fine-tuned top-1 | random-init top-1 "
                  "| margin |", "|---|---|---|---|---|---|---|---|"]
        for r, _, t in tuned:
            lines.append(f"| {r['variant']} | {100 * t['fraction']:g}% | {t['from_head_layer']} | {t['examples']} "
                         f"| {t['epochs']} | {100 * t['top1']:.2f}% | {100 * t['random_top1']:.2f}% "
                         f"| {100 * (t['top1'] - t['random_top1']):+.1f} |")
    notes = RESULTS_DIR / "zoo-notes.md"  # hand-written remarks on the runs, kept across re-renders
    if notes.is_file():
        lines += ["", notes.read_text().rstrip()]
    lines += ["", "## Commands and hardware", ""]
    for r in rows:
        lines.append(f"- `{r['variant']}`: `{r['command']}` (commit {r.get('commit') or 'not recorded'}; "
                     f"{r['date']}; {r['hardware']}; raw output `benchmarks/zoo-raw/{r['variant']}.json`)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--variants", nargs="*", help="default: every variant in the params file's methods")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--finetune", type=float, default=None, help="also fine-tune on this label fraction (0.01)")
    ap.add_argument("--head-layers", type=int, nargs="*", default=[0],
                    help="fine-tune from these projection-head layers (0: the encoder alone; 1: SimCLR v2)")
    ap.add_argument("--limit-batches", type=int, default=None,
                    help="at most this many steps per epoch (a CPU budget for ViT variants; recorded in the row)")
    ap.add_argument("--work", type=Path, default=REPO / "build" / "zoo")
    ap.add_argument("--fresh", action="store_true", help="delete the work directory first")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                    help="where zoo-results.json and RESULTS.md go (default: benchmarks/)")
    ap.add_argument("--render-only", action="store_true", help="rewrite RESULTS.md from zoo-results.json")
    args = ap.parse_args(argv)

    from csl.params import parse_params
    from csl.stages.prepare import prepare

    params_raw = yaml.safe_load(args.params.read_text())
    dataset = {"fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}.get(params_raw["data"].get("dataset"),
                                                                           "the dataset")
    if args.render_only:
        rows_json = json.loads((args.results_dir / "zoo-results.json").read_text())
        (args.results_dir / "RESULTS.md").write_text(render(rows_json, dataset))
        return 0
    variants = args.variants or list(params_raw["methods"])
    unknown = [v for v in variants if v not in params_raw["methods"]]
    if unknown:
        print(f"unknown variant(s) {unknown}; defined: {', '.join(params_raw['methods'])}", file=sys.stderr)
        return 2
    if args.fresh and args.work.exists():
        shutil.rmtree(args.work)
    args.work.mkdir(parents=True, exist_ok=True)
    prepare(parse_params(params_raw), args.work)
    results_json, results_md = args.results_dir / "zoo-results.json", args.results_dir / "RESULTS.md"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    rows = {r["variant"]: r for r in json.loads(results_json.read_text())} if results_json.is_file() else {}
    code = commit()  # before this run writes its results (tracked files): the code every row runs
    for v in variants:
        print(f"== {v}: {args.epochs} epochs", flush=True)
        # a fresh checkpoint per budget: never resume a run with other settings
        shutil.rmtree(args.work / "checkpoints" / v, ignore_errors=True)
        row = run_variant(params_raw, v, args.epochs, args.work, args.results_dir / "zoo-raw", code, args.finetune,
                          args.head_layers, args.limit_batches)
        rows[v] = row
        print(f"   linear {100 * row['linear_top1']:.2f}% (random {100 * row['random_linear_top1']:.2f}%), "
              f"kNN {100 * row['knn_top1']:.2f}% (random {100 * row['random_knn_top1']:.2f}%), "
              f"{row['images_per_s']:.0f} images/s, {row['wall_seconds']:.0f} s", flush=True)
        ordered = [rows[k] for k in params_raw["methods"] if k in rows]
        results_json.write_text(json.dumps(ordered, indent=2) + "\n")
        results_md.write_text(render(ordered, dataset))
    print(f"results: {results_md}\nreproduce: python benchmarks/zoo.py --epochs {args.epochs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
