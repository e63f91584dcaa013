"""The encoder registry: registration with lineage tags, idempotence, the champion rule, loading
``models:/...@champion`` as a feature extractor, ``csl lineage`` round trip (real MLflow, SQLite)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from csl.tracking.model_registry import decide_champion
from conftest import BIN, csl_env

VARIANT = "simclr-tiny"
NAME = "csl-encoder-fashion-mnist-simclr-tiny"


def csl(project: Path, *args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / "csl"), *args], cwd=project, env=csl_env(project), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_champion_rule_by_hand() -> None:
    champ = SimpleNamespace(version="3", tags={"csl.data.dvc_md5": "abc.dir", "csl.metrics.linear_top1": "0.800000"})
    assert decide_champion("linear_top1", 0.5, "abc.dir", None) == (True, "no champion yet")
    promote, why = decide_champion("linear_top1", 0.81, "abc.dir", champ)
    assert promote and "beats champion v3's 0.8000" in why
    promote, why = decide_champion("linear_top1", 0.80, "abc.dir", champ)  # a tie does not move it
    assert not promote and "does not beat" in why
    # a float32 accuracy against the 6-decimal tag it was stored as: still a tie (it was promoted)
    promote, why = decide_champion("linear_top1", float(torch.tensor(0.8)), "abc.dir", champ)
    assert float(torch.tensor(0.8)) > 0.8 and not promote and "does not beat" in why
    promote, why = decide_champion("linear_top1", 0.99, "other.dir", champ)  # other data: not comparable
    assert not promote and "other data" in why
    # the rule names its metric: ranked by another metric, the champion's tag for it decides
    champ.tags["csl.metrics.finetune_1pct_top1"] = "0.700000"
    promote, why = decide_champion("finetune_1pct_top1", 0.71, "abc.dir", champ)
    assert promote and why.startswith("finetune 1pct top1 0.7100 beats champion v3's 0.7000")
    promote, why = decide_champion("cluster_nmi", 0.99, "abc.dir", champ)  # the champion never measured it
    assert not promote and "has no cluster_nmi" in why


def test_register_load_and_lineage(project: Path) -> None:
    csl(project, "prepare")
    csl(project, "pretrain", "--variant", VARIANT)
    csl(project, "features", "--variant", VARIANT)
    csl(project, "linear-eval", "--variant", VARIANT)
    out = csl(project, "register", "--variant", VARIANT).stdout
    assert f"registered models:/{NAME}/1 (champion): no champion yet" in out
    import mlflow
    from mlflow.tracking import MlflowClient

    from csl.tracking.model_registry import file_sha256

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    mv = MlflowClient().get_model_version(NAME, "1")
    reg = json.loads((project / "runs" / VARIANT / "register" / "registration.json").read_text())
    sha = file_sha256(project / "runs" / VARIANT / "pretrain" / "encoder.pt")
    assert reg == {"name": NAME, "version": "1", "uri": f"models:/{NAME}/1", "run_id": mv.run_id,
                   "encoder_sha256": sha, "store": f"sqlite:///{(project / 'mlflow.db').resolve()}",
                   "champion": True, "decision": "no champion yet"}
    assert mv.tags["csl.encoder_sha256"] == sha
    # a second registration of the same run changes nothing, and records the same version and run
    out = csl(project, "register", "--variant", VARIANT).stdout
    assert f"unchanged: models:/{NAME}/1 (champion): already registered as v1" in out
    again = json.loads((project / "runs" / VARIANT / "register" / "registration.json").read_text())
    assert {k: again[k] for k in ("uri", "run_id", "encoder_sha256")} == {k: reg[k] for k in ("uri", "run_id",
                                                                                                "encoder_sha256")}
    assert [str(v.version) for v in MlflowClient().search_model_versions(f"name = '{NAME}'")] == ["1"]

    # the champion is a ready feature extractor: uint8 images in, embeddings out, normalized inside
    model = mlflow.pytorch.load_model(f"models:/{NAME}@champion")
    from csl import data as csl_data
    from csl.encoders.saved import load_feature_extractor

    images = torch.as_tensor(csl_data.load(project / "data" / "prepared").test.images[:8])
    emb = model(images)
    ref = load_feature_extractor(project / "runs" / VARIANT / "pretrain" / "encoder.pt")(images)
    assert emb.shape == (8, ref.shape[1]) and torch.equal(emb, ref)
    info = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["dtype"] == str(np.dtype("uint8"))

    # lineage round trip
    chain = json.loads(csl(project, "lineage", f"models:/{NAME}@champion", "--json").stdout)
    meta = json.loads((project / "data" / "prepared" / "meta.json").read_text())
    metrics = json.loads((project / "runs" / VARIANT / "eval" / "metrics.json").read_text())
    assert chain["model"]["uri"] == f"models:/{NAME}/1" and chain["model"]["aliases"] == ["champion"]
    assert chain["dataset"]["content_hash"] == meta["content_hash"] and chain["dataset"]["path"] == "data/prepared"
    assert chain["metrics"]["linear_top1"] == round(metrics["linear_top1"], 6)
    assert set(chain["stage_runs"]) == {"pretrain", "features", "linear-eval", "register"}
    assert all(r["status"] == "FINISHED" for r in chain["stage_runs"].values())
    assert chain["params"]["values"]["variant"] == VARIANT
    from csl.params import load_params
    from csl.stages.register import params_hash

    p = load_params(project / "params.yaml")
    assert chain["params"]["hash"] == params_hash(p, p.variant(VARIANT))

    # a second encoder (another seed): v2; the champion moves only if it is better on the same data
    csl(project, "pretrain", "--variant", VARIANT, f"methods.{VARIANT}.train.seed=1")
    csl(project, "features", "--variant", VARIANT)
    csl(project, "linear-eval", "--variant", VARIANT)
    csl(project, "register", "--variant", VARIANT)
    reg2 = json.loads((project / "runs" / VARIANT / "register" / "registration.json").read_text())
    top2 = json.loads((project / "runs" / VARIANT / "eval" / "metrics.json").read_text())["linear_top1"]
    assert reg2["version"] == "2" and reg2["champion"] == (round(top2, 6) > round(metrics["linear_top1"], 6))
    champ = MlflowClient().get_model_version_by_alias(NAME, "champion")
    assert str(champ.version) == ("2" if reg2["champion"] else "1")
    assert MlflowClient().get_model_version(NAME, "2").tags["csl.champion_decision"].startswith(
        "promoted: " if reg2["champion"] else "kept: ")
    listing = csl(project, "registry", "list").stdout
    assert NAME in listing and listing.count(NAME) == 2
    csl(project, "registry", "promote", f"{NAME}/2")
    assert str(MlflowClient().get_model_version_by_alias(NAME, "champion").version) == "2"
