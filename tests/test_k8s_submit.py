"""``csl k8s submit | status | delete`` through the real Kubernetes client against a thin fake
of the Kubernetes API on loopback (the only part of a cluster that cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from csl.cli import main
from csl.k8s.render import JobSpec, render
from fake_k8s import FAILURE, FakeKubernetes

PREFIX = "/apis/kubeflow.org/v1/namespaces"


@pytest.fixture
def fake():  # type: ignore[no-untyped-def]
    f = FakeKubernetes()
    yield f
    f.close()


def params_file(tmp_path: Path) -> Path:
    from conftest import REPO

    p = tmp_path / "params.yaml"
    p.write_text((REPO / "params.yaml").read_text())
    return p


def test_submit_creates_the_rendered_job_and_follows_it_to_success(fake: FakeKubernetes, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    kc = fake.kubeconfig(tmp_path / "kubeconfig")
    rc = main(["--params", str(params_file(tmp_path)), "k8s", "submit", "--variant", "simclr-small", "--nodes", "3",
               "--namespace", "ml", "--kubeconfig", str(kc), "--poll", "0.01"])
    out = capsys.readouterr().out
    assert rc == 0, out
    posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(posts) == 1 and posts[0][1] == f"{PREFIX}/ml/pytorchjobs"
    assert posts[0][2] == render(JobSpec("simclr-small", nodes=3, namespace="ml"))  # exactly the rendered job
    lines = out.strip().splitlines()
    assert lines[0] == "created PyTorchJob ml/csl-pretrain-simclr-small"
    assert lines[1].startswith("ml/csl-pretrain-simclr-small: Created")
    assert "Running" in lines[2] and "Master: 1 active" in lines[2] and "Worker: 1 active" in lines[2]
    assert "Succeeded (PyTorchJobSucceeded: done)" in lines[3]
    # a second submission of the same name is refused with the fix
    rc = main(["--params", str(params_file(tmp_path)), "k8s", "submit", "--variant", "simclr-small",
               "--namespace", "ml", "--kubeconfig", str(kc), "--no-wait"])
    err = capsys.readouterr().err
    assert rc == 2 and "already exists; delete it (csl k8s delete NAME) or pass --name" in err
    assert main(["k8s", "delete", "csl-pretrain-simclr-small", "--namespace", "ml", "--kubeconfig", str(kc)]) == 0
    assert fake.jobs == {}


def test_a_failed_job_fails_the_command_with_the_operator_reason(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeKubernetes(FAILURE)
    try:
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump(render(JobSpec("dino-small", nodes=2, elastic=True))))
        rc = main(["k8s", "submit", "-f", str(job), "--namespace", "team", "--kubeconfig",
                   str(fake.kubeconfig(tmp_path / "kc")), "--poll", "0.01"])
        err = capsys.readouterr().err
        assert rc == 2
        assert "PyTorchJob team/csl-pretrain-dino-small failed: PyTorchJobFailed: PyTorchJob csl-pretrain-x is " \
               "failed because 1 Worker replica(s) failed." in err
        assert "kubectl logs -n team csl-pretrain-dino-small-master-0" in err
        assert main(["k8s", "status", "csl-pretrain-dino-small", "--namespace", "team", "--kubeconfig",
                     str(fake.kubeconfig(tmp_path / "kc"))]) == 2
    finally:
        fake.close()


def test_an_invalid_file_is_refused_before_the_api_is_called(fake: FakeKubernetes, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    job = render(JobSpec("simclr-small"))
    job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["name"] = "trainer"
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    rc = main(["k8s", "submit", "-f", str(path), "--kubeconfig", str(fake.kubeconfig(tmp_path / "kc"))])
    assert rc == 2 and "pytorch" in capsys.readouterr().err
    assert not [r for r in fake.requests if r[0] == "POST"]


def test_unreachable_or_unconfigured_cluster(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubernetes()
    kc = fake.kubeconfig(tmp_path / "kc")
    fake.close()  # nothing listens there any more
    assert main(["k8s", "status", "x", "--kubeconfig", str(kc)]) == 2
    assert "Kubernetes API server is unreachable" in capsys.readouterr().err
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["k8s", "status", "x"]) == 2
    assert "no Kubernetes cluster configured" in capsys.readouterr().err
