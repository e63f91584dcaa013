"""The command line: help for every stage, and bad input -> a message naming it, exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, csl_env


def csl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "csl"), *args], cwd=cwd, capture_output=True, text=True,
                          env=env or csl_env(cwd), timeout=300)


def test_help(tmp_path: Path) -> None:
    out = csl("--help", cwd=tmp_path)
    assert out.returncode == 0
    for cmd in ("prepare", "pretrain", "linear-eval", "report", "run"):
        assert cmd in out.stdout
        sub = csl(cmd, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "key.path=value" in sub.stdout
    assert "--variant" in csl("pretrain", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize("args,message", [
    (["pretrain", "--variant", "ghost"], "unknown variant 'ghost'"),
    (["prepare", "data.dataset=mnist"], "'data.dataset' must be one of"),
    (["prepare", "data.sauce=x"], "unknown key 'data.sauce'"),
    (["pretrain", "--variant", "simclr-tiny", "methods.simclr-tiny.train.epochs=many"],
     "'methods.simclr-tiny.train.epochs' must be an integer"),
    (["pretrain", "--variant", "simclr-tiny", "methods.simclr-tiny.encoder.name=vgg"],
     "unknown encoder 'vgg'"),
])
def test_bad_input_exits_2_with_message(project: Path, args: list[str], message: str) -> None:
    out = csl(*args, cwd=project)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and out.stderr.startswith("csl: error:")


def test_missing_data_and_corrupt_data(project: Path, tmp_path: Path) -> None:
    out = csl("prepare", "data.source=" + str(tmp_path / "nowhere"), cwd=project)
    assert out.returncode == 2 and "does not hold the Fashion-MNIST IDX files" in out.stderr
    assert "apt-get install dataset-fashion-mnist" in out.stderr
    raw = yaml.safe_load((project / "params.yaml").read_text())
    f = Path(raw["data"]["source"]) / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:200])
    out = csl("prepare", cwd=project)
    assert out.returncode == 2 and str(f) in out.stderr
    assert not (project / "data" / "prepared").exists()  # nothing half-written


def test_params_prints_resolved_config(project: Path) -> None:
    out = csl("params", "methods.simclr-tiny.loss.temperature=0.3", cwd=project)
    assert out.returncode == 0
    resolved = yaml.safe_load(out.stdout)
    assert resolved["methods"]["simclr-tiny"]["loss"] == {"name": "nt_xent", "temperature": 0.3}
    assert resolved["methods"]["simclr-tiny"]["augment"]["flip_p"] == 0.5  # defaults made explicit


def test_unreachable_tracking_server_exits_2(project: Path) -> None:
    env = csl_env(project)
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"
    env["CSL_TRACKING_RETRIES"] = "1"
    out = csl("prepare", cwd=project, env=env)
    assert out.returncode == 2 and "is unreachable" in out.stderr


def test_methods_listing_and_show(project: Path) -> None:
    from csl.methods import METHODS

    out = csl("methods", cwd=project)
    assert out.returncode == 0
    for name in METHODS:
        assert name in out.stdout
    assert "simclr-tiny          simclr: simclr | small_cnn | mlp_projection | cosine | nt_xent" in out.stdout
    show = csl("methods", "show", "byol", cwd=project)
    doc = yaml.safe_load(show.stdout)
    assert doc["defaults"]["momentum_base"] == 0.996 and "nt_xent" in doc["accepts_losses"]
    variant = yaml.safe_load(csl("methods", "show", "simclr-tiny", cwd=project).stdout)
    assert variant["simclr-tiny"]["loss"] == {"name": "nt_xent", "temperature": 0.5}
    bad = csl("methods", "show", "nope", cwd=project)
    assert bad.returncode == 2 and "valid names: barlow_twins, byol, clae, cpc, dim, dino, imix, imix_moco" in bad.stderr
