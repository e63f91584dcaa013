"""Submit a PyTorchJob through the Kubernetes API, wait for it, report its status.

The seam to the cluster is the Kubernetes API itself (the official ``kubernetes`` client's
``CustomObjectsApi`` on ``kubeflow.org/v1 pytorchjobs``); the tests run this module against a
small fake of that HTTP API on loopback. The job's state is read from its ``status.conditions``
(``Created``, ``Running``, ``Restarting``, ``Succeeded``, ``Failed``) as the Training Operator
writes them; a failed job raises :class:`~csl.errors.JobFailedError` with the operator's reason
and message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from csl.errors import CslError, JobFailedError
from csl.k8s.validate import validate

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
TERMINAL = ("Succeeded", "Failed")


@dataclass
class JobStatus:
    name: str
    namespace: str
    phase: str  # the last true condition's type, or "Pending" before the operator reports one
    reason: str = ""
    message: str = ""
    replicas: dict[str, dict[str, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, job: dict[str, Any]) -> "JobStatus":
        meta, status = job.get("metadata", {}), job.get("status") or {}
        true = [c for c in status.get("conditions") or [] if str(c.get("status")) == "True"]
        last = true[-1] if true else {}
        return cls(meta.get("name", ""), meta.get("namespace", ""), last.get("type", "Pending"),
                   last.get("reason", ""), last.get("message", ""), dict(status.get("replicaStatuses") or {}))

    def line(self) -> str:
        reps = ", ".join(f"{k}: " + " ".join(f"{n} {s}" for s, n in sorted(v.items()))
                         for k, v in sorted(self.replicas.items()))
        why = f" ({self.reason}: {self.message})" if self.reason or self.message else ""
        return f"{self.namespace}/{self.name}: {self.phase}{why}" + (f" [{reps}]" if reps else "")


def api(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """A ``CustomObjectsApi`` from ``kubeconfig`` (or $KUBECONFIG / ~/.kube/config), or the
    in-cluster service account when run inside a pod (a KFP step)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig or context:
            config.load_kube_config(config_file=kubeconfig, context=context)
        else:
            try:
                config.load_incluster_config()
            except ConfigException:
                config.load_kube_config()
    except (ConfigException, FileNotFoundError, OSError) as e:
        raise CslError(f"no Kubernetes cluster configured ({e}); pass --kubeconfig FILE [--context NAME], "
                       "set KUBECONFIG, or run inside a pod with a service account") from None
    return client.CustomObjectsApi()


def _call(fn: Callable[..., Any], what: str, **kw: Any) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(**kw)
    except ApiException as e:
        if e.status == 404 and what.startswith("create"):
            raise CslError(f"cannot {what}: the API server has no kubeflow.org/v1 PyTorchJob resource; install "
                           "the Kubeflow Training Operator (1.9) on the cluster") from None
        if e.status == 404:
            raise CslError(f"cannot {what}: not found") from None
        if e.status == 409:
            raise CslError(f"cannot {what}: a job of that name already exists; delete it "
                           "(csl k8s delete NAME) or pass --name") from None
        if e.status in (401, 403):
            raise CslError(f"cannot {what}: the cluster refused ({e.status} {e.reason}); the account needs "
                           "create/get/delete on pytorchjobs.kubeflow.org in the namespace") from None
        raise CslError(f"cannot {what}: the API server answered {e.status} {e.reason}: {e.body}") from None
    except (HTTPError, OSError) as e:
        raise CslError(f"cannot {what}: the Kubernetes API server is unreachable ({e}); check the kubeconfig "
                       "and the cluster") from None


def submit(objs: Any, job: dict[str, Any], namespace: str = "default") -> JobStatus:
    """Validate ``job`` offline (CRD schema + webhook rules), then create it."""
    problems = validate(job)
    if problems:
        raise CslError("the job is not a valid PyTorchJob: " + "; ".join(problems))
    ns = job.get("metadata", {}).get("namespace") or namespace
    created = _call(objs.create_namespaced_custom_object, f"create PyTorchJob {job['metadata']['name']}",
                    group=GROUP, version=VERSION, namespace=ns, plural=PLURAL, body=job)
    return JobStatus.of(created)


def status(objs: Any, name: str, namespace: str = "default") -> JobStatus:
    job = _call(objs.get_namespaced_custom_object, f"read PyTorchJob {namespace}/{name}",
                group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, name=name)
    return JobStatus.of(job)


def list_jobs(objs: Any, namespace: str = "default", label_selector: str = "") -> list[JobStatus]:
    got = _call(objs.list_namespaced_custom_object, f"list PyTorchJobs in {namespace}", group=GROUP,
                version=VERSION, namespace=namespace, plural=PLURAL, label_selector=label_selector)
    return [JobStatus.of(j) for j in got.get("items", [])]


def delete(objs: Any, name: str, namespace: str = "default") -> None:
    _call(objs.delete_namespaced_custom_object, f"delete PyTorchJob {namespace}/{name}",
          group=GROUP, version=VERSION, namespace=namespace, plural=PLURAL, name=name,
          body={"propagationPolicy": "Foreground"})


def wait(objs: Any, name: str, namespace: str = "default", timeout: float = 24 * 3600, poll: float = 10.0,
         report: Callable[[JobStatus], None] = lambda s: print(s.line(), flush=True)) -> JobStatus:
    """Poll until the job succeeds (returns its status) or fails (raises JobFailedError).

    Every change of phase or replica counts is reported (``report``); ``timeout`` seconds
    without a terminal state raise an error that leaves the job running.
    """
    deadline = time.monotonic() + timeout
    seen: tuple[str, str] | None = None
    while True:
        st = status(objs, name, namespace)
        key = (st.phase, repr(sorted((k, sorted(v.items())) for k, v in st.replicas.items())))
        if key != seen:
            report(st)
            seen = key
        if st.phase == "Succeeded":
            return st
        if st.phase == "Failed":
            raise JobFailedError(f"PyTorchJob {namespace}/{name} failed: {st.reason or 'no reason given'}"
                                 f"{': ' + st.message if st.message else ''}. Pod logs: kubectl logs -n "
                                 f"{namespace} {name}-master-0")
        if time.monotonic() > deadline:
            raise CslError(f"PyTorchJob {namespace}/{name} did not finish within {timeout:.0f} s (last: "
                           f"{st.phase}); it is still running: csl k8s status {name}, or csl k8s delete {name}")
        time.sleep(poll)
