"""Results that can be trusted from a fresh clone (issue 13), through real DVC, git and MLflow on
tiny data:

- the registry is external state: a record whose model version is not in the store configured now
  is registered again (an emptied store, a fresh clone), and the headline reads the registry;
- a checkpoint resumes only the same computation: after a change to training code, ``csl run``
  retrains instead of returning the old code's weights;
- ``csl reproduce`` rebuilds a registered encoder from its lineage, bit-identical, and reports a
  tampered registry entry or another commit's code as not reproduced;
- a ``csl run`` killed with SIGKILL leaves no run ``RUNNING``: the next invocation ends them ``KILLED``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import BIN, make_dvc_project, make_idx_dir, tiny_method, tiny_params

pytestmark = pytest.mark.slow
NAME = "csl-encoder-fashion-mnist-a"


def run(cmd: list[str], cwd: Path, env: dict[str, str], code: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == code, f"{cmd} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def store(project: Path) -> MlflowClient:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    return MlflowClient()


def project_with_own_code(tmp_path: Path, **train: object) -> tuple[Path, dict[str, str]]:
    """A committed git + DVC project whose stages run the project's own copy of the code."""
    data = make_idx_dir(tmp_path / "fmnist", n_train=400, n_test=100)
    project, env = make_dvc_project(tmp_path, tiny_params(data, {"a": tiny_method(**train)}))
    env["PYTHONPATH"] = str(project / "src")  # the code DVC tracks is the code that runs
    return project, env


def commit_all(project: Path, env: dict[str, str], msg: str) -> str:
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", msg], project, env)
    return run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()


def test_registry_is_checked_in_the_store_configured_now(tmp_path: Path) -> None:
    project, env = project_with_own_code(tmp_path)
    csl = str(BIN / "csl")
    first = run([csl, "run"], project, env)
    assert f"registered:   models:/{NAME}/1  (champion)" in first.stdout
    mv = store(project).get_model_version_by_alias(NAME, "champion")
    record = json.loads((project / "runs" / "a" / "register" / "registration.json").read_text())
    assert record["uri"] == f"models:/{NAME}/{mv.version}" and record["run_id"] == mv.run_id
    assert record["encoder_sha256"] == mv.tags["csl.encoder_sha256"]

    # the store is emptied (a new machine, another MLFLOW_TRACKING_URI): DVC's record alone would skip
    # register; csl run checks the store and registers again
    os.remove(project / "mlflow.db")
    second = run([csl, "run"], project, env)
    assert f"register@a: models:/{NAME}/1 is not in this store" in second.stdout
    assert "Running stage 'register@a'" in second.stdout and "Running stage 'pretrain@a'" not in second.stdout
    mv2 = store(project).get_model_version_by_alias(NAME, "champion")
    assert mv2.tags["csl.encoder_sha256"] == mv.tags["csl.encoder_sha256"]
    listing = run([csl, "registry", "list"], project, env).stdout
    assert NAME in listing and "champion" in listing
    # now everything holds: nothing runs, and the headline reads the registry
    third = run([csl, "run"], project, env)
    assert "up to date: nothing to run" in third.stdout and f"models:/{NAME}/1  (champion)" in third.stdout

    # a fresh clone of the committed project: registration.json is not in git, so the clone registers in
    # its own new store, and its encoder is the same bytes (the CPU default run is deterministic)
    commit_all(project, env, "outputs")
    assert "runs/a/register/registration.json" not in run(["git", "ls-files"], project, env).stdout
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path, env)
    env_clone = {**env, "PYTHONPATH": str(clone / "src")}
    out = run([csl, "run"], clone, env_clone)
    assert f"registered:   models:/{NAME}/1  (champion)" in out.stdout
    assert store(clone).get_model_version_by_alias(NAME, "champion").tags["csl.encoder_sha256"] == \
        mv.tags["csl.encoder_sha256"]
    lineage = run([csl, "lineage", f"models:/{NAME}@champion"], clone, env_clone).stdout
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/prepared")
    assert f"md5 {md5}" in lineage and "code      git " in lineage and "stage     pretrain" in lineage


