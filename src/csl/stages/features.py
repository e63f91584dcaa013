"""``csl features --variant NAME``: the frozen features of the variant's encoder (and of a random-init
encoder of the same architecture) on every train and test image, computed once and read by the
linear probe, kNN, clustering and retrieval stages: ``runs/<variant>/features/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from csl import data as csl_data
from csl.encoders.saved import build_from_payload, read_payload
from csl.errors import CslError, DataError
from csl.evaluate.protocol import Features, encoder_features
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.stages.layout import PREPARED, Layout

FILES = ("train", "test", "train_labels", "test_labels")


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def checked_payload(layout: Layout, variant: Variant, meta: dict[str, Any]) -> dict[str, Any]:
    """The variant's encoder file, refused when it was trained on other data than ``meta``'s."""
    payload = read_payload(layout.pretrain_dir(variant) / "encoder.pt")
    if payload["dataset_content_hash"] != meta["content_hash"]:
        raise DataError(f"the encoder of {variant.name} was trained on other data than {layout.prepared}; "
                        "rerun 'csl pretrain' (dvc repro does this for you)")
    return payload


def features(params: Params, variant: Variant, project: Path) -> dict[str, Any]:
    """Pure stage: encoder + prepared data -> ``runs/<variant>/features/*.npy`` + ``meta.json``."""
    layout = Layout(project, params)
    layout.check_storage()
    data = csl_data.load(layout.prepared)
    payload = checked_payload(layout, variant, data.meta)
    cfg = params.eval
    found = {"": encoder_features(build_from_payload(payload), data, cfg, device(), name=variant.name)}
    if cfg.random_baseline:
        found["random_"] = encoder_features(build_from_payload(payload, random_init_seed=cfg.seed), data, cfg,
                                            device(), name="random-init")
    f = found[""]
    meta = {"variant": variant.name, "dataset": data.meta["name"], "content_hash": data.meta["content_hash"],
            "classes": list(data.meta["classes"]), "dim": int(f.train.shape[1]), "num_train": int(f.train.shape[0]),
            "num_test": int(f.test.shape[0]), "random_baseline": cfg.random_baseline, "seed": cfg.seed}
    out = layout.features_dir(variant)
    with atomic_dir(out) as tmp:
        for prefix, feats in found.items():
            np.save(tmp / f"{prefix}train.npy", feats.train.float().numpy())
            np.save(tmp / f"{prefix}test.npy", feats.test.float().numpy())
        np.save(tmp / "train_labels.npy", f.train_labels.numpy().astype(np.int64))
        np.save(tmp / "test_labels.npy", f.test_labels.numpy().astype(np.int64))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    layout.upload_artifacts(out)
    return meta


def read_meta(directory: Path) -> dict[str, Any]:
    f = directory / "meta.json"
    if not f.is_file():
        raise CslError(f"no features in {directory}: run 'csl features' for this variant first (dvc repro does)")
    return dict(json.loads(f.read_text()))


def read_features(directory: Path, random: bool = False) -> Features | None:
    """The trained encoder's features (``random``: the random-init encoder's; None when not computed)."""
    meta = read_meta(directory)
    if random and not meta["random_baseline"]:
        return None
    p = "random_" if random else ""
    load = lambda name: torch.from_numpy(np.load(directory / f"{name}.npy"))  # noqa: E731
    return Features(load(f"{p}train"), load("train_labels"), load(f"{p}test"), load("test_labels"))


def main(params: Params, project: Path, variant: Variant) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    with tracking.stage_run(project, params.tracking.experiment, "features", variant.name) as rec:
        rec.params({"variant": variant.name, "eval.batch_size": params.eval.batch_size,
                    "eval.random_baseline": params.eval.random_baseline, "eval.seed": params.eval.seed})
        rec.dataset(csl_data.read_meta(layout.prepared), str(layout.prepared), tracking.dvc_out_md5(project, PREPARED))
        meta = features(params, variant, project)
        rec.metrics({"dim": meta["dim"], "num_train": meta["num_train"], "num_test": meta["num_test"]})
    print(f"features of {variant.name}: {meta['num_train']} train / {meta['num_test']} test, {meta['dim']}-d "
          f"-> {layout.features_dir(variant)}")
    return meta
