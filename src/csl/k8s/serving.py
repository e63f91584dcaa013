"""A KServe InferenceService (``serving.kserve.io/v1beta1``) for a registered csl encoder.

The encoder is served as it is registered: an MLflow model (format ``mlflow``) from the
registry's artifact store, by the MLServer runtime (``kserve-mlserver``, Open Inference Protocol
v2; its ClusterServingRuntime is vendored in ``crds/``) in csl's serving image (MLServer with
mlserver-mlflow, torch and csl: the model is csl's pickled ``FeatureExtractor``;
``k8s/serving/Dockerfile``). Rendered objects:

* a ServiceAccount that carries the S3 credentials Secret (KServe's storage initializer reads
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` and the ``serving.kserve.io/s3-*`` annotations of
  the Secrets of the predictor's ServiceAccount; ``k8s/serving/s3-secret.yaml``);
* the InferenceService: ``storageUri`` is where the registry keeps the model version's files.
  The cluster's MLflow (``k8s/mlflow``) proxies artifacts to S3: a ``mlflow-artifacts:/PATH``
  location is ``<artifacts destination>/PATH`` in the bucket; an ``s3://`` location is used as it
  is; a local ``file://`` store (the embedded default) cannot be served from a cluster and is
  refused. CPU/memory (and GPU) requests and limits, replica bounds, a non-root container, and
  the model's name, version and encoder sha256 as annotations.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from csl.errors import ConfigError, CslError

CRDS = Path(__file__).parent / "crds"
SCHEMA = CRDS / "serving.kserve.io_inferenceservices.v1beta1.schema.json"
RUNTIME = CRDS / "kserve-mlserver-runtime.yaml"
DEFAULT_DESTINATION = "s3://csl-mlflow/artifacts"  # k8s/mlflow: MLFLOW_ARTIFACTS_DESTINATION
STORAGE_SCHEMES = ("s3", "gs", "pvc", "https", "hdfs", "webhdfs", "oci")


@dataclass(frozen=True)
class ServeSpec:
    name: str | None = None
    namespace: str | None = None
    artifacts_destination: str = DEFAULT_DESTINATION
    storage_uri: str | None = None  # overrides the registry's location
    s3_secret: str = "csl-serving-s3"
    service_account: str = "csl-serving"
    image: str = "ghcr.io/csl-project/csl-serving:0.1.0"
    runtime: str = "kserve-mlserver"
    cpu: str = "1"
    memory: str = "2Gi"
    gpus: int = 0
    min_replicas: int = 1
    max_replicas: int = 1


@dataclass(frozen=True)
class ServedModel:
    """The registry facts the manifest needs."""

    name: str
    version: str
    encoder_sha256: str
    location: str  # the model version's artifact location as the registry reports it


def lookup(uri: str) -> ServedModel:
    """The version ``uri`` names, refused when it is not a csl encoder."""
    from csl.tracking import model_registry

    mv = model_registry.resolve_encoder(uri)
    return ServedModel(mv.name, str(mv.version), mv.tags["csl.encoder_sha256"], model_registry.download_uri(mv))


def storage_uri(location: str, artifacts_destination: str = DEFAULT_DESTINATION) -> str:
    """Where KServe's storage initializer finds the model (see module doc)."""
    parsed = urlparse(location)
    if parsed.scheme == "mlflow-artifacts":
        if urlparse(artifacts_destination).scheme not in STORAGE_SCHEMES:
            raise ConfigError(f"--artifacts-destination {artifacts_destination!r} must be an s3:// (or gs://) URI: "
                              "the MLflow server's --artifacts-destination")
        return f"{artifacts_destination.rstrip('/')}/{parsed.path.lstrip('/')}"
    if parsed.scheme in STORAGE_SCHEMES:
        return location
    raise CslError(f"the model's files are at {location}, which a cluster cannot read: register the encoder in the "
                   "cluster's MLflow (k8s/mlflow keeps artifacts in S3), or give --storage-uri s3://... where you "
                   "copied them")