def test_code_change_retrains_and_reproduce_checks_the_lineage(tmp_path: Path) -> None:
    project, env = project_with_own_code(tmp_path)
    csl = str(BIN / "csl")
    run([csl, "run"], project, env)
    before = json.loads((project / "runs" / "a" / "pretrain" / "metrics.json").read_text())
    enc_before = (project / "runs" / "a" / "pretrain" / "encoder.pt").read_bytes()
    assert before["resumed_from"] is None

    # the registered encoder is rebuilt from its lineage: same commit, data, params -> the same bytes
    rep = run([csl, "reproduce", f"models:/{NAME}@champion"], project, env)
    assert "REPRODUCED: bit-identical encoder" in rep.stdout, rep.stdout
    assert "[ok] data" in rep.stdout and "[ok] parameters" in rep.stdout
    assert not list(tmp_path.glob("**/csl-reproduce-*"))  # the scratch worktree is gone
    assert "worktree" not in run(["git", "worktree", "list"], project, env).stdout.split("\n", 1)[-1]

    # a tampered registry entry is reported, exit 3
    client = store(project)
    mv = client.get_model_version_by_alias(NAME, "champion")
    client.set_model_version_tag(NAME, mv.version, "csl.encoder_sha256", "0" * 64)
    bad = run([csl, "reproduce", f"models:/{NAME}/{mv.version}"], project, env, code=3)
    assert "[FAIL] encoder file" in bad.stdout and "NOT REPRODUCED" in bad.stdout
    client.set_model_version_tag(NAME, mv.version, "csl.encoder_sha256", mv.tags["csl.encoder_sha256"])

    # training code changes (a constant in the loss): DVC reruns pretrain, and pretrain must train with the
    # new code rather than resume the old code's finished checkpoint
    nt = project / "src" / "csl" / "losses" / "nt_xent.py"
    nt.write_text(nt.read_text().replace("return F.cross_entropy(logits, targets)",
                                         "return 1.5 * F.cross_entropy(logits, targets)"))
    new_commit = commit_all(project, env, "scale the loss")
    out = run([csl, "run"], project, env)
    assert "Running stage 'pretrain@a'" in out.stdout
    after = json.loads((project / "runs" / "a" / "pretrain" / "metrics.json").read_text())
    assert after["resumed_from"] is None, "the new code resumed the old code's checkpoint"
    assert after["code_fingerprint"] != before["code_fingerprint"]
    assert after["checkpoint_dir"] != before["checkpoint_dir"]
    assert after["steps"] == before["steps"] and after["final_loss"] != before["final_loss"]
    assert (project / "runs" / "a" / "pretrain" / "encoder.pt").read_bytes() != enc_before

    # the first version claims the new commit: its code does not train the registered weights
    client = store(project)
    client.set_model_version_tag(NAME, mv.version, "csl.git_commit", new_commit)
    changed = run([csl, "reproduce", f"models:/{NAME}/{mv.version}"], project, env, code=3)
    assert "[FAIL] registered weights" in changed.stdout and "[ok] data" in changed.stdout, changed.stdout
    assert "NOT REPRODUCED" in changed.stdout


def running_runs(project: Path) -> list[str]:
    store(project)
    runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list",
                              filter_string="attributes.status = 'RUNNING'")
    return sorted(r.info.run_name for r in runs)


def test_killed_run_is_ended_killed_by_the_next_invocation(tmp_path: Path) -> None:
    project, env = project_with_own_code(tmp_path, epochs=200)
    log = tmp_path / "run.log"
    with open(log, "w") as f:  # the run's own output says when pretrain is training (the store is made by then)
        proc = subprocess.Popen([str(BIN / "csl"), "run"], cwd=project, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 300
    while "epoch 2/200" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    seen = running_runs(project)
    os.killpg(proc.pid, signal.SIGKILL)  # csl run, dvc and the stage: no handler runs
    proc.wait()
    time.sleep(1)
    assert seen == ["pipeline", "pretrain@a"] and running_runs(project) == seen
    again = run([str(BIN / "csl"), "run", "methods.a.train.epochs=1"], project, env)
    assert "marked MLflow run 'pipeline' KILLED" in again.stderr
    assert running_runs(project) == []
    store(project)
    killed = mlflow.search_runs(experiment_names=["csl-test"], output_format="list",
                                filter_string="attributes.status = 'KILLED'")
    assert sorted(r.info.run_name for r in killed) == ["pipeline", "pretrain@a"]
    assert all("no longer exists" in r.data.tags["csl.end_reason"] for r in killed)
