"""Submit the compiled csl pipeline to a Kubeflow Pipelines API server, once or on a schedule.

The seam to Kubeflow is the KFP v2 REST API through the official ``kfp.Client``; the tests run
these calls against a thin fake of that API on loopback. ``submit`` creates a run (in an
experiment, created on first use) and optionally follows it to a terminal state; ``schedule``
creates a recurring run with a 6-field cron expression (seconds first, as KFP's scheduler
reads it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from csl.errors import ConfigError, CslError, JobFailedError

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED")


@dataclass(frozen=True)
class Submitted:
    id: str
    name: str
    experiment_id: str
    url: str


def check_cron(cron: str) -> str:
    """KFP's scheduler reads 6 fields, seconds first: '0 0 3 * * *' is 03:00 every day."""
    fields = cron.split()
    if len(fields) == 5:
        raise ConfigError(f"cron {cron!r} has 5 fields; Kubeflow Pipelines reads 6, seconds first: "
                          f"'0 {cron}'")
    if len(fields) != 6:
        raise ConfigError(f"cron {cron!r} must have 6 space-separated fields (second minute hour day-of-month "
                          "month day-of-week), e.g. '0 0 3 * * *' for 03:00 every day")
    return " ".join(fields)


def connect(host: str, namespace: str | None = None, token: str | None = None) -> Any:
    """A ``kfp.Client`` for ``host`` (e.g. http://ml-pipeline-ui.kubeflow:80); an unreachable or
    non-KFP host is a clear error now, not at the first call."""
    import warnings

    import kfp

    if not host.startswith(("http://", "https://")):
        raise ConfigError(f"--host {host!r} must be the Kubeflow Pipelines API URL (http[s]://HOST[:PORT])")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            client = kfp.Client(host=host, namespace=namespace or "kubeflow", existing_token=token)
        client.get_kfp_healthz()
        return client
    except Exception as e:  # urllib3 MaxRetryError, ApiException, ...
        raise CslError(f"cannot reach the Kubeflow Pipelines API at {host} ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:300]}); check --host (port-forward: kubectl -n kubeflow "
                       "port-forward svc/ml-pipeline-ui 8080:80, then --host http://127.0.0.1:8080)") from None


def _call(what: str, fn: Callable[..., Any], **kw: Any) -> Any:
    try:
        return fn(**kw)
    except CslError:
        raise
    except Exception as e:
        status = getattr(e, "status", None)
        body = getattr(e, "body", None) or str(e)
        raise CslError(f"cannot {what}: the Kubeflow Pipelines API answered {status or type(e).__name__}: "
                       f"{str(body)[:500]}") from None


def submit(client: Any, package: str, arguments: dict[str, Any], experiment: str, run_name: str,
           namespace: str | None = None, service_account: str | None = None) -> Submitted:
    exp = _call(f"create experiment {experiment}", client.create_experiment, name=experiment, namespace=namespace)
    run = _call(f"create run {run_name}", client.run_pipeline, experiment_id=exp.experiment_id, job_name=run_name,
                pipeline_package_path=package, params=arguments, service_account=service_account)
    return Submitted(run.run_id, run_name, exp.experiment_id, f"{client._get_url_prefix()}/#/runs/details/{run.run_id}")


def schedule(client: Any, package: str, arguments: dict[str, Any], experiment: str, name: str, cron: str,
             max_concurrency: int = 1, namespace: str | None = None,
             service_account: str | None = None) -> Submitted:
    cron = check_cron(cron)
    exp = _call(f"create experiment {experiment}", client.create_experiment, name=experiment, namespace=namespace)
    rr = _call(f"create recurring run {name}", client.create_recurring_run, experiment_id=exp.experiment_id,
               job_name=name, cron_expression=cron, max_concurrency=max_concurrency, no_catchup=True,
               params=arguments, pipeline_package_path=package, enabled=True, service_account=service_account)
    return Submitted(rr.recurring_run_id, name, exp.experiment_id,
                     f"{client._get_url_prefix()}/#/recurringrun/details/{rr.recurring_run_id}")


def wait(client: Any, run_id: str, timeout: float = 7 * 24 * 3600, poll: float = 30.0,
         report: Callable[[str], None] = lambda s: print(s, flush=True)) -> str:
    """Follow a run to a terminal state; a run that did not succeed raises JobFailedError."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        run = _call(f"read run {run_id}", client.get_run, run_id=run_id)
        state = str(run.state or "PENDING")
        if state != seen:
            report(f"run {run_id}: {state}")
            seen = state
        if state == "SUCCEEDED":
            return state
        if state in TERMINAL:
            err = getattr(run, "error", None)
            why = f": {err.message}" if err is not None and getattr(err, "message", None) else ""
            raise JobFailedError(f"pipeline run {run_id} ended {state}{why}; see the Kubeflow UI for the failed step")
        if time.monotonic() > deadline:
            raise CslError(f"pipeline run {run_id} did not finish within {timeout:.0f} s (last: {state}); it is "
                           "still running")
        time.sleep(poll)
