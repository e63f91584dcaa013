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


def set_variant(project: Path, method: dict | None = None) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["methods"][VARIANT] = {**tiny_method(epochs=2, precision="32-true", channels_last=False), **(method or {})}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


def pod_env(project: Path, node: int, port: int) -> dict[str, str]:
    env = csl_env(project)
    env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port), "PET_NNODES": "2", "PET_NODE_RANK": str(node),
                "PET_NPROC_PER_NODE": "1", "OMP_NUM_THREADS": "1"})
    return env


def assert_same_encoder(multi: dict, single: dict, rtol: float = 1e-3, atol: float = 1e-4) -> None:
    assert multi["state_dict"].keys() == single["state_dict"].keys()
    for k, v in single["state_dict"].items():
        torch.testing.assert_close(multi["state_dict"][k], v, rtol=rtol, atol=atol,
                                   msg=lambda m, k=k: f"{k} differs: {m}")


def train_one_and_two(project: Path, compare: bool = True) -> tuple[dict, dict, Path, Path]:
    """``csl pretrain`` as one process (global batch 64), then as the 2-node job (32 per process):
    both payloads and both checkpoint directories (the encoders compared unless ``compare`` is off)."""
    env = csl_env(project)
    subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, check=True, capture_output=True)
    one = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", VARIANT,
                          f"methods.{VARIANT}.train.batch_size=64"], cwd=project, env=env, capture_output=True,
                         text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    out = project / "runs" / VARIANT / "pretrain"
    single = torch.load(out / "encoder.pt", weights_only=True)
    single_ckpt = project / yaml.safe_load((out / "metrics.json").read_text())["checkpoint_dir"]
    os.remove(out / "encoder.pt")

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
    multi = torch.load(out / "encoder.pt", weights_only=True)
    multi_ckpt = project / yaml.safe_load((out / "metrics.json").read_text())["checkpoint_dir"]
    if compare:
        assert_same_encoder(multi, single)
    return single, multi, single_ckpt, multi_ckpt


def test_two_nodes_train_the_same_encoder_as_one_process(project: Path) -> None:
    set_variant(project)
    train_one_and_two(project)
    metrics = yaml.safe_load((project / "runs" / VARIANT / "pretrain" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["global_batch"] == 64

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("csl-test")
    runs = client.search_runs([exp.experiment_id], "tags.`csl.stage` = 'pretrain'")
    assert len(runs) == 2  # the single-process run and one run (rank 0's) for the 2-node job


def test_two_nodes_train_pcl_with_indices_and_clusters_as_one_process(project: Path) -> None:
    """The method contract under DDP: each process's batches carry the indices of its rows, the
    between-epochs features are gathered from both processes, and k-means gives both the prototypes
    one process computes (PCL: k-means before epoch 1, ProtoNCE during it)."""
    set_variant(project, {"method": {"name": "pcl", "queue_size": 128, "key_bn_groups": 1, "momentum_base": 0.9,
                                     "momentum_final": 0.9, "num_clusters": [4, 8], "negative_prototypes": 4,
                                     "warmup_epochs": 1, "kmeans_iterations": 5, "kmeans_redo": 2},
                          "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}})
    single, multi, one_dir, two_dir = train_one_and_two(project, compare=False)
    one = torch.load(one_dir / "last.ckpt", weights_only=True)["state_dict"]
    two = torch.load(two_dir / "last.ckpt", weights_only=True)["state_dict"]
    agreement = []
    for m in (0, 1):
        a, b = two[f"method.im2cluster_{m}"], one[f"method.im2cluster_{m}"]
        # the same seeded k-means on the same features, up to fp32 rounding: the two runs' features
        # come from other thread and batch splits, so a point on a cluster border may flip (seen
        # once in a loaded CI-like run). Features gathered in the wrong order, or from one process
        # only, agree with the single process's assignment at about chance level
        agree = float((a == b).float().mean())
        agreement.append(agree)
        assert a.shape == b.shape and agree >= 0.95, f"granularity {m}: {agree:.1%} of the assignments agree"
        # centroids are means of the features (as close as the encoders, unless a border point moved);
        # a density is a mean distance over log(count + 10) and amplifies the features' rounding (seen:
        # 0.19% apart on a loaded machine): 1%, against tens of percent for a gather bug
        rtol, atol = (1e-3, 1e-4) if agree == 1.0 else (5e-2, 5e-3)
        torch.testing.assert_close(two[f"method.centroids_{m}"], one[f"method.centroids_{m}"], rtol=rtol, atol=atol)
        torch.testing.assert_close(two[f"method.density_{m}"], one[f"method.density_{m}"], rtol=max(rtol, 1e-2),
                                   atol=max(atol, 1e-3))
    # the encoders and the queue of keys: as one process's when every point has its prototype; a
    # border point that moved changes the ProtoNCE targets of its epoch, so then within a few
    # percent (a gather bug trains against other images' prototypes)
    rtol, atol = (1e-3, 1e-4) if all(a == 1.0 for a in agreement) else (5e-2, 5e-3)
    torch.testing.assert_close(two["method.queue"], one["method.queue"], rtol=rtol, atol=atol)
    assert_same_encoder(multi, single, rtol, atol)


def test_two_nodes_train_supcon_with_labels_as_one_process(project: Path) -> None:
    """Labels reach each process's rows and are gathered with the views: SupCon on two processes
    trains the encoder one process trains."""
    set_variant(project, {"method": "supcon", "loss": {"name": "supcon", "temperature": 0.1,
                                                       "base_temperature": 0.1}})
    train_one_and_two(project)
