"""``csl prepare``: read the configured dataset source and write the prepared dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.params import Params
from csl.stages.layout import Layout


def prepare(params: Params, project: Path) -> dict[str, Any]:
    """Pure stage: source -> ``data/prepared`` (written atomically). Returns the metadata."""
    raw = csl_data.read(params.data, project, seed=0)
    return csl_data.write(raw, Layout(project, params).prepared)


def main(params: Params, project: Path) -> None:
    from csl import tracking

    with tracking.stage_run(project, params.tracking.experiment, "prepare") as rec:
        rec.params({"data": to_dict(params.data)})
        meta = prepare(params, project)
        rec.metrics({"num_train": meta["num_train"], "num_test": meta["num_test"]})
        rec.tags({"csl.data.content_hash": meta["content_hash"], "csl.data.name": meta["name"]})
    print(f"prepared {meta['name']} from {meta['source']}: {meta['num_train']} train / {meta['num_test']} test, "
          f"shape {meta['shape']} -> {Layout(project, params).prepared}")
