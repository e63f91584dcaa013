"""``csl run``: the whole local pipeline through DVC, under one MLflow parent run.

Overrides given here are first written into params.yaml (comments kept, as
``dvc exp run -S`` does) so that DVC, git and MLflow all see exactly what ran. When DVC
reports nothing changed, nothing runs and no MLflow run is opened.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from csl.errors import CslError
from csl.io import atomic_write_text
from csl.params import Params, load_params
from csl.stages import plan
from csl.stages.layout import REPORTS, Layout
from csl.stages.prepare import check_source
from csl.stages.pretrain import check_parents
from csl.stages.register import check_registrations


def dvc_command() -> list[str]:
    beside = Path(sys.executable).parent / "dvc"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dvc")
    if not found:
        raise CslError("the 'dvc' command is not installed; run 'make setup' (or pip install dvc==3.67.1)")
    return [found]


def write_overrides(params_path: Path, overrides: list[str]) -> None:
    """Apply validated overrides to params.yaml in place, keeping its comments."""
    roundtrip = YAML()  # ruamel keeps comments and order, as DVC's own params edits do
    roundtrip.width = 4096  # and long lines (paths) as they are, not folded at 80 columns
    doc = roundtrip.load(params_path.read_text())
    for item in overrides:
        key, raw = item.split("=", 1)
        node = doc
        parts = key.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = yaml.safe_load(raw)
    buf = io.StringIO()
    roundtrip.dump(doc, buf)
    atomic_write_text(params_path, buf.getvalue())


def pipeline_status(project: Path) -> dict[str, Any]:
    """``dvc status --json``: empty when every stage is up to date."""
    out = subprocess.run([*dvc_command(), "status", "--json"], cwd=project, capture_output=True, text=True)
    if out.returncode != 0:
        raise CslError(f"'dvc status' failed in {project}:\n{out.stderr.strip()}")
    text = out.stdout.strip()
    return json.loads(text) if text.startswith("{") else {"unparsed": text}


def headline(project: Path, params: Params) -> str:
    """The metrics of the last report, and each variant's registration as the store configured now
    holds it (never a file's word for it)."""
    from csl import tracking

    summary = project / REPORTS / "summary.json"
    lines = []
    if summary.is_file():
        rows = json.loads(summary.read_text())
        if params.data.labelled:
            lines.append(f"{'variant':<24}{'linear':>9}{'(random)':>10}{'kNN':>9}{'(random)':>10}{'img/s':>9}")
            for r in rows:
                lines.append(f"{r['variant']:<24}{r['linear_top1']:>9.2%}"
                             f"{r.get('random_linear_top1', float('nan')):>10.2%}{r['knn_top1']:>9.2%}"
                             f"{r.get('random_knn_top1', float('nan')):>10.2%}{r.get('images_per_s') or 0:>9.0f}")
        else:  # no labels: the label-free measures that ran, each beside its random-init value
            names = [n for n in ("rankme", "uniformity", "alignment", "std_ratio") if n in rows[0]]
            lines.append(f"{'variant':<24}" + "".join(f"{n:>12}{'(random)':>10}" for n in names) + f"{'img/s':>9}")
            for r in rows:
                lines.append(f"{r['variant']:<24}" + "".join(
                    f"{r[n]:>12.3f}{r.get('random_' + n, float('nan')):>10.3f}" for n in names)
                    + f"{r.get('images_per_s') or 0:>9.0f}")
    uri = tracking.tracking_uri(project)
    lines.extend(registrations(project, params))
    lines.append(f"report:       {project / REPORTS / 'report.html'} (Markdown: report.md)")
    lines.append(f"MLflow store: {uri}")
    if uri.startswith("sqlite:"):
        lines.append(f"browse it:    mlflow ui --backend-store-uri {uri}")
    return "\n".join(lines)


def registrations(project: Path, params: Params) -> list[str]:
    """One line per variant: the model version of its current encoder in the store, read from the
    registry (with the champion alias), or that the store does not hold it."""
    from csl import data as csl_data
    from csl import tracking
    from csl.tracking import model_registry

    layout = Layout(project, params)
    if not (layout.prepared / "meta.json").is_file():
        return []
    dataset = csl_data.read_meta(layout.prepared)["name"]
    tracking.use_store(project)
    lines = []
    for v in params.selected:
        enc = layout.pretrain_dir(v) / "encoder.pt"
        if not enc.is_file():
            continue
        name = model_registry.model_name(dataset, v.name)
        mv = model_registry.find_encoder(name, enc)
        if mv is None:
            lines.append(f"registered:   none for {v.name} in this store (its encoder is not in {name})")
            continue
        champ = "champion" in (model_registry.resolve(f"{name}/{mv.version}").aliases or [])
        lines.append(f"registered:   models:/{name}/{mv.version}{'  (champion)' if champ else ''}")
    return lines


def required_keys(dvc_yaml: Path) -> list[str]:
    """The params.yaml keys dvc.yaml reads: every stage's ``params`` entry and every ``${...}`` of a
    stage ``matrix`` (templated entries, such as ``methods.${item.variant}``, are left out)."""
    import re

    spec = yaml.safe_load(dvc_yaml.read_text()) or {}
    keys: list[str] = []
    for stage in (spec.get("stages") or {}).values():
        for value in (stage.get("matrix") or {}).values():
            keys += re.findall(r"\$\{([^}]+)\}", str(value))
        for entry in stage.get("params") or []:
            if isinstance(entry, str) and "${" not in entry:
                keys.append(entry)
    return list(dict.fromkeys(keys))


def check_param_keys(params_path: Path, dvc_yaml: Path | None = None) -> None:
    """DVC reads the keys its stages depend on (and the lists its matrices fan out over) from
    params.yaml itself: csl's defaults do not reach it. Each must be written out."""
    dvc_yaml = dvc_yaml or params_path.parent / "dvc.yaml"
    if not dvc_yaml.is_file():
        return
    raw = yaml.safe_load(params_path.read_text()) or {}
    missing = []
    for key in required_keys(dvc_yaml):
        if key.startswith("plan."):  # plan.yaml's, written from params.yaml (csl.stages.plan)
            continue
        node = raw
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) and part in node else _MISSING
        if node is _MISSING:
            missing.append(key)
    if missing:
        raise CslError(f"{params_path} must set {', '.join(missing)}: DVC reads them from the file (dvc.yaml's "
                       "stage params and matrices). Copy them from the repository's params.yaml ('csl params' "
                       "prints every default; [] turns an evaluation protocol off)")


