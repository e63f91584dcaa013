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
from csl.stages import distill, features, finetune, linear_eval, prepare, pretrain, probe, register, report, transfer
from conftest import REPO

IGNORED = {"params.yaml", "mlflow.db", "mlartifacts", "checkpoints"}


def declared(stage: str, params: dict, variant: str | None = None, **items: str) -> set[str]:
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
            if name.startswith("item."):
                return items[name.removeprefix("item.")]
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
    features.main(params, project, variant)
    assert covered(files_under(project) - before, declared("features", raw, v))

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
    assert "random init" in html and v in html
    md = (project / "reports" / "report.md").read_text()
    # one row per metric, the encoder's value beside its random-init baseline, as measured
    assert (f"| {v} | linear-eval | kNN top-1 | {metrics['knn_top1']:.2%} | {metrics['random_knn_top1']:.2%} |"
            in md), md
    assert "| variant |" in md and "![Pretraining loss](loss_curves.png)" in md

    # MLflow: one run per stage, with the resolved params, metrics, dataset and artifacts
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["csl-test"], output_format="list")}
    assert set(runs) == {"prepare", f"pretrain@{v}", f"features@{v}", f"linear-eval@{v}", "report"}
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
        features.features(params, params.selected[0], project)
    with pytest.raises(CslError, match="no features in .*run 'csl features'"):
        linear_eval.linear_eval(params, params.selected[0], project)
    with pytest.raises(CslError, match="metrics.json is missing"):
        report.report(params, project)
    with pytest.raises(CslError, match="unknown variant 'nope'.*valid names: simclr-tiny"):
        params.variant("nope")


