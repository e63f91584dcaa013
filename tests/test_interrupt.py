"""Ctrl-C during `csl pretrain`: nothing half-written, and the next invocation resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from csl.io import atomic_write_bytes
from conftest import BIN, csl_env, tiny_method

#: tiny epochs take tens of milliseconds: enough of them that the signal lands mid-training
EPOCHS = 60


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def interrupted(*a: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind


def test_sigint_mid_training_then_resume(project: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["methods"]["simclr-tiny"] = tiny_method(epochs=EPOCHS)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    env = csl_env(project)
    subprocess.run([str(BIN / "csl"), "prepare"], cwd=project, env=env, check=True, capture_output=True)
    # restore SIGINT's default in the child: a test run started in the background (nohup, `&`) inherits an
    # ignored SIGINT, and Python then installs no KeyboardInterrupt handler
    proc = subprocess.Popen([str(BIN / "csl"), "pretrain", "--variant", "simclr-tiny"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if line.startswith(f"epoch 2/{EPOCHS}"):
            break
    else:
        proc.kill()
        pytest.fail(f"training did not reach epoch 2:\n{seen}")
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    out = project / "runs" / "simclr-tiny" / "pretrain"
    assert not (out / "encoder.pt").exists()  # no output from an unfinished training
    ckpts = list((project / "checkpoints" / "simclr-tiny").glob("*/last.ckpt"))
    assert len(ckpts) == 1
    state = torch.load(ckpts[0], weights_only=True)  # a complete, loadable checkpoint
    done = state["epoch"] + 1
    assert 1 <= done < EPOCHS  # the signal may land while epoch 2 is being saved: then epoch 1 is kept
    assert not [p for p in ckpts[0].parent.iterdir() if p.name.endswith(".tmp")]

    resumed = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", "simclr-tiny"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"epoch {done + 1}/{EPOCHS}" in resumed.stdout and f"epoch 1/{EPOCHS}" not in resumed.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"].endswith("last.ckpt") and metrics["epochs"] == EPOCHS
    history = json.loads((out / "history.json").read_text())
    assert [int(r["epoch"]) for r in history] == list(range(EPOCHS))
