"""A thin fake of the Kubeflow Pipelines v2beta1 REST API (the one part of Kubeflow that cannot
run here): healthz, experiments (list by name, create), runs (create, get: each GET advances a
status script), recurring runs (create). Every request is recorded for the test to inspect."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

from fake_http import JsonServer

API = "/apis/v2beta1"


class FakeKfp(JsonServer):
    def __init__(self, states: list[str] | None = None) -> None:
        self.states = states or ["PENDING", "RUNNING", "SUCCEEDED"]
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        super().__init__()

    def route(self, method: str, path: str, body: Any, headers: Any) -> tuple[int, Any]:
        url = urlparse(path)
        if url.path == f"{API}/healthz":
            return 200, {"multi_user": False}
        if url.path == f"{API}/experiments" and method == "GET":
            flt = json.loads(parse_qs(url.query).get("filter", ["{}"])[0])
            names = {p["string_value"] if "string_value" in p else p.get("stringValue")
                     for p in flt.get("predicates", [])}
            found = [e for e in self.experiments.values() if not names or e["display_name"] in names]
            return 200, {"experiments": found, "total_size": len(found)}
        if url.path == f"{API}/experiments" and method == "POST":
            exp = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}"}
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if url.path == f"{API}/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
            self.runs[run["run_id"]] = run
            return 200, run
        if url.path.startswith(f"{API}/runs/") and method == "GET":
            run_id = url.path.rsplit("/", 1)[1]
            i = min(self.polls.get(run_id, 0), len(self.states) - 1)
            self.polls[run_id] = self.polls.get(run_id, 0) + 1
            extra = {"error": {"message": "task pretrain failed"}} if self.states[i] == "FAILED" else {}
            return 200, {**self.runs[run_id], "state": self.states[i], **extra}
        if url.path == f"{API}/recurringruns" and method == "POST":
            rr = {**body, "recurring_run_id": f"rr-{len(self.recurring) + 1}", "status": "ENABLED"}
            self.recurring[rr["recurring_run_id"]] = rr
            return 200, rr
        return 404, {"error": f"no route {method} {url.path}", "code": 5}
