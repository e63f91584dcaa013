"""A simulated 2-node PyTorchJob: two local processes launched like the operator's pods
(MASTER_ADDR/PORT, PET_NNODES=2, PET_NODE_RANK, PET_NPROC_PER_NODE=1, the container's
``torchrun -m csl pretrain`` command) train to the same encoder as one process with the same
global batch, and rank 0 alone writes the outputs and the MLflow run."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import torch
import yaml

from csl.k8s.render import JobSpec, render
from conftest import BIN, csl_env, tiny_method

VARIANT = "simclr-tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_variant(project: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["methods"][VARIANT] = tiny_method(epochs=2, precision="32-true", channels_last=False)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


def pod_env(project: Path, node: int, port: int) -> dict[str, str]:
    env = csl_env(project)
    env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port), "PET_NNODES": "2", "PET_NODE_RANK": str(node),
                "PET_NPROC_PER_NODE": "1", "OMP_NUM_THREADS": "1"})
    return env


def test_two_nodes_train_the_same_encoder_as_one_process(project: Path) -> None:
    set_variant(project)
    env = csl_env(project)
    subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, check=True, capture_output=True)
    one = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", VARIANT,
                          f"methods.{VARIANT}.train.batch_size=64"], cwd=project, env=env, capture_output=True,
                         text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    single = torch.load(project / "runs" / VARIANT / "pretrain" / "encoder.pt", weights_only=True)
    os.remove(project / "runs" / VARIANT / "pretrain" / "encoder.pt")

    port = free_port()
    # the rendered manifest's container command; torchrun reads the PET_* variables the operator sets
    job = render(JobSpec(VARIANT, nodes=2))
    command = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"]
    cmd = [str(BIN / command[0]), *command[1:], f"methods.{VARIANT}.train.batch_size=32"]
    pods = [subprocess.Popen(cmd, cwd=project, env=pod_env(project, node, port), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for node in (0, 1)]
    logs = [p.communicate(timeout=600)[0] for p in pods]
    for p, log in zip(pods, logs):
        assert p.returncode == 0, log[-3000:]
    multi = torch.load(project / "runs" / VARIANT / "pretrain" / "encoder.pt", weights_only=True)
    assert multi["state_dict"].keys() == single["state_dict"].keys()
    for k, v in single["state_dict"].items():
        torch.testing.assert_close(multi["state_dict"][k], v, rtol=1e-3, atol=1e-4, msg=f"{k} differs")
    metrics = yaml.safe_load((project / "runs" / VARIANT / "pretrain" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_batch"] == 64

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("csl-test")
    runs = client.search_runs([exp.experiment_id], "tags.`csl.stage` = 'pretrain'")
    assert len(runs) == 2  # the single-process run and one run (rank 0's) for the 2-node job

