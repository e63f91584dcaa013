"""Faults on a (simulated) 2-node PyTorchJob: a worker process is killed with SIGKILL in the
middle of training, with real processes launched like the operator's pods.

- elastic (torchrun with ``--max-restarts``, as an ``elasticPolicy`` sets): torchrun restarts
  the group and training resumes from the last checkpoint;
- re-submission (no elasticPolicy): the job fails, is submitted again on fresh nodes (no local
  checkpoints) and resumes from the checkpoints on shared storage (S3, moto's server).

Either way the final encoder equals an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import torch
import yaml

from csl.k8s.render import JobSpec, render
from conftest import BIN, csl_env, tiny_method
from test_multinode import free_port, pod_env

VARIANT = "simclr-tiny"
EPOCHS = 12


def setup(project: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["methods"][VARIANT] = tiny_method(epochs=EPOCHS, precision="32-true", channels_last=False, batch_size=32)
    raw["storage"] = {"checkpoints": None, "artifacts": None}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=csl_env(project), check=True, capture_output=True)


def command() -> list[str]:
    job = render(JobSpec(VARIANT, nodes=2))
    cmd = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    return [str(BIN / cmd[0]), *cmd[1:]]


def launch(project: Path, port: int, extra_env: dict[str, str] | None = None) -> list[subprocess.Popen]:
    """The two pods of the rendered (non-elastic) 2-node job, as local processes."""
    pods = []
    for node in (0, 1):
        env = {**pod_env(project, node, port), **(extra_env or {})}
        pods.append(subprocess.Popen(command(), cwd=project, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
    return pods


def finish(pods: list[subprocess.Popen], timeout: float = 240) -> list[tuple[int, str]]:
    try:
        return [(p.wait(timeout=timeout), p.stdout.read()) for p in pods]  # type: ignore[union-attr]
    except subprocess.TimeoutExpired:
        for p in pods:
            for c in psutil.Process(p.pid).children(recursive=True):
                c.kill()
            p.kill()
        logs = [p.communicate()[0] for p in pods]
        raise AssertionError("the job hung:\n" + "\n-----\n".join(log[-4000:] for log in logs)) from None


def checkpoint_epoch(project: Path) -> int:
    found = list((project / "checkpoints" / VARIANT).glob("*/last.ckpt"))
    if not found:
        return -1
    try:
        return int(torch.load(found[0], weights_only=True)["epoch"])
    except Exception:
        return -1


def kill_worker_mid_training(project: Path, pod: subprocess.Popen, which: int = 0) -> int:
    """Once the checkpoint of epoch 2 exists, SIGKILL a training process of ``pod`` (a child
    torchrun started; ``which`` of them). Returns the epoch of the checkpoint at that moment."""
    deadline = time.monotonic() + 300
    while checkpoint_epoch(project) < 1:
        assert pod.poll() is None and time.monotonic() < deadline, "training never reached epoch 2"
        time.sleep(0.05)
    workers = sorted(psutil.Process(pod.pid).children(), key=lambda p: p.pid)
    epoch = checkpoint_epoch(project)
    os.kill(workers[which].pid, signal.SIGKILL)  # raises if it had already exited
    assert epoch < EPOCHS - 2, "the kill must land before the last epochs"
    return epoch


_REFERENCE: dict[str, torch.Tensor] = {}


def reference(tmp_path: Path, project: Path) -> dict[str, torch.Tensor]:
    """The uninterrupted 2-node run (the same data and config in both tests: run once)."""
    if _REFERENCE:
        return _REFERENCE
    ref = tmp_path / "ref"
    shutil.copytree(project, ref)
    for code, log in finish(launch(ref, free_port())):
        assert code == 0, log[-3000:]
    _REFERENCE.update(torch.load(ref / "runs" / VARIANT / "pretrain" / "encoder.pt", weights_only=True)["state_dict"])
    return _REFERENCE


def assert_same_encoder(project: Path, ref: dict[str, torch.Tensor]) -> dict:
    got = torch.load(project / "runs" / VARIANT / "pretrain" / "encoder.pt", weights_only=True)["state_dict"]
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-5, msg=k)
    history = json.loads((project / "runs" / VARIANT / "pretrain" / "history.json").read_text())
    assert [r["epoch"] for r in history] == list(range(EPOCHS))
    return json.loads((project / "runs" / VARIANT / "pretrain" / "metrics.json").read_text())


def test_elastic_restart_of_a_killed_worker_resumes(project: Path, tmp_path: Path) -> None:
    """One pod with 2 processes under torchrun --max-restarts (what an elasticPolicy's
    maxRestarts sets): one process is SIGKILLed, torchrun restarts the group, training resumes
    (the restarted group connects on the first try: see csl.distributed.init_after_elastic_restart).

    Two agents (two pods) restarting over one c10d rendezvous on this host recovered in some
    tries and hung in others, in torch's rendezvous; docs/scaling.md recommends re-submission
    (restartPolicy OnFailure + backoffLimit, the next test) for multi-pod jobs."""
    setup(project)
    ref = reference(tmp_path, project)
    port = free_port()
    cmd = [str(BIN / "torchrun"), "--nnodes", "1", "--nproc-per-node", "2", "--max-restarts", "3",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "csl", "pretrain", "--variant",
           VARIANT, f"methods.{VARIANT}.train.devices=2", f"methods.{VARIANT}.train.accelerator=cpu"]
    env = {**csl_env(project), "OMP_NUM_THREADS": "1"}
    pod = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed_after = kill_worker_mid_training(project, pod, which=1)
    [(code, log)] = finish([pod])
    (tmp_path / "pod.log").write_text(log)
    assert code == 0, log[-3000:]
    assert "failed (exitcode: -9)" in log  # torchrun saw the kill and restarted the group
    assert log.count("failed (exitcode") == 1  # and the restarted group came up at once
    metrics = assert_same_encoder(project, ref)
    assert metrics["resumed_from"] and killed_after >= 1


def test_resubmitted_job_resumes_from_s3_on_fresh_nodes(project: Path, tmp_path: Path, s3) -> None:
    _, bucket, s3_env = s3
    setup(project)
    ref = reference(tmp_path, project)  # local checkpoints only
    s3_env = {**s3_env, "CSL_CHECKPOINT_URI": f"s3://{bucket}/ckpt"}  # as a ConfigMap would set it
    pods = launch(project, free_port(), s3_env)
    kill_worker_mid_training(project, pods[1])
    for code, log in finish(pods):
        assert code != 0  # without elasticPolicy the job fails ...
    shutil.rmtree(project / "checkpoints")  # ... and is resubmitted on nodes without local files
    logs = finish(launch(project, free_port(), s3_env))
    for code, log in logs:
        assert code == 0, log[-3000:]
    assert f"fetched prev.ckpt, last.ckpt from s3://{bucket}/ckpt/{VARIANT}/" in logs[0][1]
    metrics = assert_same_encoder(project, ref)
    assert metrics["resumed_from"]
