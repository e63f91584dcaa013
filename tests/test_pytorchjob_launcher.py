"""The pipeline's ``pytorchjob`` launcher (``csl.k8s.launch``) against the thin fake Kubernetes
API, with the created job's two pods executed as local processes exactly as the manifest says
(its ``sh -c`` command and env, an empty workspace each, the operator's ``PET_*`` variables):
they write params.yaml, fetch the DVC-versioned data from the loopback S3 remote, train with
torchrun, and rank 0 uploads the encoder, which the launcher brings back. A failed job fails the
step with the operator's reason, and the exit handler's cleanup deletes it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import BIN, csl_env, free_port, tiny_method, tiny_params
from fake_k8s import FAILURE, FakeKubernetes
from test_data_versioned import lock_md5, versioned_repo

VARIANT = "simclr-tiny"


def run_pods(job: dict, tmp: Path, extra_env: dict[str, str]) -> list[tuple[int, str]]:
    """The job's Master and Worker pods as local processes (what the operator would start)."""
    port = free_port()
    replicas = job["spec"]["pytorchReplicaSpecs"]
    pods = []
    for node, role in enumerate(["Master"] + ["Worker"] * replicas.get("Worker", {}).get("replicas", 0)):
        container = replicas[role]["template"]["spec"]["containers"][0]
        assert container["name"] == "pytorch"
        assert {"name": "workspace", "emptyDir": {}} in replicas[role]["template"]["spec"]["volumes"]
        workdir = tmp / f"pod-{node}"
        workdir.mkdir()
        env = {**csl_env(tmp), **extra_env, **{e["name"]: e["value"] for e in container["env"]},
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PET_MASTER_ADDR": "127.0.0.1",
               "PET_MASTER_PORT": str(port), "PET_NNODES": str(1 + replicas.get("Worker", {}).get("replicas", 0)),
               "PET_NODE_RANK": str(node), "PET_NPROC_PER_NODE": job["spec"]["nprocPerNode"], "OMP_NUM_THREADS": "1"}
        pods.append(subprocess.Popen(container["command"], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
    try:
        return [(p.wait(timeout=240), p.stdout.read()) for p in pods]  # type: ignore[union-attr]
    except subprocess.TimeoutExpired:
        import psutil

        for p in pods:
            for c in psutil.Process(p.pid).children(recursive=True):
                c.kill()
            p.kill()
        return [(-9, p.communicate()[0]) for p in pods]


def test_launcher_runs_the_job_and_brings_the_encoder_back(tmp_path: Path, s3, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from csl.k8s import launch
    from csl.k8s import submit as k8s

    endpoint, bucket, s3_env = s3
    repo, env, commit = versioned_repo(tmp_path, s3)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["methods"] = {VARIANT: tiny_method(precision="32-true", channels_last=False, batch_size=32)}
    params["storage"] = {"checkpoints": f"s3://{bucket}/ckpt", "artifacts": f"s3://{bucket}/artifacts"}
    params_yaml = yaml.safe_dump(params)
    db = tmp_path / "mlflow.db"
    pod_env = {**s3_env, "PATH": f"{BIN}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
               **{k: env[k] for k in ("DVC_SITE_CACHE_DIR", "DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR")}}
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{db}")  # the store exists before the pods (a server, on a cluster)
    mlflow.search_experiments()
    results: list[list[tuple[int, str]]] = []
    fake = FakeKubernetes()
    fake.on_create = lambda job: results.append(run_pods(job, tmp_path, pod_env))  # before the POST returns
    try:
        kc = fake.kubeconfig(tmp_path / "kubeconfig")
        objs = k8s.api(str(kc))
        out = tmp_path / "step" / "encoder"
        st = launch.pretrain_job(params_yaml, VARIANT, str(repo), commit, "run-0123456789abcdef", out,
                                 image="csl:test", nodes=2, namespace="ml", objs=objs, poll=0.01)
        assert st.phase == "Succeeded"
        assert [rc for rc, _ in results[0]] == [0, 0], "\n".join(log[-3000:] for _, log in results[0])
        posted = next(b for m, _, b in fake.requests if m == "POST")
        assert posted["metadata"]["labels"]["csl/pipeline-run"] == "run-0123456789abcdef"
        assert posted["metadata"]["name"] == "csl-simclr-tiny-run-01234567"
        env_vars = {e["name"]: e["value"] for e in
                    posted["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["env"]}
        assert yaml.safe_load(env_vars["CSL_PARAMS_YAML"]) == params and env_vars["CSL_DATA_REV"] == commit
        # the encoder the job's rank 0 uploaded is what the step got
        import boto3

        body = boto3.client("s3", endpoint_url=endpoint).get_object(
            Bucket=bucket, Key=f"artifacts/runs/{VARIANT}/pretrain/encoder.pt")["Body"].read()
        assert (out / "encoder.pt").read_bytes() == body
        payload = torch.load(out / "encoder.pt", weights_only=True)
        assert payload["format"] == "csl-encoder-v1" and payload["variant"] == VARIANT and payload["state_dict"]
        assert (out / "history.json").is_file() and (out / "metrics.json").is_file()
        # the job's pretrain run carries the pipeline run and the fetched data's md5
        runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list")
        pre = [r for r in runs if r.info.run_name == f"pretrain@{VARIANT}"]
        assert len(pre) == 1 and pre[0].data.tags["csl.data.dvc_md5"] == lock_md5(repo)
        parent = next(r for r in runs if r.info.run_id == pre[0].data.tags["mlflow.parentRunId"])
        assert parent.data.tags["csl.pipeline_run_id"] == "run-0123456789abcdef"
        # the exit handler leaves a succeeded job alone
        assert launch.cleanup("run-0123456789abcdef", "ml", objs) == []
        assert fake.jobs
    finally:
        fake.close()


def test_a_failed_job_fails_the_step_and_the_exit_handler_deletes_it(tmp_path: Path, s3) -> None:  # type: ignore[no-untyped-def]
    from csl.errors import ConfigError, JobFailedError
    from csl.k8s import launch
    from csl.k8s import submit as k8s

    _, bucket, _ = s3
    params = {**tiny_params(tmp_path), "storage": {"checkpoints": None, "artifacts": f"s3://{bucket}/artifacts"}}
    fake = FakeKubernetes(FAILURE)
    try:
        objs = k8s.api(str(fake.kubeconfig(tmp_path / "kubeconfig")))
        with pytest.raises(JobFailedError, match="1 Worker replica\\(s\\) failed"):
            launch.pretrain_job(yaml.safe_dump(params), VARIANT, "https://git.example.com/d.git", "v1", "run-9",
                                tmp_path / "out", image="csl:test", namespace="ml", objs=objs, poll=0.01,
                                gpus_per_node=8, nproc_per_node=8, node_selector={"gpu": "h100"},
                                tolerations=["dedicated"])
        assert not (tmp_path / "out").exists()
        from csl.k8s.validate import validate

        posted = next(b for m, _, b in fake.requests if m == "POST")
        assert validate(posted) == []
        pod = posted["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
        assert pod["nodeSelector"] == {"gpu": "h100"}
        assert [t["key"] for t in pod["tolerations"]] == ["nvidia.com/gpu", "dedicated"]
        assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert launch.cleanup("run-9", "ml", objs) == ["csl-simclr-tiny-run-9"]
        assert fake.jobs == {}
        assert launch.cleanup("other-run", "ml", objs) == []
        # without storage.artifacts the job could not hand anything back: refused before creating it
        n = len(fake.requests)
        with pytest.raises(ConfigError, match="needs storage.artifacts"):
            launch.pretrain_job(yaml.safe_dump({**params, "storage": {"checkpoints": None, "artifacts": None}}), VARIANT,
                                "https://git.example.com/d.git", "v1", "run-9", tmp_path / "out", image="csl:test",
                                namespace="ml", objs=objs)
        assert len(fake.requests) == n
    finally:
        fake.close()
