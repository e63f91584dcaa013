"""The Kubeflow pipeline: the compiled YAML equals the committed golden file, and the whole
pipeline runs locally with kfp.local (SubprocessRunner) on tiny data: artifacts pass between
the steps, the parallel variants are collected by the report, MLflow receives every stage run
and the registry the encoders."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, make_idx_dir, tiny_method, tiny_params

sys.path.insert(0, str(REPO))


def test_compiled_pipeline_matches_the_golden_file(tmp_path: Path) -> None:
    from pipelines.csl_pipeline import compile_to

    compile_to(str(tmp_path / "p.yaml"))
    fresh = yaml.safe_load((tmp_path / "p.yaml").read_text())
    golden = yaml.safe_load((REPO / "pipelines" / "csl_pipeline.yaml").read_text())
    fresh.pop("sdkVersion", None)
    golden.pop("sdkVersion", None)
    assert fresh == golden, "pipelines/csl_pipeline.yaml is stale: run python pipelines/csl_pipeline.py"
    dag = golden["root"]["dag"]["tasks"]
    assert set(dag) == {"prepare", "for-loop-1", "report"}
    assert dag["report"]["inputs"]["artifacts"]["runs"]  # dsl.Collected over the loop


def test_pipeline_runs_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import local

    from pipelines.csl_pipeline import csl_pipeline

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    data = make_idx_dir(tmp_path / "fmnist")
    params = tiny_params(data, {"a": tiny_method(), "b": tiny_method(seed=1)})
    db = tmp_path / "mlflow.db"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    csl_pipeline(params_yaml=yaml.safe_dump(params), variants=["a", "b"], tracking_uri=f"sqlite:///{db}")

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(f"sqlite:///{db}")
    runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list")
    names = sorted(r.info.run_name for r in runs)
    assert names == ["linear-eval@a", "linear-eval@b", "prepare", "pretrain@a", "pretrain@b", "register@a",
                     "register@b", "report"]
    assert all(r.info.status == "FINISHED" for r in runs)
    client = MlflowClient()
    for v in ("a", "b"):
        mv = client.get_model_version_by_alias(f"csl-encoder-fashion-mnist-{v}", "champion")
        assert mv.tags["csl.pipeline_run_id"]  # lineage reaches the pipeline run
        assert mv.tags["csl.run.pretrain"] in {r.info.run_id for r in runs}
    reports = list((tmp_path / "root").rglob("report.html"))
    assert len(reports) == 1
    summary = json.loads((reports[0].parent / "summary.json").read_text())
    assert sorted(r["variant"] for r in summary) == ["a", "b"]
