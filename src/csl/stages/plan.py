"""``plan.yaml``: which evaluation stages the pipeline plans for the data at hand.

DVC fans stages out over lists (``matrix``), and a list can only come from a file. Whether a
protocol can run depends on the data: the label-based protocols (linear and kNN, clustering
and retrieval scores, fine-tuning, distillation, transfer) need labels, and an unlabeled
collection (``data.dataset: images``, ``data.labels: none``) has none. So the lists DVC reads
are not ``eval.run`` as written but the plan derived from it and ``data``: a pure function of
params.yaml (:func:`plan`), written to ``plan.yaml`` by ``csl run`` (and ``csl plan``) before
DVC reads it. A label-based protocol that does not run is not a stage at all (no DVC stage,
no MLflow run, no Kubeflow task), and the plan says why. ``dvc repro`` with a plan that no
longer matches params.yaml is refused by every stage that reads it (:func:`check`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from csl.errors import CslError
from csl.io import atomic_write_text
from csl.params import Params

PLAN = "plan.yaml"
HEADER = ("# Written by csl from params.yaml (csl plan; csl run refreshes it): the lists dvc.yaml fans its\n"
          "# evaluation stages out over. Do not edit: change params.yaml.\n")


def plan(params: Params) -> dict[str, Any]:
    """The planned stage lists, and what is left out and why."""
    labelled, in_memory = params.data.labelled, params.data.in_memory
    run = params.eval.run.planned(labelled, in_memory)
    left = {**({} if labelled else {"linear-eval": "needs labels, and the data has none"}),
            **params.eval.run.not_planned(labelled, in_memory)}
    return {"plan": {
        "labelled": labelled,
        "linear": list(params.variants) if labelled else [],
        "probes": list(run.probes),
        "finetune": list(run.finetune),
        "distill": list(run.distill),
        "transfer": list(run.transfer),
        "not_planned": left,  # protocol -> why
    }}


def render(params: Params) -> str:
    return HEADER + yaml.safe_dump(plan(params), sort_keys=False, default_flow_style=None, width=4096)


def write(project: Path, params: Params) -> bool:
    """Write ``plan.yaml`` when it differs from params.yaml's plan; return whether it changed."""
    f = project / PLAN
    text = render(params)
    if f.is_file() and f.read_text() == text:
        return False
    atomic_write_text(f, text)
    return True


def check(project: Path, params: Params) -> None:
    """Refuse to run with a ``plan.yaml`` that is not params.yaml's (``dvc repro`` after an edit)."""
    f = project / PLAN
    if (project / "dvc.yaml").is_file() and f.is_file() and f.read_text() != render(params):
        raise CslError(f"{f} is not the plan of {project / 'params.yaml'} (edited since 'csl run' wrote it): run "
                       "'csl plan' (or 'csl run', which writes it) before 'dvc repro'")


def describe(params: Params) -> list[str]:
    """What the plan leaves out, for ``csl run``'s output and the report."""
    left: dict[str, str] = plan(params)["plan"]["not_planned"]
    by_reason: dict[str, list[str]] = {}
    for protocol, why in left.items():
        by_reason.setdefault(why, []).append(protocol)
    what = f"data.dataset {params.data.dataset}" + (f", data.labels {params.data.labels}" if params.data.labels else "")
    return [f"not planned: {', '.join(ps)} ({why}: {what})" for why, ps in by_reason.items()]
