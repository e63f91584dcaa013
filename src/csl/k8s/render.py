"""A PyTorchJob (``kubeflow.org/v1``, Training Operator 1.9) for ``csl pretrain``.

One Master and ``nodes - 1`` Workers, each pod running the container ``pytorch`` with
``torchrun -m csl pretrain --variant V`` (torchrun reads the ``PET_*`` variables the operator
sets; Lightning then sees a TorchElastic environment), ``nprocPerNode`` as an explicit string,
CPU/memory/GPU requests and limits, a memory-backed ``/dev/shm``, MLflow and S3 settings from a
ConfigMap and a Secret (never in the manifest), a non-root security context, restart policy
``OnFailure`` with a backoff limit, and the project on a shared volume so that a restarted
pod resumes from the last checkpoint. ``elastic=True`` adds an ``elasticPolicy`` whose
``maxRestarts`` lets torchrun restart the group after a worker dies.

Self-contained jobs (the Kubeflow pipeline's ``pytorchjob`` launcher): with ``params_yaml``
and ``data_repo`` set there is no shared volume; each pod writes ``params.yaml`` from the
environment, fetches the DVC-versioned dataset at ``data_rev`` (``csl fetch-data``, verified),
then runs torchrun; checkpoints and the encoder go through ``storage`` in S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from csl.errors import ConfigError


@dataclass(frozen=True)
class JobSpec:
    variant: str
    image: str = "ghcr.io/csl-project/csl:latest"
    nodes: int = 2
    nproc_per_node: int = 1
    gpus_per_node: int = 0
    cpu: str = "4"
    memory: str = "16Gi"
    shm: str = "2Gi"
    elastic: bool = False
    max_restarts: int = 3
    backoff_limit: int = 3
    pvc: str = "csl-workspace"
    config_map: str = "csl-settings"
    secret: str = "csl-credentials"
    namespace: str | None = None
    name: str | None = None
    params_yaml: str | None = None  # self-contained job: params.yaml text ...
    data_repo: str | None = None  # ... and the git repository + revision of the DVC-versioned data
    data_rev: str = "HEAD"
    pipeline_run_id: str | None = None  # label + CSL_PIPELINE_RUN_ID (lineage; cleanup by the exit handler)
    node_selector: tuple[tuple[str, str], ...] = ()  # e.g. (("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3"),)
    tolerations: tuple[str, ...] = ()  # taint keys tolerated (operator Exists, effect NoSchedule)

    def validate(self) -> None:
        if self.nodes < 1 or self.nproc_per_node < 1 or self.gpus_per_node < 0 or self.max_restarts < 0:
            raise ConfigError("nodes and nproc-per-node must be >= 1; gpus and max-restarts >= 0")
        if bool(self.params_yaml) != bool(self.data_repo):
            raise ConfigError("a self-contained job needs both params_yaml and data_repo")
        if self.gpus_per_node and self.gpus_per_node != self.nproc_per_node:
            raise ConfigError(f"with GPUs, run one process per GPU: nproc-per-node ({self.nproc_per_node}) must "
                              f"equal gpus ({self.gpus_per_node})")

    @property
    def job_name(self) -> str:
        name = self.name or f"csl-pretrain-{self.variant}"
        name = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].rstrip("-")
        return name if name[:1].isalpha() else f"csl-{name}"[:63]


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters of [A-Za-z0-9._-], alphanumeric ends)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")


PIPELINE_LABEL = "csl/pipeline-run"


def _pod(spec: JobSpec) -> dict[str, Any]:
    v = spec.variant
    accelerator = "gpu" if spec.gpus_per_node else "cpu"
    command = ["torchrun", "-m", "csl", "pretrain", "--variant", v,
               f"methods.{v}.train.num_nodes={spec.nodes}", f"methods.{v}.train.devices={spec.nproc_per_node}",
               f"methods.{v}.train.accelerator={accelerator}", f"methods.{v}.train.progress_bar=false"]
    env = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    workspace: dict[str, Any] = {"persistentVolumeClaim": {"claimName": spec.pvc}}
    if spec.params_yaml:
        env += [{"name": "CSL_PARAMS_YAML", "value": spec.params_yaml},
                {"name": "CSL_DATA_REPO", "value": spec.data_repo or ""},
                {"name": "CSL_DATA_REV", "value": spec.data_rev}]
        command = ["sh", "-c", 'printf "%s" "$CSL_PARAMS_YAML" > params.yaml && '
                   'csl fetch-data --no-track --repo "$CSL_DATA_REPO" --rev "$CSL_DATA_REV" && exec "$@"', "csl-job", *command]
        workspace = {"emptyDir": {}}
    if spec.pipeline_run_id:
        env.append({"name": "CSL_PIPELINE_RUN_ID", "value": spec.pipeline_run_id})
    limits: dict[str, str] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus_per_node:
        limits["nvidia.com/gpu"] = str(spec.gpus_per_node)
    container = {
        "name": "pytorch",  # the operator's webhook requires this name
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "workingDir": "/workspace",
        "command": command,
        "env": env,
        "envFrom": [{"configMapRef": {"name": spec.config_map}},  # MLFLOW_TRACKING_URI, MLFLOW_S3_ENDPOINT_URL
                    {"secretRef": {"name": spec.secret}}],  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
        "resources": {"requests": dict(limits), "limits": limits},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                         {"name": "workspace", "mountPath": "/workspace"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod: dict[str, Any] = {
        "metadata": {"labels": {"app.kubernetes.io/name": "csl", "csl/variant": v}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
            "containers": [container],
            "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm}},
                        {"name": "workspace", **workspace}],
        },
    }
    if spec.pipeline_run_id:
        pod["metadata"]["labels"][PIPELINE_LABEL] = label_value(spec.pipeline_run_id)
    keys = (("nvidia.com/gpu",) if spec.gpus_per_node else ()) + tuple(spec.tolerations)
    if keys:
        pod["spec"]["tolerations"] = [{"key": k, "operator": "Exists", "effect": "NoSchedule"}
                                      for k in dict.fromkeys(keys)]
    if spec.node_selector:
        pod["spec"]["nodeSelector"] = dict(spec.node_selector)
    return pod


def render(spec: JobSpec) -> dict[str, Any]:
    """The PyTorchJob manifest as a plain dict (``yaml.safe_dump`` it)."""
    spec.validate()
    replicas: dict[str, Any] = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": _pod(spec)}}
    if spec.nodes > 1:
        replicas["Worker"] = {"replicas": spec.nodes - 1, "restartPolicy": "OnFailure", "template": _pod(spec)}
    job: dict[str, Any] = {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": spec.job_name, "labels": {"app.kubernetes.io/name": "csl", "csl/variant": spec.variant}},
        "spec": {
            "nprocPerNode": str(spec.nproc_per_node),  # a string in the CRD; "auto" would start one per core
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": spec.backoff_limit},
            "pytorchReplicaSpecs": replicas,
        },
    }
    if spec.namespace:
        job["metadata"]["namespace"] = spec.namespace
    if spec.pipeline_run_id:
        job["metadata"]["labels"][PIPELINE_LABEL] = label_value(spec.pipeline_run_id)
    if spec.elastic:
        job["spec"]["elasticPolicy"] = {"minReplicas": spec.nodes, "maxReplicas": spec.nodes,
                                        "maxRestarts": spec.max_restarts, "rdzvBackend": "c10d"}
    return job
