"""``csl pipeline submit | schedule`` through the real ``kfp.Client`` against a thin fake of the
Kubeflow Pipelines REST API on loopback: the run carries the compiled pipeline and this
project's parameters, the recurring run the 6-field cron; failures and bad input are clear."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from csl.cli import main
from fake_kfp import FakeKfp


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    f = FakeKfp()
    yield f
    f.close()


def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    shutil.copy(REPO / "params.yaml", p / "params.yaml")
    return p


def test_submit_creates_a_run_with_the_compiled_pipeline_and_follows_it(fake: FakeKfp, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    p = project(tmp_path)
    rc = main(["--project", str(p), "pipeline", "submit", "--host", fake.url, "--data-repo",
               "https://git.example.com/ml/data.git", "--data-rev", "v3", "--launcher", "pytorchjob",
               "--job-nodes", "4", "--job-gpus-per-node", "8", "--run-name", "nightly", "--wait", "--poll", "0.01",
               "--node-selector", "nvidia.com/gpu.present=true", "--toleration", "nvidia.com/gpu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert [e["display_name"] for e in fake.experiments.values()] == ["csl"]
    (run,) = fake.runs.values()
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-1"
    args = run["runtime_config"]["parameters"]
    golden, platform = yaml.safe_load_all((REPO / "pipelines" / "csl_pipeline.yaml").read_text())
    sent = run["pipeline_spec"]
    sent_spec = sent["pipeline_spec"]
    sent_spec.pop("sdkVersion", None)
    golden.pop("sdkVersion", None)
    assert sent_spec == golden  # the pipeline as compiled
    assert sent["platform_spec"] == platform  # with its Kubernetes settings
    assert run["service_account"] == "csl-pipeline-runner"
    assert args["node_selector"] == {"nvidia.com/gpu.present": "true"}
    assert args["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert args["params_yaml"] == (p / "params.yaml").read_text()
    assert args["variants"] == yaml.safe_load((p / "params.yaml").read_text())["variants"]
    assert (args["data_repo"], args["data_rev"], args["launcher"]) == ("https://git.example.com/ml/data.git", "v3",
                                                                       "pytorchjob")
    assert (args["job_nodes"], args["job_gpus_per_node"], args["allow_unversioned"]) == (4, 8, False)
    assert "submitted nightly in experiment csl: run run-1" in out
    assert out.index("run run-1: PENDING") < out.index("run run-1: RUNNING") < out.index("run run-1: SUCCEEDED")
    # a second submission reuses the experiment
    assert main(["--project", str(p), "pipeline", "submit", "--host", fake.url, "--data-repo", "x", "--variant",
                 "simclr-small"]) == 0
    assert len(fake.experiments) == 1 and len(fake.runs) == 2
    assert fake.runs["run-2"]["runtime_config"]["parameters"]["variants"] == ["simclr-small"]


def test_a_failed_run_fails_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    fake = FakeKfp(["RUNNING", "FAILED"])
    try:
        rc = main(["--project", str(project(tmp_path)), "pipeline", "submit", "--host", fake.url, "--data-repo", "x",
                   "--wait", "--poll", "0.01"])
        err = capsys.readouterr().err
        assert rc == 2 and "ended FAILED: task pretrain failed" in err
    finally:
        fake.close()


def test_schedule_creates_a_recurring_run_with_a_six_field_cron(fake: FakeKfp, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    p = project(tmp_path)
    rc = main(["--project", str(p), "pipeline", "schedule", "--host", fake.url, "--data-repo", "x", "--cron",
               "0 0 3 * * *", "--name", "nightly-csl"])
    assert rc == 0, capsys.readouterr().err
    (rr,) = fake.recurring.values()
    assert rr["display_name"] == "nightly-csl" and rr["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert rr["mode"] == "ENABLE" and str(rr["max_concurrency"]) == "1"
    assert rr["no_catchup"] is True
    assert rr["runtime_config"]["parameters"]["params_yaml"] == (p / "params.yaml").read_text()
    assert "scheduled nightly-csl (0 0 3 * * *)" in capsys.readouterr().out
    # a 5-field (Unix) cron is refused with the 6-field spelling, before any request
    n = len(fake.requests)
    assert main(["--project", str(p), "pipeline", "schedule", "--host", fake.url, "--data-repo", "x", "--cron",
                 "0 3 * * *"]) == 2
    assert "Kubeflow Pipelines reads 6, seconds first: '0 0 3 * * *'" in capsys.readouterr().err
    assert len(fake.requests) == n


def test_bad_input_is_refused_before_any_request(fake: FakeKfp, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    p = project(tmp_path)
    assert main(["--project", str(p), "pipeline", "submit", "--host", fake.url]) == 2
    assert "--data-repo is required" in capsys.readouterr().err
    assert main(["--project", str(p), "pipeline", "submit", "--host", fake.url, "--data-repo", "x", "--variant",
                 "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert fake.requests == []
    from conftest import free_port

    assert main(["--project", str(p), "pipeline", "submit", "--host", f"http://127.0.0.1:{free_port()}",
                 "--data-repo", "x"]) == 2
    assert "cannot reach the Kubeflow Pipelines API" in capsys.readouterr().err
