"""The Kubeflow pipeline: the compiled YAML equals the committed golden file, and the whole
pipeline runs locally with kfp.local (SubprocessRunner) on tiny data: artifacts pass between
the steps, the parallel variants are collected by the report, MLflow receives every stage run
and the registry the encoders."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, make_idx_dir, tiny_method, tiny_params



def test_compiled_pipeline_matches_the_golden_file(tmp_path: Path) -> None:
    from csl.kubeflow.pipeline import compile_to

    compile_to(str(tmp_path / "p.yaml"))
    fresh, fresh_platform = yaml.safe_load_all((tmp_path / "p.yaml").read_text())
    golden, golden_platform = yaml.safe_load_all((REPO / "pipelines" / "csl_pipeline.yaml").read_text())
    fresh.pop("sdkVersion", None)
    golden.pop("sdkVersion", None)
    assert (fresh, fresh_platform) == (golden, golden_platform), \
        "pipelines/csl_pipeline.yaml is stale: run csl pipeline compile"
    root = golden["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "cleanup"}
    # the exit handler runs however the run ended
    assert root["cleanup"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    dag = golden["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    # variants loop (pretrain, features, linear-eval), plan, the protocol items' loop, distill, register, report
    assert set(dag) == {"prepare", "for-loop-2", "plan", "for-loop-3", "distill", "register", "report"}
    assert dag["plan"]["inputs"]["artifacts"]["runs"]  # dsl.Collected over the variants' loop
    assert dag["distill"]["inputs"]["artifacts"]["results"]  # dsl.Collected over the protocol items
    assert dag["report"]["inputs"]["artifacts"]["runs"]["taskOutputArtifact"]["producerTask"] == "register"


def test_pipeline_runs_locally_on_versioned_data_through_an_mlflow_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3, mlflow_server) -> None:  # type: ignore[no-untyped-def]
    """Real services on loopback: the dataset is DVC-versioned in a git repository and pushed to
    the S3 server; the pipeline's prepare step fetches it by revision from a fresh clone; every
    step logs through ``mlflow server`` whose artifacts live in the same S3 server. Two pipeline
    runs: the report of the second compares the encoders of both."""
    import boto3
    import mlflow
    from kfp import local
    from mlflow.tracking import MlflowClient

    from csl.kubeflow.pipeline import csl_pipeline
    from test_data_versioned import lock_md5, versioned_repo

    url, bucket = mlflow_server
    repo, env, commit = versioned_repo(tmp_path, s3)
    md5 = lock_md5(repo)
    for k in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_NO_ANALYTICS"):
        monkeypatch.setenv(k, env[k])
    fresh = tmp_path / "fresh"  # what the step sees: a clone without the DVC cache
    subprocess.run(["git", "clone", "-q", str(repo), str(fresh)], check=True, env=env)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params.update(variants=["a", "b"], methods={"a": tiny_method(), "b": tiny_method(seed=1)})
    # one protocol item per variant (its own task and child run); the champion rule ranks by its metric
    params["eval"].update(run={"probes": ["clustering"], "finetune": [], "distill": [], "transfer": []}, champion_metric="cluster_acc")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    csl_pipeline(params_yaml=yaml.safe_dump(params), variants=["a", "b"], data_repo=str(fresh), data_rev=commit,
                 tracking_uri=url)

    mlflow.set_tracking_uri(url)
    client = MlflowClient()
    runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list")
    parents = [r for r in runs if r.data.tags.get("csl.stage") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r is not parent]
    assert sorted(r.info.run_name for r in children) == ["clustering@a", "clustering@b", "features@a", "features@b",
                                                        "linear-eval@a", "linear-eval@b", "prepare", "pretrain@a",
                                                        "pretrain@b", "register@a", "register@b", "report"]
    assert all(r.info.status == "FINISHED" and r.data.tags["mlflow.parentRunId"] == parent.info.run_id
               for r in children)
    prep = next(r for r in children if r.info.run_name == "prepare")
    assert prep.data.tags["csl.data.dvc_md5"] == md5 and prep.data.tags["csl.data.rev"] == commit
    # the report and the summary metrics are on the parent run
    assert "report/report.html" in {f.path for f in client.list_artifacts(parent.info.run_id, "report")}
    assert set(parent.data.metrics) >= {"a.linear_top1", "b.linear_top1"}
    for v in ("a", "b"):
        mv = client.get_model_version_by_alias(f"csl-encoder-fashion-mnist-{v}", "champion")
        assert mv.tags["csl.pipeline_run_id"] == parent.data.tags["csl.pipeline_run_id"]
        assert mv.tags["csl.run.pretrain"] in {r.info.run_id for r in children}
        clustering = next(r for r in children if r.info.run_name == f"clustering@{v}")
        assert mv.tags["csl.run.clustering"] == clustering.info.run_id and mv.tags["csl.champion_metric"] == "cluster_acc"
        assert float(mv.tags["csl.metrics.cluster_acc"]) == pytest.approx(clustering.data.metrics["cluster_acc"], abs=1e-6)
        assert mv.tags["csl.data.dvc_md5"] == md5  # the same md5 as dvc.lock in the data repository
        assert mv.tags["csl.data.remote"] == f"s3://{s3[1]}/dvc" and mv.tags["csl.data.rev"] == commit
    # artifacts went through the server into S3; a client without S3 credentials loads the encoder
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3[0]).list_objects_v2(
        Bucket=bucket, Prefix="mlflow/")["Contents"]]
    assert any(k.endswith("encoder.pt") or "/encoder/" in k for k in keys)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k)
    model = mlflow.pytorch.load_model("models:/csl-encoder-fashion-mnist-a@champion")
    images = np.load(repo / "data" / "prepared" / "test_images.npy")[:8]
    assert model(torch.as_tensor(images)).shape[0] == 8
    for k, v in s3[2].items():
        monkeypatch.setenv(k, v)

    # a second pipeline run (variant a retrained with another seed): the report compares across runs
    params["methods"]["a"] = tiny_method(seed=7)
    params["eval"].update(run={"probes": [], "finetune": [], "distill": [], "transfer": []}, champion_metric="linear_top1")  # no protocol items
    csl_pipeline(params_yaml=yaml.safe_dump(params), variants=["a"], data_repo=str(fresh), data_rev=commit,
                 tracking_uri=url)
    versions = client.search_model_versions("name = 'csl-encoder-fashion-mnist-a'")
    assert len(versions) == 2 and len({v.tags["csl.pipeline_run_id"] for v in versions}) == 2
    reports = sorted((tmp_path / "root").rglob("registry.json"), key=lambda f: f.stat().st_mtime)
    assert len(reports) == 2
    table = json.loads(reports[-1].read_text())
    # oldest first: the first run's two versions (registered by parallel tasks, so in either order), then
    # the second run's
    rows = [(r["name"], r["version"]) for r in table]
    assert sorted(rows[:2]) == [("csl-encoder-fashion-mnist-a", "1"), ("csl-encoder-fashion-mnist-b", "1")]
    assert rows[2] == ("csl-encoder-fashion-mnist-a", "2")
    assert [r["created"] for r in table] == sorted(r["created"] for r in table)
    champion = client.get_model_version_by_alias("csl-encoder-fashion-mnist-a", "champion")
    for r in table:
        assert r["data_md5"] == md5 and r["pipeline_run"]
        assert ("champion" in r["alias"]) == (r["name"].endswith("-b") or r["version"] == str(champion.version))
        assert r["decision"].startswith(("promoted", "kept"))
    md = (reports[-1].parent / "report.md").read_text()
    assert "## Registered encoders across pipeline runs" in md and md.count("csl-encoder-fashion-mnist-a") == 2


def test_pipeline_refuses_unversioned_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    from kfp import local

    from csl.kubeflow.pipeline import csl_pipeline

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)
    params = tiny_params(make_idx_dir(tmp_path / "fmnist"))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=True)
    with pytest.raises(RuntimeError) as e:
        csl_pipeline(params_yaml=yaml.safe_dump(params), variants=["simclr-tiny"],
                     tracking_uri=f"sqlite:///{tmp_path / 'm.db'}")
    assert "prepare" in str(e.value)  # the failed task ...
    logs = capfd.readouterr()
    # ... and its reason, from the step's own log: no data revision, no trial-run flag
    assert "no data_repo given: the pipeline refuses unversioned data" in logs.out + logs.err
    assert not list((tmp_path / "root").rglob("meta.json"))  # nothing prepared, nothing trained