_MISSING = object()


def run(project: Path, params_path: Path, overrides: list[str], force: bool = False) -> bool:
    """Run what DVC says is stale; return whether anything ran."""
    from csl import tracking

    params = load_params(params_path, overrides)  # validate before touching anything
    check_param_keys(params_path)
    if overrides:
        write_overrides(params_path, overrides)
    if plan.write(project, params):
        print(f"wrote {project / plan.PLAN} (the stages DVC plans for this data)", flush=True)
    for line in plan.describe(params):
        print(line, flush=True)
    dvc = dvc_command()
    tracking.open_experiment(project, params.tracking.experiment)  # ends the runs of killed invocations
    for line in check_registrations(params, project):  # the store is external state: DVC cannot see it
        print(line, flush=True)
    for line in check_parents(params, project):  # nor where a warm start's alias points now
        print(line, flush=True)
    for line in check_source(params, project):  # nor what a folder or bucket of images holds now
        print(line, flush=True)
    status = pipeline_status(project)
    if not status and not force:
        print("pipeline is up to date: nothing to run (dvc status reports no changes; every variant is "
              "registered in this store)")
        print(headline(project, params))
        return False
    stale = ", ".join(sorted(status)) if status else "forced"
    with tracking.pipeline_run(project, params.tracking.experiment, "pipeline",
                               {"csl.stale_stages": stale[:5000]}) as parent:
        parent.params({"variants": ",".join(params.variants), "data.dataset": params.data.dataset})
        # the stages' commands ('csl ...') resolve to this installation, also when csl was started by its
        # path (.venv/bin/csl run) without the venv on PATH
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path, tracking.PARENT_ENV: parent.run_id}
        cmd = [*dvc, "repro", *(["--force"] if force else [])]
        code = subprocess.run(cmd, cwd=project, env=env).returncode
        if code != 0:
            raise CslError(f"'{' '.join(cmd)}' failed with exit status {code}; the failing stage's error "
                           "is printed above. Completed stages are kept; rerun 'csl run' to continue.")
        reports = project / REPORTS
        parent.artifact(reports, "report")
        summary = reports / "summary.json"
        if summary.is_file():
            for r in json.loads(summary.read_text()):
                names = params.eval.metric_names(params.data.labelled, params.data.in_memory)
                parent.metrics({f"{r['variant']}.{k}": r[k] for k in [*names, *(f"random_{n}" for n in names)]
                                if isinstance(r.get(k), (int, float))})
    print(headline(project, params))
    missed = tracking.pending(project)
    if missed:
        raise CslError(f"{len(missed)} stage run(s) did not reach the MLflow server ({tracking.tracking_uri(project)}); "
                       f"their results are written and kept ({project / tracking.PENDING}): run 'csl relog' once "
                       "the server answers")
    return True
