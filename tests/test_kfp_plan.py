"""The Kubeflow pipeline's plan step: the protocol items it fans out are the plan's (csl.stages.plan),
so a label-based protocol on data without labels is no task at all, and linear-eval is an item only
when the data has labels."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml

from conftest import tiny_method, tiny_params
from csl.kubeflow.components import plan


def items(tmp_path: Path, data: dict, probes: list[str], champion: str) -> list[dict]:
    params = tiny_params(tmp_path, {"a": tiny_method(), "b": tiny_method()})
    params["data"] = data
    params["eval"]["run"] = {"probes": probes, "finetune": [0.1], "distill": [], "transfer": []}
    params["eval"]["champion_metric"] = champion
    tree = SimpleNamespace(path=str(tmp_path / "tree"))
    return plan.python_func(params_yaml=yaml.safe_dump(params), variants=["a", "b"], runs=[], tree=tree)


def test_plan_items_follow_the_data(tmp_path: Path) -> None:
    labelled = items(tmp_path / "l", {"dataset": "fashion-mnist", "source": str(tmp_path)},
                     ["clustering", "rankme"], "linear_top1")
    assert labelled == [{"variant": v, "kind": "linear", "item": ""} for v in "ab"] + [
        {"variant": v, "kind": k, "item": i} for v in "ab"
        for k, i in (("probe", "clustering"), ("probe", "rankme"), ("finetune", "0.1"))]
    unlabeled = items(tmp_path / "u", {"dataset": "images", "source": str(tmp_path), "image_size": 32},
                      ["clustering", "rankme", "gallery"], "rankme")
    assert unlabeled == [{"variant": v, "kind": "probe", "item": p} for v in "ab" for p in ("rankme", "gallery")]
    # folder labels on a streamed collection: linear-eval and the label-based probes, no fine-tuning
    folders = items(tmp_path / "f", {"dataset": "images", "source": str(tmp_path), "image_size": 32,
                                     "labels": "folders"}, ["clustering"], "linear_top1")
    assert [i["kind"] for i in folders] == ["linear", "linear", "probe", "probe"]
