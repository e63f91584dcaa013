"""Runs whose process is gone: every run csl opens carries the tag ``csl.process`` (host, boot,
process id and start time); the next csl invocation on that host ends a ``RUNNING`` run whose
process no longer exists as ``KILLED``, with the reason in ``csl.end_reason``. A process id reused
by another program does not keep a dead run alive (the start time differs), nor does a reboot.
Runs started on other hosts are left alone: their processes cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PROCESS_TAG = "csl.process"
REASON_TAG = "csl.end_reason"


def _boot_id() -> str:
    f = Path("/proc/sys/kernel/random/boot_id")
    return f.read_text().strip()[:8] if f.is_file() else "-"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), ``"-"``
    where /proc is absent, None when there is no such process."""
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").is_file():  # not Linux: existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "-"
    try:
        text = stat.read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]  # fields after the command name; 22nd overall


def process_tag(pid: int | None = None) -> str:
    """``host:boot:pid:start`` of this process (or ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{_boot_id()}:{pid}:{_start_time(pid) or '-'}"


def is_gone(tag: str) -> str | None:
    """Why the process a ``csl.process`` tag names is gone, or None (alive, or not visible from here)."""
    try:
        host, boot, pid_s, start = tag.rsplit(":", 3)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if boot != _boot_id():
        return f"host {host} rebooted since process {pid} started"
    now = _start_time(pid)
    if now is None:
        return f"process {pid} on {host} no longer exists (killed or crashed)"
    if start != "-" and now != start:
        return f"process {pid} on {host} no longer exists (its id now belongs to another process)"
    return None


def reap(experiment_id: str) -> list[tuple[str, str]]:
    """End as ``KILLED`` every ``RUNNING`` run of the experiment whose process is gone; returns
    ``(run name, reason)`` for each."""
    import mlflow
    from mlflow.tracking import MlflowClient

    runs = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list",
                              filter_string="attributes.status = 'RUNNING'")
    client = MlflowClient()
    ended = []
    for r in runs:
        tag = r.data.tags.get(PROCESS_TAG)
        why = is_gone(tag) if tag else None
        if why is None:
            continue
        client.set_tag(r.info.run_id, REASON_TAG, f"KILLED: {why}; ended by the next csl invocation")
        client.set_terminated(r.info.run_id, "KILLED")
        ended.append((r.info.run_name or r.info.run_id, why))
    return ended
