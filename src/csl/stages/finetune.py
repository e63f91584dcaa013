"""``csl finetune --variant NAME --fraction F``: fine-tune the variant's encoder (and, with
``eval.finetune.from_head_layer``, the first layers of its projection head: SimCLR v2) on a
class-balanced fraction F of the training labels, and beside it the same architecture from random
init on the same subset with the same budget (the honest baseline); test top-1 of both.

Writes ``runs/<variant>/eval/finetune/<F>/``: ``metrics.json``, ``subset.json`` (size, per-class counts,
sha256 of the indices: the same for every variant), ``protocol.json`` and ``model.pt`` (the fine-tuned
classifier: the teacher of ``csl distill``)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.data.dataset import Split
from csl.errors import CslError
from csl.evaluate import classifier
from csl.evaluate.config import ProtocolItem
from csl.evaluate.subsets import balanced_subset, fraction_key, subset_hash
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.stages.features import checked_payload, device
from csl.stages.layout import PREPARED, Layout

MODEL_FORMAT = "csl-finetuned-v1"


def in_memory(data: csl_data.Prepared, what: str) -> tuple[Split, Split]:
    if not isinstance(data.train, Split) or not isinstance(data.test, Split):
        raise CslError(f"{what} trains on the images in memory; the prepared dataset streams shards "
                       "(data.dataset: shards). Run it on a dataset prepared in memory")
    return data.train, data.test


def subset(params: Params, labels: np.ndarray, fraction: float) -> tuple[np.ndarray, dict[str, Any]]:
    idx = balanced_subset(labels, fraction, params.eval.seed)
    classes, counts = np.unique(labels[idx], return_counts=True)
    return idx, {"fraction": fraction, "seed": params.eval.seed, "size": int(len(idx)), "sha256": subset_hash(idx),
                 "per_class": {int(c): int(n) for c, n in zip(classes, counts)}}


def spec_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The encoder file's description without weights (the head's shape kept, its weights dropped)."""
    spec = {k: v for k, v in payload.items() if k not in ("state_dict", "head")}
    if payload.get("head") is not None:
        spec["head"] = {"args": payload["head"]["args"]}
    return spec


def finetune(params: Params, variant: Variant, project: Path, fraction: str,
             data: csl_data.Prepared | None = None) -> dict[str, Any]:
    """Pure stage (see the module docstring); ``data``: the prepared dataset when the caller has it."""
    layout = Layout(project, params)
    cfg = params.eval.finetune
    frac = float(fraction)
    data = data if data is not None else csl_data.load(layout.prepared)
    train, test = in_memory(data, "fine-tuning")
    idx, record = subset(params, train.labels, frac)  # a fraction leaving a class empty fails here
    payload = checked_payload(layout, variant, data.meta)
    classes = len(data.meta["classes"])
    key = fraction_key(frac)
    epochs = cfg.epochs_for(frac)
    images, labels = train.images[idx], torch.as_tensor(train.labels[idx]).long()
    seed = params.eval.seed

    def run(random_init: bool) -> tuple[classifier.Classifier, float, dict[str, float]]:
        net = classifier.build_classifier(payload, cfg.from_head_layer, classes, seed, random_init=random_init)
        start = time.perf_counter()
        stats = classifier.train(net, images, lambda logits, i, x: F.cross_entropy(logits, labels[i]),
                                 payload["mean"], payload["std"], epochs, cfg.batch_size, cfg.lr, cfg.momentum,
                                 cfg.weight_decay, seed, device(),
                                 desc=f"{'random-init' if random_init else variant.name} fine-tune {key}")
        stats["seconds"] = time.perf_counter() - start
        acc = classifier.top1(classifier.predict(net, test.images, payload["mean"], payload["std"],
                                                 params.eval.batch_size, device()), test.labels)
        return net, acc, stats

    net, acc, stats = run(False)
    metrics: dict[str, Any] = {f"finetune_{key}_top1": acc, f"finetune_{key}_examples": record["size"],
                               f"finetune_{key}_epochs": epochs, f"finetune_{key}_steps": stats["steps"],
                               f"finetune_{key}_seconds": stats["seconds"]}
    if cfg.baseline:
        _, racc, _ = run(True)
        metrics[f"random_finetune_{key}_top1"] = racc
    out = layout.item_dir(variant, ProtocolItem("finetune", fraction))
    with atomic_dir(out) as tmp:
        buf = io.BytesIO()
        torch.save({"format": MODEL_FORMAT, "encoder_file": spec_of(payload), "from_head_layer": cfg.from_head_layer,
                    "num_classes": classes, "fraction": frac,
                    "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}, buf)
        (tmp / "model.pt").write_bytes(buf.getvalue())
        (tmp / "subset.json").write_text(json.dumps(record, indent=2) + "\n")
        (tmp / "protocol.json").write_text(json.dumps({"protocol": "finetune", "fraction": frac, "epochs": epochs,
                                                       **to_dict(cfg)}, indent=2) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    layout.upload_artifacts(out)
    return metrics


def load_model(path: Path) -> tuple[classifier.Classifier, dict[str, Any]]:
    """The fine-tuned classifier written by :func:`finetune`, and its record."""
    if not path.is_file():
        raise CslError(f"no fine-tuned model at {path}: run 'csl finetune' for that fraction first")
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise CslError(f"{path} is not a csl fine-tuned model (expected format {MODEL_FORMAT})")
    net = classifier.build_classifier(record["encoder_file"], record["from_head_layer"], record["num_classes"],
                                      0, random_init=True)
    net.load_state_dict(record["state_dict"])
    return net.eval(), record


def main(params: Params, project: Path, variant: Variant, fraction: str) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    frac = float(fraction)
    data = csl_data.load(layout.prepared)
    train, _ = in_memory(data, "fine-tuning")
    _, record = subset(params, train.labels, frac)  # a bad fraction fails before any run opens
    with tracking.stage_run(project, params.tracking.experiment, ProtocolItem("finetune", fraction).stage,
                            variant.name) as rec:
        rec.params({"variant": variant.name, "protocol": "finetune", "fraction": frac, "seed": params.eval.seed,
                    **to_dict(params.eval.finetune)})
        rec.tags({"csl.subset_sha256": record["sha256"], "csl.subset_size": str(record["size"])})
        rec.dataset(csl_data.read_meta(layout.prepared), str(layout.prepared), tracking.dvc_out_md5(project, PREPARED))
        metrics = finetune(params, variant, project, fraction, data)
        rec.metrics(metrics)
        out = layout.item_dir(variant, ProtocolItem("finetune", fraction))
        for name in ("metrics.json", "subset.json", "protocol.json"):
            rec.artifact(out / name, "finetune")
    key = fraction_key(frac)
    base = metrics.get(f"random_finetune_{key}_top1")
    print(f"fine-tuned {variant.name} on {key} of the labels ({record['size']} images, subset sha256 "
          f"{record['sha256'][:12]}): top-1 {metrics[f'finetune_{key}_top1']:.4f}"
          + (f" (random init {base:.4f})" if base is not None else ""))
    return metrics
