"""Offline validation of a PyTorchJob: the CRD's OpenAPI v3 schema (vendored from
kubeflow/trainer release-1.9, ``crds/``) with jsonschema, plus the admission webhook's rules
that the schema does not encode (Training Operator 1.9: exactly one Master, a container named
``pytorch`` in every replica, only Master/Worker replica types, a DNS-1035 job name)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

CRD = Path(__file__).parent / "crds" / "kubeflow.org_pytorchjobs.yaml"


def _to_json_schema(node: Any) -> Any:
    """Translate Kubernetes' OpenAPI extensions into plain JSON Schema."""
    if isinstance(node, list):
        return [_to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        out.pop("type", None)
    return out


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return _to_json_schema(version["schema"]["openAPIV3Schema"])  # type: ignore[no-any-return]


def webhook_errors(job: dict[str, Any]) -> list[str]:
    errors = []
    name = job.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
        errors.append(f"metadata.name {name!r} is not a DNS-1035 label")
    replicas = job.get("spec", {}).get("pytorchReplicaSpecs", {})
    for kind, rs in replicas.items():
        if kind not in ("Master", "Worker"):
            errors.append(f"replica type {kind!r}: only Master and Worker exist")
        containers = rs.get("template", {}).get("spec", {}).get("containers", [])
        if not any(c.get("name") == "pytorch" for c in containers):
            errors.append(f"{kind}: no container named 'pytorch'")
    if "Master" in replicas and replicas["Master"].get("replicas", 1) != 1:
        errors.append("Master replicas must be 1")
    return errors


def validate(job: dict[str, Any]) -> list[str]:
    """All problems found (empty when the job is valid)."""
    import jsonschema

    if job.get("apiVersion") != "kubeflow.org/v1" or job.get("kind") != "PyTorchJob":
        return [f"not a kubeflow.org/v1 PyTorchJob: {job.get('apiVersion')}/{job.get('kind')}"]
    validator = jsonschema.Draft7Validator(_schema())
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
              for e in sorted(validator.iter_errors(job), key=lambda e: list(e.absolute_path))]
    return errors + webhook_errors(job)
