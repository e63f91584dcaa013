"""``train.init_from``: a run warm-started from a registered encoder starts from its weights, keys its
checkpoints on the parent's sha256, names the parent version in its lineage, and is pretrained again
when the alias moves to another encoder (real MLflow registry, SQLite)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch
import yaml

from conftest import BIN, csl_env, tiny_method
from csl.encoders.saved import read_payload
from csl.params import load_params
from csl.stages.pretrain import check_parents
from csl.tracking.model_registry import file_sha256

NAME = "csl-encoder-fashion-mnist-simclr-tiny"


def csl(project: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / "csl"), *args], cwd=project, env=csl_env(project), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def weights(payload: dict) -> dict[str, torch.Tensor]:
    """The learned parameters (batch-norm running statistics move in any training step)."""
    return {k: v for k, v in payload["state_dict"].items() if "running_" not in k and "num_batches" not in k}


def test_warm_start_from_the_champion(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    child = tiny_method(epochs=1)
    child["train"]["init_from"] = f"models:/{NAME}@champion"
    child["optimizer"]["lr"] = 1e-9  # a step that moves nothing measurable: the result is the start
    params["methods"]["child"] = child
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    csl(project, "prepare")
    for stage in ("pretrain", "features", "linear-eval", "register"):
        csl(project, stage, "--variant", "simclr-tiny")
    parent_file = project / "runs" / "simclr-tiny" / "pretrain" / "encoder.pt"

    csl(project, "pretrain", "--variant", "child")
    parent, warm = read_payload(parent_file), read_payload(project / "runs" / "child" / "pretrain" / "encoder.pt")
    for k, v in weights(parent).items():
        assert torch.allclose(weights(warm)[k], v, atol=1e-6), k  # started from the parent's weights
    assert warm["parent"] == {"uri": f"models:/{NAME}@champion", "model_version": f"models:/{NAME}/1",
                              "sha256": file_sha256(parent_file)}
    csl(project, "features", "--variant", "child")
    csl(project, "linear-eval", "--variant", "child")
    csl(project, "register", "--variant", "child")
    out = csl(project, "lineage", "models:/csl-encoder-fashion-mnist-child/1").stdout
    assert f"parent    models:/{NAME}/1 (models:/{NAME}@champion)  encoder sha256 {file_sha256(parent_file)[:16]}" in out

    # the parent is no longer the encoder the child was trained from (here a file parent is retrained; an
    # alias that moves is resolved and compared the same way): csl run removes the child's encoder
    p = load_params(project / "params.yaml", ['variants=["simclr-tiny", "child"]',
                                              "methods.child.train.init_from=runs/simclr-tiny/pretrain/encoder.pt"])
    csl(project, "pretrain", "--variant", "child", "methods.child.train.init_from=runs/simclr-tiny/pretrain/encoder.pt")
    assert check_parents(p, project) == []
    csl(project, "pretrain", "--variant", "simclr-tiny", "methods.simclr-tiny.train.seed=5")
    lines = check_parents(p, project)
    assert len(lines) == 1 and lines[0].startswith("pretrain@child: train.init_from") and "pretraining it again" in lines[0]
    assert not (project / "runs" / "child" / "pretrain" / "encoder.pt").exists()  # DVC sees it stale


def test_a_parent_of_another_architecture_is_refused(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    csl(project, "prepare")
    csl(project, "pretrain", "--variant", "simclr-tiny")
    wide = tiny_method(epochs=1)
    wide["encoder"]["widths"] = [16, 32]
    wide["train"]["init_from"] = "runs/simclr-tiny/pretrain/encoder.pt"
    params["methods"]["wide"] = wide
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    r = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", "wide"], cwd=project, env=csl_env(project),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "train.init_from: the parent encoder does not fit encoder 'small_cnn'" in r.stderr
