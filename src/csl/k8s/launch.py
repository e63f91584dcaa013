"""The Kubeflow pipeline's ``pytorchjob`` launcher: pretrain one variant as a self-contained
PyTorchJob and bring its encoder back into the pipeline step.

The step renders the job (``csl.k8s.render`` with ``params_yaml`` and the data's git
repository and revision, labelled with the pipeline run), creates it through the Kubernetes
API with the step's service account, streams each change of its status to the step's log,
fails the step with the operator's reason when the job fails, and on success downloads
``runs/<variant>/pretrain`` from ``storage.artifacts`` (where the job's rank 0 uploads it).
``cleanup`` (the pipeline's exit handler) deletes the run's jobs that did not succeed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from csl.errors import ConfigError, CslError
from csl.k8s import submit as k8s
from csl.k8s.render import PIPELINE_LABEL, JobSpec, label_value, render


def artifact_uri(params_yaml: str) -> str:
    """``storage.artifacts`` of these params (or CSL_ARTIFACT_URI): where the job hands back."""
    from csl.params import load_params

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "params.yaml").write_text(params_yaml)
        uri = load_params(Path(d) / "params.yaml").storage.artifact_uri
    if not uri:
        raise ConfigError("the pytorchjob launcher needs storage.artifacts (s3://BUCKET/PREFIX) in params.yaml or "
                          "CSL_ARTIFACT_URI: the job's pods hand the encoder back through it")
    return uri


def pretrain_job(params_yaml: str, variant: str, data_repo: str, data_rev: str, pipeline_run_id: str,
                 out: Path, *, image: str, nodes: int = 2, nproc_per_node: int = 1, gpus_per_node: int = 0,
                 namespace: str = "default", node_selector: dict[str, str] | None = None,
                 tolerations: list[str] | None = None, objs: Any = None, poll: float = 15.0,
                 timeout: float = 7 * 24 * 3600) -> k8s.JobStatus:
    """Run the variant's pretraining as a PyTorchJob; its ``runs/<variant>/pretrain`` ends in ``out``."""
    from csl.io import s3

    if not data_repo:
        raise ConfigError("the pytorchjob launcher needs the data's git repository (data_repo): its pods fetch "
                          "the DVC-versioned dataset themselves")
    base = artifact_uri(params_yaml)
    s3.check_bucket(base)
    suffix = label_value(pipeline_run_id)[:12].lower().strip("-") or "manual"
    spec = JobSpec(variant=variant, image=image, nodes=nodes, nproc_per_node=nproc_per_node,
                   gpus_per_node=gpus_per_node, namespace=namespace, name=f"csl-{variant}-{suffix}",
                   params_yaml=params_yaml, data_repo=data_repo, data_rev=data_rev or "HEAD",
                   pipeline_run_id=pipeline_run_id or None,
                   node_selector=tuple(sorted((node_selector or {}).items())), tolerations=tuple(tolerations or ()))
    objs = objs if objs is not None else k8s.api()
    st = k8s.submit(objs, render(spec), namespace)
    print(f"created PyTorchJob {namespace}/{st.name} ({nodes} pods x {nproc_per_node} processes)", flush=True)
    done = k8s.wait(objs, st.name, namespace, timeout, poll)  # raises JobFailedError with the reason
    from csl.stages.layout import variant_rel

    remote = f"{base.rstrip('/')}/{variant_rel(variant)}/pretrain"  # where rank 0 uploads (Layout.upload_artifacts)
    files = s3.download_dir(remote, out)
    if not (out / "encoder.pt").is_file():
        raise CslError(f"PyTorchJob {namespace}/{st.name} succeeded but {remote} has no encoder.pt")
    print(f"downloaded {len(files)} files of {remote}", flush=True)
    return done


def cleanup(pipeline_run_id: str, namespace: str = "default", objs: Any = None) -> list[str]:
    """Delete this pipeline run's PyTorchJobs that did not succeed; returns their names."""
    if not pipeline_run_id:
        return []
    objs = objs if objs is not None else k8s.api()
    jobs = k8s.list_jobs(objs, namespace, f"{PIPELINE_LABEL}={label_value(pipeline_run_id)}")
    deleted = []
    for st in jobs:
        if st.phase != "Succeeded":
            k8s.delete(objs, st.name, namespace)
            print(f"deleted PyTorchJob {namespace}/{st.name} ({st.phase})", flush=True)
            deleted.append(st.name)
    return deleted
