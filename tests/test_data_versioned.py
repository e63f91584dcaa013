"""The DVC-versioned dataset by git revision (``csl fetch-data``, the pipeline's prepare step)
against a real DVC remote on the loopback S3 server: a pushed dataset is fetched from a fresh
clone with the md5 that dvc.lock records, and unversioned data, a missing remote, objects that
were never pushed and a corrupt remote are all refused with the fix."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, make_dvc_project, make_idx_dir, tiny_params


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"
    return out.stdout


def versioned_repo(tmp_path: Path, s3: tuple[str, str, dict[str, str]], push: bool = True) -> tuple[Path, dict, str]:
    """A git + DVC project whose data/prepared is in dvc.lock and pushed to s3://<bucket>/dvc."""
    endpoint, bucket, s3_env = s3
    repo, env = make_dvc_project(tmp_path, tiny_params(make_idx_dir(tmp_path / "fmnist", 300, 100)))
    env.update(s3_env)
    dvc = str(BIN / "dvc")
    _run([dvc, "repro", "prepare"], repo, env)
    _run([dvc, "remote", "add", "-d", "storage", f"s3://{bucket}/dvc"], repo, env)
    _run([dvc, "remote", "modify", "storage", "endpointurl", endpoint], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "data v1"], repo, env)
    if push:
        _run([dvc, "push"], repo, env)
    return repo, env, _run(["git", "rev-parse", "HEAD"], repo, env).strip()


def lock_md5(repo: Path) -> str:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/prepared")


def test_fetch_by_revision_from_the_remote_in_a_fresh_clone(tmp_path: Path, s3, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from csl.cli import main
    from csl.data import load
    from csl.tracking.dvc_data import read_origin

    repo, env, commit = versioned_repo(tmp_path, s3)
    md5 = lock_md5(repo)
    for k in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_NO_ANALYTICS"):
        monkeypatch.setenv(k, env[k])
    # a fresh clone has no DVC cache: `dvc pull` gets the same md5 from the remote
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path, env)
    assert not (clone / "data" / "prepared").exists()
    _run([str(BIN / "dvc"), "pull", "data/prepared"], clone, env)
    assert lock_md5(clone) == md5
    assert json.loads((clone / "data/prepared/meta.json").read_text()) == \
        json.loads((repo / "data/prepared/meta.json").read_text())
    # the pipeline's prepare step: another fresh clone (no cache), by revision, into a bare workspace
    fresh = tmp_path / "fresh"
    _run(["git", "clone", "-q", str(repo), str(fresh)], tmp_path, env)
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(repo / "params.yaml", ws / "params.yaml")
    assert main(["--project", str(ws), "fetch-data", "--repo", str(fresh), "--rev", commit]) == 0
    origin = read_origin(ws / "data" / "prepared")
    assert origin is not None and origin.md5 == md5 and origin.rev == commit
    assert origin.remote == f"s3://{s3[1]}/dvc"
    got, want = load(ws / "data" / "prepared"), load(repo / "data" / "prepared")
    assert (got.train.images == want.train.images).all() and got.meta == want.meta
    from csl import tracking

    assert tracking.dvc_out_md5(ws, "data/prepared") == md5  # what the registry tags
    assert tracking.dvc_remote_url(ws) == f"s3://{s3[1]}/dvc"


def test_unversioned_missing_remote_unpushed_and_corrupt_data_are_refused(tmp_path: Path, s3, monkeypatch,  # type: ignore[no-untyped-def]
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import boto3

    from csl.cli import main

    repo, env, commit = versioned_repo(tmp_path, s3, push=False)
    for k in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_NO_ANALYTICS"):
        monkeypatch.setenv(k, env[k])
    ws = tmp_path / "ws"
    ws.mkdir()
    shutil.copy(repo / "params.yaml", ws / "params.yaml")

    def fetch(source: Path, rev: str = commit, path: str = "data/prepared") -> str:
        rc = main(["--project", str(ws), "fetch-data", "--repo", str(source), "--rev", rev, "--path", path])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert not (ws / "data" / "prepared").exists() and not (ws / "data" / "prepared.origin.json").exists()
        assert not [p for p in (ws / "data").rglob("*")] if (ws / "data").exists() else True  # no partial files
        return err

    fresh = tmp_path / "fresh"
    _run(["git", "clone", "-q", str(repo), str(fresh)], tmp_path, env)
    # not pushed: the objects are nowhere but in the original checkout's cache
    assert "was it 'dvc push'ed" in fetch(fresh)
    # a path git tracks but DVC does not
    assert "is not versioned by DVC" in fetch(fresh, path="dvc.yaml")
    assert "does not exist at" in fetch(fresh, path="data/other")
    assert "cannot open git revision 'nope'" in fetch(fresh, rev="nope")
    # no default remote at that revision
    _run([str(BIN / "dvc"), "remote", "default", "--unset"], repo, env)
    _run(["git", "commit", "-qam", "no remote"], repo, env)
    no_remote = _run(["git", "rev-parse", "HEAD"], repo, env).strip()
    assert "has no default DVC remote" in fetch(repo, rev=no_remote)
    # pushed, then one object overwritten in the remote: the md5 check refuses it
    _run([str(BIN / "dvc"), "push", "-r", "storage"], repo, env)
    endpoint, bucket, _ = s3
    client = boto3.client("s3", endpoint_url=endpoint)
    import hashlib

    digest = hashlib.md5((repo / "data/prepared/train_labels.npy").read_bytes()).hexdigest()
    key = f"dvc/files/md5/{digest[:2]}/{digest[2:]}"
    client.head_object(Bucket=bucket, Key=key)  # the pushed object of one file
    client.put_object(Bucket=bucket, Key=key, Body=b"tampered")
    fresh2 = tmp_path / "fresh2"
    _run(["git", "clone", "-q", str(repo), str(fresh2)], tmp_path, env)
    err = fetch(fresh2)
    assert "hash mismatch" in err, err
