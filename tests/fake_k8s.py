"""A thin fake of the Kubernetes API for ``kubeflow.org/v1`` PyTorchJobs: create, get, list
(with a label selector), delete.

It is the one part of the cluster that cannot run here. Each GET of a job advances it one step
along a status script (``Created`` -> ``Running`` -> ``Succeeded`` by default), as the Training
Operator would; every request is recorded for the test to inspect.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from fake_http import JsonServer

PATH = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/?]+))?")


def cond(kind: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message}


SUCCESS = [
    {"conditions": [cond("Created", "PyTorchJobCreated")]},
    {"conditions": [cond("Created"), cond("Running", "PyTorchJobRunning")],
     "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": 1}}},
    {"conditions": [cond("Created"), cond("Running"), cond("Succeeded", "PyTorchJobSucceeded", "done")],
     "replicaStatuses": {"Master": {"succeeded": 1}, "Worker": {"succeeded": 1}}},
]
FAILURE = [
    SUCCESS[0],
    SUCCESS[1],
    {"conditions": [cond("Created"), cond("Running"),
                    cond("Failed", "PyTorchJobFailed", "PyTorchJob csl-pretrain-x is failed because 1 Worker "
                         "replica(s) failed.")],
     "replicaStatuses": {"Master": {"active": 1}, "Worker": {"failed": 1}}},
]


class FakeKubernetes(JsonServer):
    def __init__(self, script: list[dict[str, Any]] | None = None) -> None:
        self.script = script or SUCCESS
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.steps: dict[tuple[str, str], int] = {}
        self.on_create: Any = None  # called with the created job before the POST returns
        super().__init__()

    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                      "message": message, "code": code}

    def route(self, method: str, path: str, body: Any, headers: Any) -> tuple[int, Any]:
        if headers.get("Authorization") != "Bearer fake-token":
            return self._status(401, "Unauthorized", "no token")
        m = PATH.match(path)
        if not m:
            return self._status(404, "NotFound", "the server could not find the requested resource")
        ns, name = m.group(1), m.group(2)
        if method == "POST" and name is None:
            key = (ns, body["metadata"]["name"])
            if key in self.jobs:
                return self._status(409, "AlreadyExists", f"pytorchjobs {key[1]!r} already exists")
            job = json.loads(json.dumps(body))
            job["metadata"].update(namespace=ns, uid=f"uid-{len(self.jobs)}")
            self.jobs[key], self.steps[key] = job, 0
            if self.on_create:
                self.on_create(job)
            return 201, job
        if method == "GET" and name is None:
            sel = parse_qs(urlparse(path).query).get("labelSelector", [""])[0]
            want = dict(kv.split("=", 1) for kv in sel.split(",") if kv)
            items = []
            for k, job in self.jobs.items():
                labels = job["metadata"].get("labels", {})
                if k[0] == ns and all(labels.get(a) == b for a, b in want.items()):
                    step = min(self.steps[k], len(self.script) - 1)
                    items.append({**job, "status": self.script[step]})
            return 200, {"kind": "PyTorchJobList", "items": items}
        key = (ns, name or "")
        if key not in self.jobs:
            return self._status(404, "NotFound", f"pytorchjobs {name!r} not found")
        if method == "GET":
            step = min(self.steps[key], len(self.script) - 1)
            self.steps[key] += 1
            return 200, {**self.jobs[key], "status": self.script[step]}
        if method == "DELETE":
            del self.jobs[key]
            return 200, {"kind": "Status", "status": "Success"}
        return self._status(405, "MethodNotAllowed", method)

    def kubeconfig(self, path: Path, namespace: str = "ml") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "dev", "namespace": namespace}}],
        }))
        return path
