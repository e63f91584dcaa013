"""Where each evaluation protocol that runs (``eval.run``) writes its metrics, and its MLflow stage name:
what ``register`` ranks by and ``report`` tabulates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from csl.errors import CslError
from csl.evaluate.config import RunConfig
from csl.params import Params, Variant
from csl.stages.layout import Layout


def protocol_files(params: Params, layout: Layout, variant: Variant) -> dict[str, Path]:
    """The metrics file of every protocol that runs (``eval.run``), by the command that writes it."""
    v = variant.name
    files = {f"csl linear-eval --variant {v}": layout.eval_dir(variant) / "metrics.json"} if params.data.labelled \
        else {}
    files.update({f"csl {i.kind} --variant {v} {i.option} {i.item}": layout.item_dir(variant, i) / "metrics.json"
                  for i in planned(params).items()})
    return files


def planned(params: Params) -> RunConfig:
    """The protocols of ``eval.run`` that run on this data (:mod:`csl.stages.plan`)."""
    return params.eval.run.planned(params.data.labelled, params.data.in_memory)


def protocol_stages(params: Params) -> tuple[str, ...]:
    """The MLflow stage names of the protocols that run (each its own child run)."""
    return tuple(i.stage for i in planned(params).items())


def evaluation_metrics(params: Params, layout: Layout, variant: Variant) -> dict[str, Any]:
    """Every metric of the variant's evaluation protocols (the ones ``eval.run`` selects), merged."""
    metrics: dict[str, Any] = {}
    for command, f in protocol_files(params, layout, variant).items():
        if not f.is_file():
            raise CslError(f"{f} not found: run '{command}' before registering (dvc repro runs it)")
        metrics.update(json.loads(f.read_text()))
    return metrics
