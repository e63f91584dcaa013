"""The tracking module against a real MLflow SQLite store, and an unreachable server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import mlflow
import pytest

from csl import tracking
from csl.errors import TrackingError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_default_store_is_sqlite_in_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking.tracking_uri(tmp_path) == "http://example.invalid:5000"


def test_parent_and_child_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with tracking.pipeline_run(tmp_path, "exp", "pipeline", {"k": "v"}) as parent:
        monkeypatch.setenv(tracking.PARENT_ENV, parent.run_id)
        for stage, variant in (("prepare", None), ("pretrain", "a"), ("pretrain", "b")):
            with tracking.stage_run(tmp_path, "exp", stage, variant) as rec:
                rec.params({"x": {"y": 1}})
                rec.metrics({"loss": 1.5}, step=0)
    children = tracking.child_runs(tmp_path, "exp", parent.run_id)
    assert sorted(c["name"] for c in children) == ["prepare", "pretrain@a", "pretrain@b"]
    assert all(c["status"] == "FINISHED" and c["tags"]["csl.git_commit"] for c in children)
    run = mlflow.get_run(children[0]["run_id"])
    assert run.data.params == {"x.y": "1"}
    exp = mlflow.get_experiment_by_name("exp")
    assert exp.artifact_location == (tmp_path / "mlartifacts").resolve().as_uri()


def test_failed_stage_marks_its_run_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    with pytest.raises(ValueError):
        with tracking.stage_run(tmp_path, "exp", "pretrain", "a"):
            raise ValueError("boom")
    runs = mlflow.search_runs(experiment_names=["exp"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert runs[0].data.tags["csl.error"] == "ValueError: boom"


def test_a_run_whose_process_is_gone_is_ended_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage process killed with SIGKILL leaves its run RUNNING; the next invocation ends it KILLED
    (with the reason), and leaves the runs of live processes alone."""
    import os
    import subprocess
    import sys

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", tracking.PARENT_ENV)}
    code = ("import sys, time\nfrom pathlib import Path\nfrom csl import tracking\n"
            "with tracking.stage_run(Path(sys.argv[1]), 'exp', 'pretrain', 'a'):\n"
            "    print('started', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    proc.kill()
    proc.wait()
    with tracking.pipeline_run(tmp_path, "exp", "pipeline", {}):  # opening a run ends the dead ones first
        runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["exp"], output_format="list")}
        assert runs["pipeline"].info.status == "RUNNING"  # this live process's run is left alone
    dead = runs["pretrain@a"]
    assert dead.info.status == "KILLED"
    assert f"process {proc.pid} on" in dead.data.tags["csl.end_reason"]
    assert "no longer exists" in dead.data.tags["csl.end_reason"]


def test_process_tags_see_death_and_reuse() -> None:
    import os
    import subprocess

    from csl.tracking import liveness

    mine = liveness.process_tag()
    assert liveness.is_gone(mine) is None
    host, boot, pid, start = mine.rsplit(":", 3)
    assert int(pid) == os.getpid()
    assert "another process" in str(liveness.is_gone(f"{host}:{boot}:{pid}:{int(start) + 1}"))  # id reused
    assert "rebooted" in str(liveness.is_gone(f"{host}:nope:{pid}:{start}"))
    assert liveness.is_gone(f"another-host:{boot}:{pid}:{start}") is None  # not visible from here
    p = subprocess.Popen(["sleep", "30"])
    tag = liveness.process_tag(p.pid)
    assert liveness.is_gone(tag) is None
    p.kill()
    p.wait()
    assert "no longer exists" in str(liveness.is_gone(tag))


def test_unreachable_server_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv(tracking.RETRIES_ENV, "2")
    start = time.monotonic()
    with pytest.raises(TrackingError, match=rf"127.0.0.1:{port} is unreachable after 2 attempts.*"
                                            r"unset it to use the local SQLite store"):
        tracking.connect(tmp_path, "exp")
    assert time.monotonic() - start >= 1.0  # it backed off between attempts


