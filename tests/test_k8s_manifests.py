"""k8s/mlflow (MLflow server: PostgreSQL backend, S3 artifact proxy, credentials from Secrets)
and k8s/kfp (the pipeline's service account, RBAC and settings) render with ``kubectl
kustomize`` and validate offline against the Kubernetes 1.32 schemas (strict: unknown fields
fail); the settings and RBAC match what the pipeline and the launcher use."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from conftest import REPO

# `make test` installs kubectl when it is missing (scripts/ensure-kubectl.sh): in CI these tests run or fail,
# they never skip; elsewhere (a bare pytest) a missing kubectl skips them with the way to get it
pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None and not os.environ.get("CI"),
                                reason="kubectl (for kustomize) is not installed: run scripts/ensure-kubectl.sh")
K8S_VERSION = "1.32.0"


def render(directory: str) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(REPO / "k8s" / directory)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def validate(docs: list[dict[str, Any]]) -> None:
    import kubernetes_validate

    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    import re

    # the exact name, or a kustomize-generated one (name + "-" + content hash)
    found = [d for d in docs if d["kind"] == kind and (name is None or re.fullmatch(
        rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"]))]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in docs])
    return found[0]


def test_the_validator_rejects_a_wrong_manifest() -> None:
    import kubernetes_validate

    docs = render("mlflow")
    bad = yaml.safe_load(yaml.safe_dump(by_kind(docs, "Deployment")))
    bad["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_mlflow_server_manifests() -> None:
    docs = render("mlflow")
    validate(docs)
    assert {d["metadata"]["namespace"] for d in docs} == {"mlflow"}
    dep = by_kind(docs, "Deployment", "mlflow")
    assert dep["metadata"]["name"] == "mlflow"
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "ghcr.io/csl-project/csl-mlflow:3.17.2"
    args = c["args"]
    # the driver named: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which the image (psycopg2) lacks;
    # tests/test_serving.py runs the server on PostgreSQL with this same scheme
    assert ("--backend-store-uri=postgresql+psycopg2://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@mlflow-postgres:5432/mlflow"
            in args)
    assert "--artifacts-destination=$(MLFLOW_ARTIFACTS_DESTINATION)" in args and "--serve-artifacts" in args
    settings = by_kind(docs, "ConfigMap", "mlflow-settings")
    assert settings["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    # credentials only from Secrets, never literal in a manifest
    assert {"configMapRef": {"name": settings["metadata"]["name"]}} in c["envFrom"]
    assert {"secretRef": {"name": "mlflow-s3"}} in c["envFrom"]
    pg = by_kind(docs, "StatefulSet", "mlflow-postgres")
    for container in (c, pg["spec"]["template"]["spec"]["containers"][0]):
        env = {e["name"]: e for e in container["env"]}
        assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-postgres"
        assert "value" not in env["POSTGRES_PASSWORD"]
    text = yaml.safe_dump_all(docs)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "password:" not in text.lower()
    svc = by_kind(docs, "Service", "mlflow")
    assert svc["spec"]["selector"] == dep["spec"]["template"]["metadata"]["labels"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"


def test_kfp_runtime_settings_match_the_pipeline_and_the_launcher() -> None:
    from csl.kubeflow.pipeline import CREDENTIALS, SETTINGS, SETTINGS_KEYS

    docs = render("kfp")
    validate(docs)
    sa = by_kind(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == "csl-pipeline-runner"  # csl pipeline submit's default --service-account
    settings = by_kind(docs, "ConfigMap", SETTINGS)
    assert settings["metadata"]["name"] == SETTINGS and set(settings["data"]) == set(SETTINGS_KEYS)
    assert settings["data"]["MLFLOW_TRACKING_URI"] == "http://mlflow.mlflow.svc.cluster.local:5000"  # k8s/mlflow
    role = by_kind(docs, "Role")
    rules = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    # what csl.k8s.launch calls: create/get (wait)/list (cleanup)/delete on PyTorchJobs
    assert {"create", "get", "list", "delete"} <= rules[("kubeflow.org", "pytorchjobs")]
    binding = by_kind(docs, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    # the pipeline's steps read exactly these names
    _, platform = yaml.safe_load_all((REPO / "pipelines" / "csl_pipeline.yaml").read_text())
    execs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, cfg in execs.items():
        assert cfg["configMapAsEnv"][0]["configMapName"] == SETTINGS, name
        assert cfg["secretAsEnv"][0]["secretName"] == CREDENTIALS, name
    assert "nodeSelector" in execs["exec-pretrain"] and "tolerations" in execs["exec-pretrain"]


def test_kserve_serving_manifests_validate_against_the_crd_and_the_runtime() -> None:
    from csl.k8s.serving import validate_inference_service

    docs = render("serving")
    validate([d for d in docs if d["kind"] != "InferenceService"])  # core kinds: Kubernetes' own schemas
    isvc = by_kind(docs, "InferenceService")
    assert validate_inference_service(isvc) == []
    account = by_kind(docs, "ServiceAccount", "csl-serving")
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "csl-serving"
    secret = yaml.safe_load((REPO / "k8s" / "serving" / "s3-secret.yaml").read_text())
    validate([secret])
    assert account["secrets"] == [{"name": secret["metadata"]["name"]}]
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps"} <= set(secret["metadata"]["annotations"])
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "mlflow" and model["protocolVersion"] == "v2"
    assert model["resources"]["limits"] and model["storageUri"].startswith("s3://")


@pytest.mark.parametrize("path, value, expected", [
    (("spec", "predictor", "minReplicas"), "one", "minReplicas: 'one' is not of type 'integer'"),
    (("spec", "predictor", "model", "imagee"), "typo", "Additional properties are not allowed"),
    (("spec", "predictor", "model", "modelFormat"), {"name": "onnx"}, "serves no model format"),
    (("spec", "predictor", "model", "protocolVersion"), "v1", "speaks ['v2'], not v1"),
    (("spec", "predictor", "model", "storageUri"), "file:///tmp/m", "KServe reads"),
    (("metadata", "name"), "Csl_Encoder", "not a DNS-1035 label"),
])
def test_the_inference_service_validator_rejects(path: tuple[str, ...], value: object, expected: str) -> None:
    from csl.k8s.serving import validate_inference_service

    isvc = by_kind(render("serving"), "InferenceService")
    node = isvc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    problems = validate_inference_service(isvc)
    assert any(expected in p for p in problems), problems


def test_serve_manifest_storage_uri_from_the_registry_location() -> None:
    from csl.errors import CslError
    from csl.k8s.serving import ServedModel, ServeSpec, dns_name, render as render_isvc, storage_uri

    assert storage_uri("mlflow-artifacts:/1/models/m-abc/artifacts", "s3://b/mlflow/") == \
        "s3://b/mlflow/1/models/m-abc/artifacts"
    assert storage_uri("mlflow-artifacts://mlflow.svc:5000/1/models/m-abc/artifacts", "s3://b/a") == \
        "s3://b/a/1/models/m-abc/artifacts"
    assert storage_uri("s3://other/x/artifacts") == "s3://other/x/artifacts"
    with pytest.raises(CslError, match="which a cluster cannot read"):
        storage_uri("file:///home/me/mlartifacts/models/m-1/artifacts")
    long = dns_name("csl-encoder-" + "x" * 80)
    assert len(long) == 63 and long.startswith("csl-encoder-x")
    assert dns_name("csl-encoder-cifar10-dino_vit") == "csl-encoder-cifar10-dino-vit"
    docs = render_isvc(ServedModel("csl-encoder-a-b", "3", "f" * 64, "mlflow-artifacts:/2/models/m-9/artifacts"),
                       ServeSpec(namespace="ml", gpus=1, cpu="2", memory="8Gi"))
    from csl.k8s.serving import validate_inference_service

    assert validate_inference_service(docs[1]) == []
    model = docs[1]["spec"]["predictor"]["model"]
    assert model["storageUri"] == "s3://csl-mlflow/artifacts/2/models/m-9/artifacts"
    assert model["resources"]["limits"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": 1}
    assert docs[1]["metadata"]["namespace"] == "ml" and docs[0]["metadata"]["namespace"] == "ml"
    validate([docs[0]])
