"""Each stage, on tiny generated data in a temp dir, writes exactly its declared outputs
(the outs and metrics of dvc.yaml) and logs to a real MLflow SQLite store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from csl.encoders.saved import load_feature_extractor
from csl.errors import CslError
from csl.params import load_params
from csl.stages import linear_eval, prepare, pretrain, report
from conftest import REPO

IGNORED = {"params.yaml", "mlflow.db", "mlartifacts", "checkpoints"}


def declared(stage: str, params: dict, variant: str | None = None) -> set[str]:
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    paths = []
    for key in ("outs", "metrics"):
        for item in spec.get(key, []):
            paths.append(next(iter(item)) if isinstance(item, dict) else item)

    def subst(p: str) -> str:
        def val(m: re.Match) -> str:
            name = m.group(1)
            if name == "item.variant":
                return variant or ""
            node = params
            for part in name.split("."):
                node = node[part]
            return str(node)

        return re.sub(r"\$\{([^}]+)\}", val, p)

    return {subst(p) for p in paths}


def files_under(project: Path) -> set[str]:
    out = set()
    for p in project.rglob("*"):
        rel = p.relative_to(project)
        if rel.parts[0] in IGNORED or p.is_dir():
            continue
        out.add(rel.as_posix())
    return out


def covered(files: set[str], outs: set[str]) -> bool:
    """Every file lies in a declared out (a file, or a directory out) and every out exists."""
    def inside(f: str) -> bool:
        return any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs)

    return all(inside(f) for f in files) and all(any(f == o or f.startswith(o + "/") for f in files) for o in outs)


@pytest.fixture(autouse=True)
def _local_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CSL_PARENT_RUN_ID", raising=False)


def test_stages_write_exactly_their_declared_outputs(project: Path) -> None:
    params = load_params(project / "params.yaml")
    raw = yaml.safe_load((project / "params.yaml").read_text())
    variant = params.selected[0]
    v = variant.name

    prepare.main(params, project)
    assert covered(files_under(project), declared("prepare", raw))

    before = files_under(project)
    pretrain.main(params, project, variant)
    assert covered(files_under(project) - before, declared("pretrain", raw, v))
    assert (project / "checkpoints" / v).is_dir()  # state, kept apart from the outputs

    before = files_under(project)
    linear_eval.main(params, project, variant)
    assert covered(files_under(project) - before, declared("linear-eval", raw, v))
    metrics = json.loads((project / "runs" / v / "eval" / "metrics.json").read_text())
    assert set(metrics) == {"linear_top1", "knn_top1", "random_linear_top1", "random_knn_top1"}
    # accuracies over the test set: each is a count of correct test images over their number (float32), and
    # kNN on digits features, trained or random, is well above the 10-class chance of 0.1
    n_test = json.loads((project / "data" / "prepared" / "meta.json").read_text())["num_test"]
    assert all(abs(x * n_test - round(x * n_test)) < 1e-4 for x in metrics.values()), (metrics, n_test)
    assert metrics["knn_top1"] > 0.25 and metrics["random_knn_top1"] > 0.25, metrics

    before = files_under(project)
    report.main(params, project)
    assert covered(files_under(project) - before, declared("report", raw))
    html = (project / "reports" / "report.html").read_text()
    assert "<table>" in html and html.count("data:image/png;base64,") == 3  # loss, accuracy, map
    assert "kNN top-1 (random init)" in html and v in html
    md = (project / "reports" / "report.md").read_text()
    assert "| variant |" in md and "![Pretraining loss](loss_curves.png)" in md

    # MLflow: one run per stage, with the resolved params, metrics, dataset and artifacts
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["csl-test"], output_format="list")}
    assert set(runs) == {"prepare", f"pretrain@{v}", f"linear-eval@{v}", "report"}
    pre = runs[f"pretrain@{v}"]
    assert pre.data.params["loss.temperature"] == "0.5" and pre.data.params["encoder.name"] == "small_cnn"
    assert "loss" in pre.data.metrics and pre.data.tags["csl.data.content_hash"]
    history = mlflow.tracking.MlflowClient().get_metric_history(pre.info.run_id, "loss")
    assert [m.step for m in history] == [0]  # one value per epoch
    assert pre.inputs.dataset_inputs and pre.inputs.dataset_inputs[0].dataset.name == "fashion-mnist-prepared"
    arts = {a.path for a in mlflow.tracking.MlflowClient().list_artifacts(pre.info.run_id)}
    assert {"encoder", "checkpoint", "history.json"} <= arts
    ev = runs[f"linear-eval@{v}"]
    assert ev.data.metrics["linear_top1"] == pytest.approx(metrics["linear_top1"])


def test_saved_encoder_is_a_ready_feature_extractor(project: Path) -> None:
    params = load_params(project / "params.yaml")
    prepare.prepare(params, project)
    pretrain.pretrain(params, params.selected[0], project)
    fx = load_feature_extractor(project / "runs" / params.variants[0] / "pretrain" / "encoder.pt")
    images = torch.as_tensor(np.load(project / "data/prepared/test_images.npy")[:5])
    emb = fx(images)
    assert emb.shape == (5, 16) and torch.isfinite(emb).all()
    torch.testing.assert_close(fx(images.float() / 255), emb)


def test_stage_errors_are_clear(project: Path) -> None:
    params = load_params(project / "params.yaml")
    with pytest.raises(CslError, match="no prepared dataset.*run 'csl prepare'"):
        pretrain.pretrain(params, params.selected[0], project)
    prepare.prepare(params, project)
    with pytest.raises(CslError, match="no encoder at .*run 'csl pretrain'"):
        linear_eval.linear_eval(params, params.selected[0], project)
    with pytest.raises(CslError, match="metrics.json is missing"):
        report.report(params, project)
    with pytest.raises(CslError, match="unknown variant 'nope'.*valid names: simclr-tiny"):
        params.variant("nope")