def dns_name(text: str) -> str:
    """A DNS-1035 label (<= 63 characters) from ``text``; a long one keeps a hash of the whole."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"m-{name}"
    if len(name) > 63:
        name = f"{name[:54].rstrip('-')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def render(model: ServedModel, spec: ServeSpec) -> list[dict[str, Any]]:
    """``[ServiceAccount, InferenceService]`` for ``model`` (see module doc)."""
    name = dns_name(spec.name or model.name)
    labels = {"app.kubernetes.io/part-of": "csl", "app.kubernetes.io/component": "encoder-serving"}
    meta: dict[str, Any] = {"labels": labels}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    resources: dict[str, dict[str, Any]] = {"requests": {"cpu": spec.cpu, "memory": spec.memory},
                                            "limits": {"cpu": spec.cpu, "memory": spec.memory}}
    if spec.gpus:
        resources["requests"]["nvidia.com/gpu"] = spec.gpus
        resources["limits"]["nvidia.com/gpu"] = spec.gpus
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": spec.service_account, **meta}, "secrets": [{"name": spec.s3_secret}]}
    service = {
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": name, **meta, "annotations": {
            "csl.dev/model-uri": f"models:/{model.name}/{model.version}", "csl.dev/encoder-sha256": model.encoder_sha256,
            "csl.dev/registry-location": model.location}},
        "spec": {"predictor": {
            "serviceAccountName": spec.service_account,
            "minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas,
            "model": {
                "modelFormat": {"name": "mlflow"},
                "protocolVersion": "v2",
                "runtime": spec.runtime,
                "storageUri": spec.storage_uri or storage_uri(model.location, spec.artifacts_destination),
                "image": spec.image,
                "resources": resources,
                "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]}},
            },
        }},
    }
    return [account, service]


def _strict(node: Any) -> Any:
    """Unknown fields are errors (as ``kubectl apply --validate=strict``; the API server would drop them
    silently): every object schema with ``properties`` and no ``x-kubernetes-preserve-unknown-fields``
    gets ``additionalProperties: false``."""
    if isinstance(node, list):
        return [_strict(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) for k, v in node.items()}
    if "properties" in node and "additionalProperties" not in node and not node.get(
            "x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    from csl.k8s.validate import _to_json_schema

    schema = _strict(json.loads(SCHEMA.read_text()))
    schema["properties"]["metadata"]["additionalProperties"] = True  # ObjectMeta is not spelled out in a CRD
    return _to_json_schema(schema)  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _runtime() -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(RUNTIME.read_text()))


def validate_inference_service(obj: dict[str, Any]) -> list[str]:
    """Problems of an InferenceService (empty when valid): the CRD schema (jsonschema), a DNS-1035
    name, a storage URI KServe can read, and, for the MLServer runtime, a model format and protocol
    it serves."""
    import jsonschema

    if obj.get("apiVersion") != "serving.kserve.io/v1beta1" or obj.get("kind") != "InferenceService":
        return [f"not a serving.kserve.io/v1beta1 InferenceService: {obj.get('apiVersion')}/{obj.get('kind')}"]
    validator = jsonschema.Draft7Validator(_schema())
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
              for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))]
    name = obj.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
        errors.append(f"metadata.name {name!r} is not a DNS-1035 label")
    model = obj.get("spec", {}).get("predictor", {}).get("model")
    if not isinstance(model, dict):
        return errors + ["spec.predictor.model is missing"]
    uri = str(model.get("storageUri", ""))
    if urlparse(uri).scheme not in STORAGE_SCHEMES:
        errors.append(f"spec.predictor.model.storageUri {uri!r}: KServe reads {', '.join(STORAGE_SCHEMES)} URIs")
    runtime = _runtime()
    if model.get("runtime") == runtime["metadata"]["name"]:
        fmt = model.get("modelFormat", {})
        served = [f for f in runtime["spec"]["supportedModelFormats"] if f["name"] == fmt.get("name")
                  and ("version" not in fmt or f.get("version") == str(fmt["version"]))]
        if not served:
            errors.append(f"runtime {model['runtime']} serves no model format {fmt}")
        proto = model.get("protocolVersion", "v1")
        if proto not in runtime["spec"].get("protocolVersions", []):
            errors.append(f"runtime {model['runtime']} speaks {runtime['spec'].get('protocolVersions')}, not {proto}")
    return errors
