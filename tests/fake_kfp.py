"""A thin fake of the Kubeflow Pipelines v2beta1 REST API (the one part of Kubeflow that cannot
run here): healthz, experiments (list by name, create), runs (create, get: each GET advances a
status script), recurring runs (create). Every request is recorded for the test to inspect."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API = "/apis/v2beta1"


class FakeKfp:
    def __init__(self, states: list[str] | None = None) -> None:
        self.states = states or ["PENDING", "RUNNING", "SUCCEEDED"]
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.recurring: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.requests: list[tuple[str, str, Any]] = []
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

            def _route(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                url = urlparse(self.path)
                fake.requests.append((method, url.path, body))
                with threading.Lock():
                    if url.path == f"{API}/healthz":
                        return self._send(200, {"multi_user": False})
                    if url.path == f"{API}/experiments" and method == "GET":
                        flt = json.loads(parse_qs(url.query).get("filter", ["{}"])[0])
                        names = {p["string_value"] if "string_value" in p else p.get("stringValue")
                                 for p in flt.get("predicates", [])}
                        found = [e for e in fake.experiments.values() if not names or e["display_name"] in names]
                        return self._send(200, {"experiments": found, "total_size": len(found)})
                    if url.path == f"{API}/experiments" and method == "POST":
                        exp = {**body, "experiment_id": f"exp-{len(fake.experiments) + 1}"}
                        fake.experiments[exp["experiment_id"]] = exp
                        return self._send(200, exp)
                    if url.path == f"{API}/runs" and method == "POST":
                        run = {**body, "run_id": f"run-{len(fake.runs) + 1}", "state": "PENDING"}
                        fake.runs[run["run_id"]] = run
                        return self._send(200, run)
                    if url.path.startswith(f"{API}/runs/") and method == "GET":
                        run_id = url.path.rsplit("/", 1)[1]
                        i = min(fake.polls.get(run_id, 0), len(fake.states) - 1)
                        fake.polls[run_id] = fake.polls.get(run_id, 0) + 1
                        extra = {"error": {"message": "task pretrain failed"}} if fake.states[i] == "FAILED" else {}
                        return self._send(200, {**fake.runs[run_id], "state": fake.states[i], **extra})
                    if url.path == f"{API}/recurringruns" and method == "POST":
                        rr = {**body, "recurring_run_id": f"rr-{len(fake.recurring) + 1}", "status": "ENABLED"}
                        fake.recurring[rr["recurring_run_id"]] = rr
                        return self._send(200, rr)
                return self._send(404, {"error": f"no route {method} {url.path}", "code": 5})

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
