"""``csl run`` end to end on collections of unlabeled images of mixed sizes and formats: a flat
directory, nested folders, a zip and an ``s3://`` prefix (moto's server) each go through prepare,
pretrain, the label-free protocols, register and report with no labels anywhere (no label-based stage
is planned); nested folders become labels only with ``labels: folders`` (then linear-eval runs)."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import mlflow
import pytest
import yaml

from conftest import BIN, make_dvc_project, tiny_method, tiny_params
from image_collection import write_collection

pytestmark = pytest.mark.slow
LABEL_BASED = ("linear-eval", "clustering", "retrieval", "finetune")


def images_params(source: str, probes: list[str], labels: str | None = None) -> dict:
    method = tiny_method(epochs=1)
    method["train"]["batch_size"] = 32
    params = tiny_params(Path("unused"), {"simclr-tiny": method})
    params["data"] = {"dataset": "images", "source": source, "image_size": 24, "test_fraction": 0.25,
                      **({"labels": labels} if labels else {})}
    params["eval"]["run"] = {"probes": ["clustering", "retrieval", *probes], "finetune": [0.1], "distill": [],
                             "transfer": []}
    params["eval"]["champion_metric"] = "linear_top1" if labels == "folders" else "rankme"
    params["eval"]["gallery"] = {"clusters": 4, "per_cluster": 4, "queries": 4, "neighbours": 3}
    params["health"]["samples"] = 16
    return params


def csl_run(project: Path, env: dict[str, str]) -> str:
    out = subprocess.run([str(BIN / "csl"), "run"], cwd=project, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def stage_names(project: Path) -> list[str]:
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["csl-test"], output_format="list")
    return sorted(r.info.run_name for r in runs if r.data.tags.get("csl.stage") != "pipeline")


def check_unlabeled(project: Path, out: str, probes: list[str]) -> None:
    assert ("not planned: linear-eval, probe clustering, probe retrieval, finetune 0.1 (needs labels, and the data "
            "has none: data.dataset images)") in out
    meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
    assert meta["classes"] == [] and meta["labelled"] is False and meta["native"] is True
    names = stage_names(project)
    assert names == sorted(["prepare", "pretrain@simclr-tiny", "features@simclr-tiny", "register@simclr-tiny",
                            "report", *(f"{p}@simclr-tiny" for p in probes)])
    assert not any(n.startswith(LABEL_BASED) for n in names)
    assert not (project / "runs/simclr-tiny/eval/metrics.json").exists()  # no linear-eval
    rank = json.loads((project / "runs/simclr-tiny/eval/rankme/metrics.json").read_text())["rankme"]
    assert rank >= 1.0
    report = (project / "reports" / "report.md").read_text()
    assert "Not planned: linear-eval" in report and "RankMe (effective rank)" in report
    assert "linear top-1" not in report.split("## Registered")[0]  # no label-based number anywhere above
    assert "registered:   models:/csl-encoder-" in out and "(champion)" in out
    history = json.loads((project / "runs/simclr-tiny/pretrain/history.json").read_text())
    assert history[-1]["health/rankme"] > 1.0  # the online check ran and was logged


def test_flat_directory_end_to_end(tmp_path: Path) -> None:
    write_collection(tmp_path / "photos", 160)
    probes = ["rankme", "alignment", "dim_std", "gallery"]
    project, env = make_dvc_project(tmp_path, images_params(str(tmp_path / "photos"), probes))
    out = csl_run(project, env)
    check_unlabeled(project, out, probes)
    for f in ("clusters.png", "neighbours.png", "map.png"):
        assert (project / "runs/simclr-tiny/eval/gallery" / f).stat().st_size > 1000
    assert any(f.name.startswith("gallery_clusters") for f in (project / "reports").iterdir())
    # the plan DVC read is the one written from params.yaml; a second run does nothing
    assert "up to date: nothing to run" in csl_run(project, env)


def test_zip_of_nested_folders_end_to_end(tmp_path: Path) -> None:
    files = write_collection(tmp_path / "photos", 160, nested=True)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as zf:
        for f in files:
            zf.write(f, f"photos/{f.relative_to(tmp_path / 'photos').as_posix()}")
    project, env = make_dvc_project(tmp_path, images_params(str(tmp_path / "photos.zip"), ["rankme"]))
    check_unlabeled(project, csl_run(project, env), ["rankme"])


def test_nested_directory_without_and_with_folder_labels(tmp_path: Path) -> None:
    write_collection(tmp_path / "photos", 160, nested=True)
    project, env = make_dvc_project(tmp_path, images_params(str(tmp_path / "photos"), ["rankme"]))
    check_unlabeled(project, csl_run(project, env), ["rankme"])
    # the same folders as labels, said explicitly: the label-based protocols are planned and run
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    project, env = make_dvc_project(labelled, images_params(str(tmp_path / "photos"), ["rankme"], "folders"))
    out = csl_run(project, env)
    # fine-tuning trains on images held in memory: a streamed collection leaves it out, saying why
    assert "not planned: finetune 0.1 (trains on images held in memory, and the data is streamed" in out
    meta = json.loads((project / "data/prepared/meta.json").read_text())
    assert meta["classes"] == ["2026-11", "2026-12"]
    names = stage_names(project)
    assert {"linear-eval@simclr-tiny", "clustering@simclr-tiny", "retrieval@simclr-tiny"} <= set(names)
    assert not any(n.startswith("finetune") for n in names)
    assert 0.0 <= json.loads((project / "runs/simclr-tiny/eval/metrics.json").read_text())["linear_top1"] <= 1.0


def test_s3_prefix_end_to_end(tmp_path: Path, s3) -> None:  # type: ignore[no-untyped-def]
    import boto3

    endpoint, bucket, s3_env = s3
    client = boto3.client("s3", endpoint_url=endpoint)
    for f in write_collection(tmp_path / "photos", 160, nested=True):
        client.upload_file(str(f), bucket, f"camera/{f.relative_to(tmp_path / 'photos').as_posix()}")
    project, env = make_dvc_project(tmp_path, images_params(f"s3://{bucket}/camera", ["rankme"]))
    env.update(s3_env)
    check_unlabeled(project, csl_run(project, env), ["rankme"])
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"]["source"] == f"s3://{bucket}/camera"
