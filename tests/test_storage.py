"""Checkpoints and artifacts on S3, against a real S3-protocol server on loopback (moto's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import boto3
import pytest
import torch
import yaml

from csl.errors import StorageError
from csl.io import s3 as csl_s3
from csl.methods.config import parse_method
from csl.train.fit import fit
from conftest import BIN, csl_env, tiny_method
from test_train import CrashAtEpoch


def test_round_trip_with_credentials_and_endpoint_from_the_environment(s3, tmp_path: Path) -> None:
    endpoint, bucket, _ = s3
    src = tmp_path / "a.bin"
    src.write_bytes(b"x" * 1000)
    csl_s3.check_bucket(f"s3://{bucket}/p")
    csl_s3.upload(src, f"s3://{bucket}/p/a.bin")
    assert csl_s3.exists(f"s3://{bucket}/p/a.bin") and not csl_s3.exists(f"s3://{bucket}/p/b.bin")
    csl_s3.copy(csl_s3.S3Path.parse(f"s3://{bucket}/p/a.bin"), csl_s3.S3Path.parse(f"s3://{bucket}/p/b.bin"))
    csl_s3.download(f"s3://{bucket}/p/b.bin", tmp_path / "out" / "b.bin")
    assert (tmp_path / "out" / "b.bin").read_bytes() == b"x" * 1000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["b.bin"]  # no temporary left
    # the object really is on the server (read with a plain boto3 client)
    body = boto3.client("s3", endpoint_url=endpoint).get_object(Bucket=bucket, Key="p/a.bin")["Body"].read()
    assert body == b"x" * 1000


def test_endpoint_from_mlflow_variable(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint, bucket, _ = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)
    csl_s3.check_bucket(f"s3://{bucket}")


def test_clear_errors(s3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    endpoint, bucket, _ = s3
    with pytest.raises(StorageError, match="bucket 'no-such-bucket' does not exist"):
        csl_s3.check_bucket("s3://no-such-bucket/x")
    with pytest.raises(StorageError, match="not an S3 URI"):
        csl_s3.S3Path.parse("/local/path")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageError, match="no S3 credentials. Set AWS_ACCESS_KEY_ID"):
        csl_s3.check_bucket(f"s3://{bucket}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{dead}")
    with pytest.raises(StorageError, match="unreachable.*AWS_ENDPOINT_URL_S3"):
        csl_s3.check_bucket(f"s3://{bucket}")


def _state(ckpt: Path) -> dict:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_checkpoints_on_s3_resume_on_a_fresh_node(s3, prepared, tmp_path: Path) -> None:
    """A job restarted on a node without the local checkpoints resumes from S3 and ends where
    an uninterrupted run ends."""
    _, bucket, _ = s3
    remote = f"s3://{bucket}/ckpt/simclr"
    cfg = parse_method(tiny_method(epochs=3, precision="32-true", channels_last=False), "m")
    full = fit(cfg, prepared, tmp_path / "full")

    with pytest.raises(RuntimeError, match="simulated crash"):  # node A dies at the start of epoch 3
        fit(cfg, prepared, tmp_path / "node-a", remote_ckpt=remote, extra_callbacks=[CrashAtEpoch(2)])
    client = boto3.client("s3")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="ckpt/")["Contents"]}
    assert keys == {"ckpt/simclr/last.ckpt", "ckpt/simclr/prev.ckpt"}
    remote_last = client.get_object(Bucket=bucket, Key="ckpt/simclr/last.ckpt")["Body"].read()
    assert remote_last == (tmp_path / "node-a" / "last.ckpt").read_bytes()
    prev = tmp_path / "prev.ckpt"
    prev.write_bytes(client.get_object(Bucket=bucket, Key="ckpt/simclr/prev.ckpt")["Body"].read())
    assert torch.load(prev, weights_only=True)["epoch"] == 0  # the one before: after epoch 1

    resumed = fit(cfg, prepared, tmp_path / "node-b", remote_ckpt=remote)  # empty local directory
    assert resumed.summary["resumed_from"] == str(tmp_path / "node-b" / "last.ckpt")
    assert [r["epoch"] for r in resumed.history] == [0, 1, 2]
    for k, v in full.encoder_state.items():
        torch.testing.assert_close(resumed.encoder_state[k], v, msg=k)


def test_pretrain_uploads_artifacts_and_refuses_an_unreachable_bucket(s3, project: Path) -> None:
    _, bucket, env_s3 = s3
    env = {**csl_env(project), **env_s3}
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["storage"] = {"checkpoints": None, "artifacts": None}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, check=True, capture_output=True)
    bad = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", "simclr-tiny",
                          "storage.checkpoints=s3://missing-bucket/c"], cwd=project, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "bucket 'missing-bucket' does not exist" in bad.stderr and "storage" in bad.stderr
    assert not (project / "runs").exists() and not (project / "checkpoints").exists()  # nothing half-written

    raw["storage"] = {"artifacts": f"s3://{bucket}/art"}
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    ok = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", "simclr-tiny"], cwd=project,
                        env={**env, "CSL_CHECKPOINT_URI": f"s3://{bucket}/ck"}, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-3000:]
    client = boto3.client("s3")
    out = project / "runs" / "simclr-tiny" / "pretrain"
    for name in ("encoder.pt", "history.json", "metrics.json"):
        body = client.get_object(Bucket=bucket, Key=f"art/runs/simclr-tiny/pretrain/{name}")["Body"].read()
        assert body == (out / name).read_bytes()
    ck = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="ck/")["Contents"]]
    assert ck == [f"ck/simclr-tiny/{Path(yaml.safe_load((out / 'metrics.json').read_text())['checkpoint_dir']).name}"
                  "/last.ckpt"]
