"""Transfer: the frozen encoder on another dataset.

``csl prepare-transfer --target T`` prepares ``eval.transfer.datasets.T`` into ``data/transfer/T`` (a DVC
output, versioned like ``data/prepared``). ``csl transfer --variant NAME --target T`` adapts its images to
the encoder's input (channels, size: :func:`csl.evaluate.adapt.adapt_images`, recorded), normalizes them
with the encoder's own statistics (as it saw its training data), and reports linear and kNN top-1 of the
trained and of a random-init encoder -> ``runs/<variant>/eval/transfer/<T>/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.encoders.saved import build_from_payload, read_payload
from csl.errors import ConfigError, DataError
from csl.evaluate.adapt import adapt_images
from csl.evaluate.config import ProtocolItem
from csl.evaluate.features import extract_features
from csl.evaluate.protocol import Features, frozen_metrics
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.stages.features import device
from csl.stages.finetune import in_memory
from csl.stages.layout import TRANSFER, Layout


def target_config(params: Params, target: str) -> Any:
    datasets = params.eval.transfer.datasets
    if target not in datasets:
        raise ConfigError(f"unknown transfer target {target!r}; eval.transfer.datasets defines: "
                          f"{', '.join(datasets) or 'none'}")
    return datasets[target]


def prepare_transfer(params: Params, project: Path, target: str) -> dict[str, Any]:
    """Pure stage: the target's source -> ``data/transfer/<target>`` (written atomically)."""
    cfg = target_config(params, target)
    raw = csl_data.read(cfg, project, seed=0)
    meta = csl_data.write(raw, Layout(project, params).transfer_data(target))
    return meta


def check_labelled(meta: dict[str, Any], where: Path) -> None:
    if len(meta.get("classes", [])) < 2:
        raise DataError(f"the transfer dataset {where} has {len(meta.get('classes', []))} class(es): a linear probe "
                        "and kNN need labelled images of at least 2 classes (an ImageFolder with one folder per "
                        "class)")


def transfer(params: Params, variant: Variant, project: Path, target: str) -> dict[str, Any]:
    """Pure stage (see the module docstring)."""
    layout = Layout(project, params)
    where = layout.transfer_data(target)
    meta = csl_data.read_meta(where)
    check_labelled(meta, where)
    data = csl_data.load(where)
    train, test = in_memory(data, "the transfer probe")
    payload = read_payload(layout.pretrain_dir(variant) / "encoder.pt")
    ch, size = int(payload["in_channels"]), int(payload["image_size"])
    xtr, record = adapt_images(train.images, ch, size)
    xte, _ = adapt_images(test.images, ch, size)
    cfg = params.eval
    encoders = {"": build_from_payload(payload)}
    if cfg.random_baseline:
        encoders["random_"] = build_from_payload(payload, random_init_seed=cfg.seed)
    metrics: dict[str, Any] = {}
    for prefix, enc in encoders.items():
        f = Features(
            extract_features(enc, xtr, payload["mean"], payload["std"], cfg.batch_size, device(),
                             desc=f"{prefix}{variant.name} on {target} (train)").cpu(),
            torch.as_tensor(train.labels),
            extract_features(enc, xte, payload["mean"], payload["std"], cfg.batch_size, device(),
                             desc=f"{prefix}{variant.name} on {target} (test)").cpu(),
            torch.as_tensor(test.labels))
        metrics.update({f"{prefix}transfer_{target}_{k}": v for k, v in
                        frozen_metrics(f, len(meta["classes"]), cfg).items()})
    out = layout.item_dir(variant, ProtocolItem("transfer", target))
    with atomic_dir(out) as tmp:
        (tmp / "protocol.json").write_text(json.dumps({
            "protocol": "transfer", "target": target, "target_data": to_dict(target_config(params, target)),
            "target_name": meta["name"], "target_content_hash": meta["content_hash"],
            "num_train": meta["num_train"], "num_test": meta["num_test"], "classes": meta["classes"],
            "adaptation": record, "normalization": "the encoder's (its pretraining data's mean/std)",
            "linear": to_dict(cfg.linear), "knn": to_dict(cfg.knn), "seed": cfg.seed}, indent=2) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    layout.upload_artifacts(out)
    return metrics


def prepare_main(params: Params, project: Path, target: str) -> None:
    from csl import tracking

    target_config(params, target)
    with tracking.stage_run(project, params.tracking.experiment, f"prepare-transfer-{target}") as rec:
        rec.params({"target": target, "data": to_dict(target_config(params, target))})
        meta = prepare_transfer(params, project, target)
        rec.metrics({"num_train": meta["num_train"], "num_test": meta["num_test"]})
        rec.tags({"csl.data.content_hash": meta["content_hash"], "csl.data.name": meta["name"]})
    print(f"prepared transfer target {target}: {meta['name']}, {meta['num_train']} train / {meta['num_test']} test, "
          f"shape {meta['shape']} -> {TRANSFER}/{target}")


def main(params: Params, project: Path, variant: Variant, target: str) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    target_config(params, target)
    where = layout.transfer_data(target)
    meta = csl_data.read_meta(where)
    check_labelled(meta, where)  # before any run opens
    with tracking.stage_run(project, params.tracking.experiment, ProtocolItem("transfer", target).stage,
                            variant.name) as rec:
        rec.params({"variant": variant.name, "protocol": "transfer", "target": target,
                    "data": to_dict(target_config(params, target))})
        rec.dataset(meta, str(where), tracking.dvc_out_md5(project, f"{TRANSFER}/{target}"))
        metrics = transfer(params, variant, project, target)
        rec.metrics(metrics)
        rec.artifact(layout.item_dir(variant, ProtocolItem("transfer", target)), "transfer")
    print(f"transfer of {variant.name} to {target}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return metrics