def rgb_image_folder(root: Path, per_class: int = 12) -> Path:
    """A labelled ImageFolder with train/ and test/: the digits 0-2 as 12x12 RGB PNGs (tinted)."""
    from PIL import Image

    from conftest import digits_images

    imgs, labels = digits_images()
    for split, offset in (("train", 0), ("test", 300)):
        for c in range(3):
            d = root / split / f"digit{c}"
            d.mkdir(parents=True)
            picks = np.flatnonzero(labels == c)[offset // 100: offset // 100 + per_class] if split == "test" \
                else np.flatnonzero(labels == c)[20:20 + per_class]
            for i in picks:
                g = np.asarray(Image.fromarray(imgs[i]).resize((12, 12), Image.BILINEAR))
                Image.fromarray(np.stack([g, g // 2, 255 - g], axis=2)).save(d / f"{i}.png")
    return root


def test_protocol_stages_write_their_declared_outputs_and_log_child_runs(project: Path, tmp_path: Path) -> None:
    """features -> probe (clustering, retrieval), finetune, distill, prepare-transfer, transfer, register
    by the metric a protocol produced: each writes exactly its dvc.yaml outputs and its own MLflow run."""
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["eval"]["run"] = {"probes": ["clustering", "retrieval"], "finetune": [0.1], "distill": [0.1],
                          "transfer": ["rgb"]}
    raw["eval"]["champion_metric"] = "finetune_10pct_top1"
    raw["eval"]["finetune"] = {"epochs": 2, "batch_size": 32, "from_head_layer": 1}
    raw["eval"]["distill"] = {"epochs": 1, "batch_size": 128, "student_widths": [4, 8]}
    raw["eval"]["retrieval"] = {"ks": [1, 5], "grid_queries": 3, "grid_neighbours": 4}
    raw["eval"]["transfer"] = {"datasets": {"rgb": {"dataset": "imagefolder",
                                                    "source": str(rgb_image_folder(tmp_path / "rgb"))}}}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    params = load_params(project / "params.yaml")
    variant = params.selected[0]
    v = variant.name
    prepare.main(params, project)
    pretrain.main(params, project, variant)
    features.main(params, project, variant)
    linear_eval.main(params, project, variant)
    meta = json.loads((project / "data/prepared/meta.json").read_text())

    for protocol in ("clustering", "retrieval"):
        before = files_under(project)
        m = probe.main(params, project, variant, protocol)
        assert covered(files_under(project) - before, declared("probe", raw, v, protocol=protocol))
        assert all(0 <= x <= 1 for x in m.values()) and all(f"random_{k}" in m for k in m if not k.startswith("random"))
    grid = json.loads((project / f"runs/{v}/eval/retrieval/neighbours.json").read_text())
    labels = np.load(project / "data/prepared/train_labels.npy")
    assert np.array_equal(np.array(grid["wrong"]), labels[np.array(grid["neighbours"])] != np.array(grid["query_labels"])[:, None])
    assert (project / f"runs/{v}/eval/retrieval/grid.png").read_bytes()[:4] == b"\x89PNG"

    before = files_under(project)
    ft = finetune.main(params, project, variant, "0.1")
    assert covered(files_under(project) - before, declared("finetune", raw, v, fraction="0.1"))
    subset = json.loads((project / f"runs/{v}/eval/finetune/0.1/subset.json").read_text())
    assert subset["size"] == meta["num_train"] // 10 and len(set(subset["per_class"].values())) == 1
    assert ft["finetune_10pct_examples"] == subset["size"] and 0 <= ft["random_finetune_10pct_top1"] <= 1
    # the fine-tuned model holds what the stage measured: reloaded, it scores the same on the test set
    net, _ = finetune.load_model(project / f"runs/{v}/eval/finetune/0.1/model.pt")
    from csl import data as csl_data
    from csl.evaluate import classifier

    test = csl_data.load(project / "data/prepared").test
    logits = classifier.predict(net, test.images, meta["mean"], meta["std"], 256, "cpu")
    assert classifier.top1(logits, test.labels) == pytest.approx(ft["finetune_10pct_top1"])

    before = files_under(project)
    d = distill.main(params, project, variant, "0.1")
    assert covered(files_under(project) - before, declared("distill", raw, v, fraction="0.1"))
    assert d["distill_10pct_teacher_top1"] == pytest.approx(ft["finetune_10pct_top1"])
    assert json.loads((project / f"runs/{v}/eval/distill/0.1/protocol.json").read_text())["student_encoder"][
        "widths"] == [4, 8]

    # registered before the transfer protocol ran (without it in eval.run) ...
    from csl.params import parse_params

    no_transfer = parse_params({**raw, "eval": {**raw["eval"], "run": {**raw["eval"]["run"], "transfer": []}}})
    before = files_under(project)
    first = register.main(no_transfer, project, no_transfer.selected[0])
    assert covered(files_under(project) - before, declared("register", raw, v))
    assert first["champion"] and first["decision"] == "no champion yet"

    before = files_under(project)
    transfer.prepare_main(params, project, "rgb")
    assert covered(files_under(project) - before, declared("prepare-transfer", raw, target="rgb"))
    before = files_under(project)
    t = transfer.main(params, project, variant, "rgb")
    assert covered(files_under(project) - before, declared("transfer", raw, v, target="rgb"))
    rec = json.loads((project / f"runs/{v}/eval/transfer/rgb/protocol.json").read_text())
    assert rec["adaptation"]["from"] == [3, 12, 12] and rec["adaptation"]["to"] == [1, 16, 16]
    assert set(t) == {f"{p}transfer_rgb_{m}" for p in ("", "random_") for m in ("linear_top1", "knn_top1")}

    # ... and again after it: the same encoder's version records the transfer metrics
    out = register.main(params, project, variant)
    assert out["version"] == first["version"] and out["decision"] == \
        "already registered as v1 (same encoder); recorded 4 new or changed metric(s)"
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    mv = mlflow.tracking.MlflowClient().get_model_version(out["name"], out["version"])
    assert mv.tags["csl.champion_metric"] == "finetune_10pct_top1"
    assert float(mv.tags["csl.metrics.finetune_10pct_top1"]) == pytest.approx(ft["finetune_10pct_top1"], abs=1e-6)
    assert float(mv.tags["csl.metrics.cluster_nmi"]) > 0 and "csl.metrics.transfer_rgb_linear_top1" in mv.tags
    runs = {r.info.run_name: r for r in mlflow.search_runs(experiment_names=["csl-test"], output_format="list")}
    for name in ("clustering", "retrieval", "finetune-10pct", "distill-10pct", "transfer-rgb"):
        assert runs[f"{name}@{v}"].info.status == "FINISHED" and f"csl.run.{name}" in mv.tags
    ftrun = runs[f"finetune-10pct@{v}"]
    assert ftrun.data.tags["csl.subset_sha256"] == subset["sha256"] and ftrun.data.params["from_head_layer"] == "1"
    assert runs[f"finetune-10pct@{v}"].data.metrics["finetune_10pct_top1"] == pytest.approx(ft["finetune_10pct_top1"])

    report.main(params, project)
    html = (project / "reports/report.html").read_text()
    assert "finetune 10pct top1" in html.lower() or "fine-tune 10%" in html
    assert "Retrieval" in html


def test_protocol_bad_input_is_refused_before_any_work(project: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    with pytest.raises(CslError, match="champion_metric' 'cluster_nmi' is not produced.*linear_top1, knn_top1"):
        from csl.params import parse_params

        parse_params({**raw, "eval": {**raw["eval"], "champion_metric": "cluster_nmi"}})
    with pytest.raises(CslError, match="distillation needs the fine-tuned teacher of the same fraction"):
        parse_params({**raw, "eval": {**raw["eval"], "run": {"finetune": [0.1], "distill": [0.01]}}})
    with pytest.raises(CslError, match="names \\['x'\\], which 'eval.transfer.datasets' does not define"):
        parse_params({**raw, "eval": {**raw["eval"], "run": {"transfer": ["x"]}}})
    # DVC reads its stages' params from the file (its matrices read plan.yaml, which csl writes):
    # csl run says which key is missing
    from csl.stages.run import check_param_keys

    check_param_keys(project / "params.yaml", REPO / "dvc.yaml")
    short = {**raw, "eval": {k: v for k, v in raw["eval"].items() if k not in ("gallery", "clustering")}}
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(short))
    with pytest.raises(CslError, match="must set eval.clustering, eval.gallery: DVC"):
        check_param_keys(tmp_path / "short.yaml", REPO / "dvc.yaml")
    params = load_params(project / "params.yaml")
    prepare.main(params, project)
    # 1% of 60 images per class rounds to 1; 0.5% leaves every class empty
    with pytest.raises(CslError, match="a label fraction of 0.005 leaves class 0"):
        finetune.main(params, project, params.selected[0], "0.005")
    # k larger than the data: refused before the features are read
    big = parse_params({**raw, "eval": {**raw["eval"], "retrieval": {"ks": [1, 5000]}}})
    with pytest.raises(CslError, match="recall@5000, but the training set has 600 images"):
        probe.check(big, "retrieval", {"classes": list(range(10)), "num_test": 200, "num_train": 600})
    with pytest.raises(CslError, match="k = 10 \\(the number of classes\\) <= the 5 test images"):
        probe.check(params, "clustering", {"classes": list(range(10)), "num_test": 5, "num_train": 600})
    # an unlabelled transfer target (one class folder) is refused when prepared
    one = tmp_path / "one" / "only"
    one.mkdir(parents=True)
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(one / f"{i}.png")
    bad = parse_params({**raw, "eval": {**raw["eval"], "transfer": {"datasets": {"u": {
        "dataset": "imagefolder", "source": str(tmp_path / "one")}}}}})
    with pytest.raises(CslError, match="found 1 class folder"):
        transfer.prepare_main(bad, project, "u")
