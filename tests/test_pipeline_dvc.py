"""The local pipeline through real DVC and a real MLflow SQLite store, on tiny data:
`csl run` runs every stage under one parent run; a second run is a no-op; changing one
variant's parameter reruns only that variant's stages (and the report)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import BIN, make_dvc_project, make_idx_dir, tiny_method, tiny_params

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def pipeline_runs(project: Path) -> list[tuple[str, list[str]]]:
    """[(parent run id, sorted child names)] oldest first."""
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list", order_by=["start_time ASC"])
    parents = [r for r in runs if r.data.tags.get("csl.stage") == "pipeline"]
    out = []
    for p in parents:
        kids = sorted(r.info.run_name for r in runs if r.data.tags.get("mlflow.parentRunId") == p.info.run_id)
        out.append((p.info.run_id, kids))
    return out


def test_csl_run_dvc_repro_noop_and_partial_rerun(tmp_path: Path) -> None:
    data = make_idx_dir(tmp_path / "fmnist", n_train=400, n_test=100)
    params = tiny_params(data, {"a": tiny_method(), "b": tiny_method()})
    # the evaluation suite fans out over variants x protocols: one stage (and child run) per item
    params["eval"]["run"] = {"probes": ["clustering"], "finetune": [0.1], "distill": [], "transfer": []}
    project, env = make_dvc_project(tmp_path, params)
    csl = str(BIN / "csl")
    dvc = str(BIN / "dvc")

    first = run([csl, "run"], project, env)
    assert "report:" in first.stdout and "MLflow store: sqlite:///" in first.stdout
    assert "linear" in first.stdout and "a " in first.stdout
    for v in ("a", "b"):
        assert (project / "runs" / v / "pretrain" / "encoder.pt").is_file()
        ev = json.loads((project / "runs" / v / "eval" / "metrics.json").read_text())
        n_test = 100  # accuracies are counts of the 100 test images; kNN is well above the chance of 0.1
        assert all(abs(x * n_test - round(x * n_test)) < 1e-4 for x in ev.values()) and ev["knn_top1"] > 0.25, ev
    assert (project / "reports" / "report.html").is_file()
    runs = pipeline_runs(project)
    assert len(runs) == 1
    assert runs[0][1] == sorted(["prepare", *(f"{s}@{v}" for v in "ab" for s in (
        "pretrain", "features", "linear-eval", "clustering", "finetune-10pct", "register")), "report"])
    # only the selected protocols ran (retrieval is off); the same label subset for every variant
    assert not (project / "runs/a/eval/retrieval").exists()
    for v in "ab":
        assert json.loads((project / f"runs/{v}/eval/finetune/0.1/subset.json").read_text())["sha256"] == \
            json.loads((project / "runs/a/eval/finetune/0.1/subset.json").read_text())["sha256"]

    # lineage: the dataset digest logged by pretrain is DVC's md5 of the prepared data
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/prepared")
    pre = mlflow.search_runs(experiment_names=["csl-test"], filter_string="attributes.run_name = 'pretrain@a'",
                             output_format="list")[0]
    assert pre.data.tags["csl.data.dvc_md5"] == md5
    assert pre.inputs.dataset_inputs[0].dataset.digest == md5[:36]

    # nothing changed: csl run and dvc repro do nothing, no new MLflow runs
    second = run([csl, "run"], project, env)
    assert "up to date: nothing to run" in second.stdout
    repro = run([dvc, "repro"], project, env)
    assert "didn't change" in repro.stdout or "up to date" in repro.stdout
    assert "Running stage" not in repro.stdout
    assert len(pipeline_runs(project)) == 1

    # change one variant's parameter (recorded in params.yaml): only its stages rerun
    text_before = (project / "params.yaml").read_text()
    third = run([csl, "run", "methods.b.loss.temperature=0.3"], project, env)
    assert yaml.safe_load((project / "params.yaml").read_text())["methods"]["b"]["loss"]["temperature"] == 0.3
    assert text_before.count("\n") == (project / "params.yaml").read_text().count("\n")
    runs = pipeline_runs(project)
    assert len(runs) == 2
    assert runs[1][1] == ["clustering@b", "features@b", "finetune-10pct@b", "linear-eval@b", "pretrain@b",
                          "register@b", "report"]
    assert "Running stage 'pretrain@a'" not in third.stdout
