"""``csl distill --variant NAME --fraction F``: self-distillation (SimCLR v2, arXiv 2006.10029 §2.3).
The model fine-tuned on fraction F (``csl finetune``) is the teacher; a student of the same
architecture (or a smaller ``small_cnn``: ``eval.distill.student_widths``) from random init learns
from every training image, without labels, on the teacher's softened predictions of the same
augmented view. Writes ``runs/<variant>/eval/distill/<F>/{metrics.json,protocol.json}``: the
student's and the teacher's test top-1."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from csl import data as csl_data
from csl.config.strict import to_dict
from csl.evaluate import classifier
from csl.evaluate.distill import distillation_loss
from csl.evaluate.config import ProtocolItem
from csl.evaluate.subsets import fraction_key
from csl.io import atomic_dir
from csl.params import Params, Variant
from csl.precision import autocast as fast_autocast
from csl.stages.features import device
from csl.stages.finetune import in_memory, load_model
from csl.stages.layout import PREPARED, Layout


def distill(params: Params, variant: Variant, project: Path, fraction: str) -> dict[str, Any]:
    """Pure stage (see the module docstring)."""
    layout = Layout(project, params)
    cfg = params.eval.distill
    key = fraction_key(float(fraction))
    data = csl_data.load(layout.prepared)
    train, test = in_memory(data, "distillation")
    teacher, record = load_model(layout.item_dir(variant, ProtocolItem("finetune", fraction)) / "model.pt")
    spec = record["encoder_file"]
    if spec["dataset_content_hash"] != data.meta["content_hash"]:
        from csl.errors import DataError

        raise DataError(f"the teacher of {variant.name} was fine-tuned on other data than {layout.prepared}; "
                        "rerun 'csl finetune' (dvc repro does this for you)")
    student_spec = None
    if cfg.student_widths is not None:
        if spec["encoder"].get("name") != "small_cnn":
            from csl.errors import ConfigError

            raise ConfigError("eval.distill.student_widths sets a smaller small_cnn student, but the teacher's "
                              f"encoder is {spec['encoder'].get('name')}; set student_widths: null")
        student_spec = {**spec["encoder"], "widths": list(cfg.student_widths)}
    seed = params.eval.seed + 100
    student = classifier.build_classifier(spec, record["from_head_layer"], record["num_classes"], seed,
                                          random_init=True, encoder_spec=student_spec)
    teacher.to(device()).eval()
    autocast = fast_autocast(device())

    def loss(logits: torch.Tensor, _: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast:
            target = teacher(x).float()
        return distillation_loss(logits, target, cfg.temperature)

    start = time.perf_counter()
    stats = classifier.train(student, train.images, loss, spec["mean"], spec["std"], cfg.epochs, cfg.batch_size,
                             cfg.lr, cfg.momentum, 0.0, seed, device(), desc=f"{variant.name} distill {key}")
    seconds = time.perf_counter() - start

    def acc(net: torch.nn.Module) -> float:
        return classifier.top1(classifier.predict(net, test.images, spec["mean"], spec["std"], params.eval.batch_size,
                                                  device()), test.labels)

    metrics: dict[str, Any] = {f"distill_{key}_student_top1": acc(student), f"distill_{key}_teacher_top1": acc(teacher),
                               f"distill_{key}_steps": stats["steps"], f"distill_{key}_seconds": seconds,
                               f"distill_{key}_final_loss": stats["final_loss"]}
    out = layout.item_dir(variant, ProtocolItem("distill", fraction))
    with atomic_dir(out) as tmp:
        (tmp / "protocol.json").write_text(json.dumps({"protocol": "distill", "fraction": float(fraction),
                                                       "student_encoder": student_spec or spec["encoder"],
                                                       **to_dict(cfg)}, indent=2) + "\n")
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    layout.upload_artifacts(out)
    return metrics


def main(params: Params, project: Path, variant: Variant, fraction: str) -> dict[str, Any]:
    from csl import tracking

    layout = Layout(project, params)
    key = fraction_key(float(fraction))
    with tracking.stage_run(project, params.tracking.experiment, ProtocolItem("distill", fraction).stage,
                            variant.name) as rec:
        rec.params({"variant": variant.name, "protocol": "distill", "fraction": float(fraction),
                    **to_dict(params.eval.distill)})
        rec.dataset(csl_data.read_meta(layout.prepared), str(layout.prepared), tracking.dvc_out_md5(project, PREPARED))
        metrics = distill(params, variant, project, fraction)
        rec.metrics(metrics)
        rec.artifact(layout.item_dir(variant, ProtocolItem("distill", fraction)), "distill")
    print(f"distilled {variant.name} ({key} teacher): student top-1 {metrics[f'distill_{key}_student_top1']:.4f}, "
          f"teacher {metrics[f'distill_{key}_teacher_top1']:.4f}")
    return metrics
