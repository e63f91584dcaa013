"""A thin fake of the Kubernetes API for ``kubeflow.org/v1`` PyTorchJobs: create, get, list
(with a label selector), delete.

It is the one part of the cluster that cannot run here. Each GET of a job advances it one step
along a status script (``Created`` -> ``Running`` -> ``Succeeded`` by default), as the Training
Operator would; every request is recorded for the test to inspect.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

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


class FakeKubernetes:
    def __init__(self, script: list[dict[str, Any]] | None = None) -> None:
        self.script = script or SUCCESS
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.steps: dict[tuple[str, str], int] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.on_create: Any = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n)) if n else None

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                  "message": message, "code": code})

            def _route(self, method: str) -> None:
                body = self._body() if method in ("POST", "DELETE") else None
                fake.requests.append((method, self.path, body))
                if self.headers.get("Authorization") != "Bearer fake-token":
                    return self._status(401, "Unauthorized", "no token")
                m = PATH.match(self.path)
                if not m:
                    return self._status(404, "NotFound", "the server could not find the requested resource")
                ns, name = m.group(1), m.group(2)
                with threading.Lock():
                    if method == "POST" and name is None:
                        key = (ns, body["metadata"]["name"])
                        if key in fake.jobs:
                            return self._status(409, "AlreadyExists", f"pytorchjobs {key[1]!r} already exists")
                        job = json.loads(json.dumps(body))
                        job["metadata"].update(namespace=ns, uid=f"uid-{len(fake.jobs)}")
                        fake.jobs[key], fake.steps[key] = job, 0
                        if fake.on_create:
                            fake.on_create(job)
                        return self._send(201, job)
                    if method == "GET" and name is None:
                        from urllib.parse import parse_qs, urlparse

                        sel = parse_qs(urlparse(self.path).query).get("labelSelector", [""])[0]
                        want = dict(kv.split("=", 1) for kv in sel.split(",") if kv)
                        items = []
                        for k, job in fake.jobs.items():
                            labels = job["metadata"].get("labels", {})
                            if k[0] == ns and all(labels.get(a) == b for a, b in want.items()):
                                step = min(fake.steps[k], len(fake.script) - 1)
                                items.append({**job, "status": fake.script[step]})
                        return self._send(200, {"kind": "PyTorchJobList", "items": items})
                    key = (ns, name or "")
                    if key not in fake.jobs:
                        return self._status(404, "NotFound", f"pytorchjobs {name!r} not found")
                    if method == "GET":
                        step = min(fake.steps[key], len(fake.script) - 1)
                        fake.steps[key] += 1
                        return self._send(200, {**fake.jobs[key], "status": fake.script[step]})
                    if method == "DELETE":
                        del fake.jobs[key]
                        return self._send(200, {"kind": "Status", "status": "Success"})
                return self._status(405, "MethodNotAllowed", method)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path: Path, namespace: str = "ml") -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "dev", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "dev", "namespace": namespace}}],
        }))
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
