"""Rendered PyTorchJobs validate against the PyTorchJob CRD schema (kubeflow/trainer
release-1.9, vendored) and the operator's webhook rules; broken jobs are caught; the committed
examples in k8s/ are what ``csl k8s render`` prints."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

from csl.k8s.render import JobSpec, render
from csl.k8s.validate import validate
from conftest import BIN, REPO, csl_env


@pytest.mark.parametrize("spec", [
    JobSpec("simclr-small"),
    JobSpec("simclr-small", nodes=1),
    JobSpec("dino-small", nodes=4, nproc_per_node=8, gpus_per_node=8, elastic=True, namespace="ml"),
])
def test_rendered_jobs_are_valid(spec: JobSpec) -> None:
    job = render(spec)
    assert validate(job) == []
    s = job["spec"]
    assert s["nprocPerNode"] == str(spec.nproc_per_node) and s["pytorchReplicaSpecs"]["Master"]["replicas"] == 1
    assert s["pytorchReplicaSpecs"].get("Worker", {"replicas": 0})["replicas"] == spec.nodes - 1
    pod = s["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["name"] == "pytorch" and c["command"][:5] == ["torchrun", "-m", "csl", "pretrain", "--variant"]
    assert f"methods.{spec.variant}.train.num_nodes={spec.nodes}" in c["command"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["volumes"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert all("value" not in e or "KEY" not in e["name"] for e in c["env"])  # credentials come from the Secret
    assert {"secretRef": {"name": "csl-credentials"}} in c["envFrom"]
    if spec.gpus_per_node:
        assert c["resources"]["limits"]["nvidia.com/gpu"] == str(spec.gpus_per_node)
    if spec.elastic:
        assert s["elasticPolicy"]["maxRestarts"] == 3


def test_schema_and_webhook_rules_catch_broken_jobs() -> None:
    good = render(JobSpec("simclr-small"))
    cases = {
        "spec.nprocPerNode: 1 is not of type 'string'": lambda j: j["spec"].__setitem__("nprocPerNode", 1),
        "Master replicas must be 1": lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"].__setitem__("replicas", 2),
        "Worker: no container named 'pytorch'":
            lambda j: j["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
            .__setitem__("name", "main"),
        "replica type 'Chief'": lambda j: j["spec"]["pytorchReplicaSpecs"].__setitem__(
            "Chief", j["spec"]["pytorchReplicaSpecs"]["Worker"]),
        "is not a DNS-1035 label": lambda j: j["metadata"].__setitem__("name", "Bad_Name"),
        "spec.runPolicy.backoffLimit: 'three' is not of type 'integer'":
            lambda j: j["spec"]["runPolicy"].__setitem__("backoffLimit", "three"),
    }
    for message, breaker in cases.items():
        job = copy.deepcopy(good)
        breaker(job)
        problems = validate(job)
        assert any(message in p for p in problems), (message, problems)


def test_committed_examples_match_the_renderer() -> None:
    for path, spec in [("pytorchjob-simclr-small.yaml", JobSpec("simclr-small")),
                       ("pytorchjob-dino-small-gpu-elastic.yaml",
                        JobSpec("dino-small", nodes=4, nproc_per_node=8, gpus_per_node=8, cpu="32", memory="256Gi",
                                elastic=True))]:
        assert yaml.safe_load((REPO / "k8s" / path).read_text()) == render(spec), path


def test_cli_render_and_validate(tmp_path: Path) -> None:
    env = csl_env(tmp_path)
    out = tmp_path / "job.yaml"
    r = subprocess.run([str(BIN / "csl"), "k8s", "render", "--variant", "swav-small", "--nodes", "3", "-o", str(out)],
                       cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(BIN / "csl"), "k8s", "validate", str(out)], cwd=REPO, env=env,
                          capture_output=True).returncode == 0
    job = yaml.safe_load(out.read_text())
    job["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = 3
    out.write_text(yaml.safe_dump(job))
    bad = subprocess.run([str(BIN / "csl"), "k8s", "validate", str(out)], cwd=REPO, env=env, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "Master replicas must be 1" in bad.stderr
    gpu = subprocess.run([str(BIN / "csl"), "k8s", "render", "--variant", "swav-small", "--gpus", "8"], cwd=REPO,
                         env=env, capture_output=True, text=True)
    assert gpu.returncode == 2 and "nproc-per-node (1) must equal gpus (8)" in gpu.stderr