def test_dvc_md5_is_read_from_the_lock(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  prepare:\n    cmd: csl prepare\n    outs:\n    - path: data/prepared\n"
        "      hash: md5\n      md5: 0123456789abcdef0123456789abcdef.dir\n")
    assert tracking.dvc_out_md5(tmp_path, "data/prepared") == "0123456789abcdef0123456789abcdef.dir"
    assert tracking.dvc_out_md5(tmp_path, "other") is None


def test_git_dirty_counts_code_and_params_not_pipeline_outputs(tmp_path: Path) -> None:
    import subprocess

    from conftest import csl_env

    env = csl_env(tmp_path)
    for name in ("params.yaml", "dvc.lock", "code.py"):
        (tmp_path / name).write_text("a\n")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "metrics.json").write_text("{}\n")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "x"]):
        subprocess.run(cmd, cwd=tmp_path, env=env, check=True)
    commit, dirty = tracking.git_commit(tmp_path)
    assert len(commit) == 40 and not dirty
    (tmp_path / "dvc.lock").write_text("b\n")
    (tmp_path / "runs" / "metrics.json").write_text('{"x": 1}\n')
    assert tracking.git_commit(tmp_path) == (commit, False)
    (tmp_path / "params.yaml").write_text("b\n")
    assert tracking.git_commit(tmp_path) == (commit, True)


def test_server_lost_mid_stage_keeps_the_results_and_relog_logs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A real ``mlflow server`` stops in the middle of a stage: the stage finishes, its outputs
    are written, the run is kept in .csl/pending-tracking; ``csl relog`` fails clearly while the
    server is down and logs everything (metric history, params, artifacts) once it is back."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from conftest import MlflowServer
    from csl.cli import main

    server = MlflowServer(tmp_path, (tmp_path / "artifacts").as_uri())
    url = server.start()
    proj = tmp_path / "proj"
    out = proj / "runs" / "v" / "pretrain"
    out.mkdir(parents=True)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv(tracking.RETRIES_ENV, "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv(tracking.PARENT_ENV, raising=False)
    try:
        with tracking.stage_run(proj, "exp", "pretrain", "v") as rec:
            rec.params({"train": {"epochs": 2}})
            rec.metrics({"loss": 2.0}, step=0)
            server.stop()  # the server goes away mid-stage
            rec.metrics({"loss": 1.5}, step=1)
            (out / "encoder.pt").write_bytes(b"weights")  # the stage's work goes on
            rec.artifact(out / "encoder.pt", "encoder")
        lost = rec.run_id
        assert rec.offline and (out / "encoder.pt").read_bytes() == b"weights"
        err = capsys.readouterr().err
        assert "became unreachable during pretrain@v" in err and "csl relog" in err
        assert len(tracking.pending(proj)) == 1
        # while the server is down: a clear error, the journal is kept
        assert main(["--project", str(proj), "relog"]) == 2
        assert "unreachable after 1 attempts" in capsys.readouterr().err
        assert len(tracking.pending(proj)) == 1
        server.start()  # back, same store
        assert main(["--project", str(proj), "relog"]) == 0
        assert "re-logged pretrain@v as run" in capsys.readouterr().out
        assert tracking.pending(proj) == []
        mlflow.set_tracking_uri(url)
        client = MlflowClient()
        runs = mlflow.search_runs(experiment_names=["exp"], output_format="list",
                                  filter_string=f"tags.`csl.relogged_from` = '{lost}'")
        assert len(runs) == 1
        new = runs[0]
        assert new.info.status == "FINISHED" and new.data.params["train.epochs"] == "2"
        assert [(m.step, m.value) for m in client.get_metric_history(new.info.run_id, "loss")] == [(0, 2.0), (1, 1.5)]
        assert [f.path for f in client.list_artifacts(new.info.run_id, "encoder")] == ["encoder/encoder.pt"]
        old = client.get_run(lost)
        assert old.info.status == "FAILED" and old.data.tags["csl.relogged_as"] == new.info.run_id
        assert main(["--project", str(proj), "relog"]) == 0
        assert "nothing to re-log" in capsys.readouterr().out
    finally:
        server.stop()
