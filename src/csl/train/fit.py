"""``fit``: pretrain one method variant on a prepared dataset, resuming from checkpoints."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from csl.data.prepared import Prepared, StreamSplit
from csl.encoders.global_bn import convert_to_global_bn
from csl.methods.base import Method
from csl.methods.config import MethodConfig
from csl.precision import bf16_pays, on_gpu, resolve_precision
from csl.train.build import build_method, view_crops
from csl.distributed import init_after_elastic_restart, launch_rank
from csl.io import s3
from csl.train.checkpoint import EpochCheckpoint, fetch_remote, resume_checkpoint
from csl.train.checkpoint_io import AtomicCheckpointIO
from csl.train.compile import compile_networks
from csl.train.finite import FiniteLossGuard
from csl.train.data import EpochSetter, train_loader, train_stream_loader
from csl.train.features import EpochFeatures
from csl.train.config import HealthConfig
from csl.train.health import HealthMonitor, heldout_batch
from csl.train.history import EpochHistory, MetricSink
from csl.train.module import LOG_EVERY_N_STEPS, PretrainModule
from csl.train.progress import StepProgressBar
from csl.train.optim import effective_lr


@dataclass
class FitResult:
    encoder_state: dict[str, torch.Tensor]
    history: list[dict[str, float]]
    summary: dict[str, Any] = field(default_factory=dict)
    # the MLP projection head (``{"args", "state_dict"}``) of methods that have one as ``head``
    # (SimCLR and its variants): SimCLR v2 fine-tunes from its first layer
    head: dict[str, Any] | None = None


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def fit(cfg: MethodConfig, data: Prepared, ckpt_dir: Path, sink: MetricSink | None = None,
        extra_callbacks: list[L.Callback] | None = None, remote_ckpt: str | None = None,
        health: HealthConfig | None = None, init_state: dict[str, torch.Tensor] | None = None) -> FitResult:
    """Train ``cfg`` on ``data.train``; resume from ``ckpt_dir/last.ckpt`` when present (or from
    ``prev.ckpt`` when the last one is unreadable).

    A checkpoint is written (atomically) after every epoch. With ``remote_ckpt``
    (``s3://...``) it is also uploaded there, and the remote pair, when present, is fetched
    before training and resumed from. ``extra_callbacks`` are added to the trainer's own.
    ``health``: the online health check and collapse guard (:mod:`csl.train.health`) on held-out images.
    ``init_state``: the encoder's starting weights (a warm start; the caller keys ``ckpt_dir`` on them).
    """
    _quiet_lightning()
    t = cfg.train
    if remote_ckpt:
        s3.check_bucket(remote_ckpt)  # before any work: an unreachable store fails now, with the fix
    L.seed_everything(t.seed, workers=True, verbose=False)
    world = t.devices * t.num_nodes
    global_batch = t.batch_size * world
    n_train = int(data.meta["num_train"])
    if n_train < global_batch:
        from csl.errors import ConfigError

        raise ConfigError(f"train.batch_size x processes = {global_batch} exceeds the {n_train} training "
                          "images; lower the batch size")
    steps_per_epoch = n_train // global_batch
    if t.limit_train_batches is not None:
        steps_per_epoch = min(steps_per_epoch, t.limit_train_batches)
    lr = effective_lr(cfg.optimizer, global_batch)
    precision = resolve_precision(t.precision, t.accelerator)
    if precision == "bf16-mixed" and not on_gpu(t.accelerator) and not bf16_pays("cpu"):
        warnings.warn("train.precision: bf16-mixed on a CPU without native bf16 (AVX-512 BF16 or AMX) is "
                      "emulated and about 10x slower than fp32; precision: auto picks 32-true here", stacklevel=2)
    method = build_method(cfg, data.meta, init_state)
    if world > 1 and t.sync_batchnorm:
        convert_to_global_bn(method)  # in place: the children are replaced (the method is no BatchNorm)
    if t.compile:
        compile_networks(method)
    method.check_dataset(n_train, labelled=len(data.meta.get("classes", [])) >= 2 and data.meta.get("labelled", True))
    module = PretrainModule(
        method, cfg.optimizer, cfg.schedule, lr,
        total_steps=steps_per_epoch * t.epochs, steps_per_epoch=steps_per_epoch, seed=t.seed,
        gradient_clip=t.gradient_clip,
    )
    monitor = HealthMonitor(health, heldout_batch(data, health.samples), list(data.meta["mean"]),
                            list(data.meta["std"]), sink) if health is not None and health.enabled else None
    history = EpochHistory(global_batch, sink, monitor.epoch_values if monitor is not None else None)
    callbacks: list[L.Callback] = [
        FiniteLossGuard(),  # first: a diverged epoch is refused before it is recorded or saved
        *([monitor] if monitor is not None else []),  # before the history: the epoch's row shows it
        history,  # before the checkpoint, so that the saved history includes this epoch
        EpochCheckpoint(ckpt_dir, remote_ckpt),
        *(extra_callbacks or []),
    ]
    if t.progress_bar:
        callbacks.append(StepProgressBar(refresh_rate=10))
    needs = method.needs
    if isinstance(data.train, StreamSplit):  # larger than memory: streamed from shards
        if needs.indices or type(method).wants_features is not Method.wants_features:
            from csl.errors import ConfigError

            raise ConfigError(f"method '{cfg.method}' needs sample indices or whole-dataset features between "
                              "epochs, which streamed shards do not give; use a dataset held in memory "
                              "(data.dataset other than 'shards')")
        crops = view_crops(cfg, data.meta) if data.meta.get("native") else None  # crops from native-size images
        loader, stream = train_stream_loader(data.train.root, t.batch_size, data.image_size, data.channels, t.seed,
                                             labels=needs.labels, crops=crops)
        callbacks.append(EpochSetter(stream))
    else:
        loader = train_loader(data.train.images, t.batch_size, t.seed,
                              labels=data.train.labels if needs.labels else None, with_indices=needs.indices)
        callbacks.append(EpochFeatures(data.train.images, list(data.meta["mean"]), list(data.meta["std"])))
    torch.set_float32_matmul_precision("high")
    if world > 1:
        init_after_elastic_restart("nccl" if on_gpu(t.accelerator) else "gloo")
    trainer = L.Trainer(
        max_epochs=t.epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        precision=precision,  # type: ignore[arg-type]
        strategy="ddp" if world > 1 else "auto",  # gloo on CPU, NCCL on GPU
        use_distributed_sampler=False,  # EpochShuffle shards the global batches itself
        deterministic="warn" if t.deterministic else False,
        limit_train_batches=t.limit_train_batches,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        logger=False,
        enable_progress_bar=t.progress_bar,
        enable_checkpointing=False,  # EpochCheckpoint does it
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=LOG_EVERY_N_STEPS,
        default_root_dir=str(ckpt_dir),
    )
    if remote_ckpt:
        fetched = fetch_remote(ckpt_dir, remote_ckpt)
        if fetched and launch_rank() == 0:
            print(f"fetched {', '.join(fetched)} from {remote_ckpt}", flush=True)
    found = resume_checkpoint(ckpt_dir)
    resume = str(found) if found is not None else None
    start = time.perf_counter()
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume, weights_only=True)
    wall = time.perf_counter() - start
    rows = history.rows
    # images/s over all epochs of this training (resumed epochs included), time-weighted
    images_per_s = (
        sum(r["images_per_s"] * r["epoch_seconds"] for r in rows) / sum(r["epoch_seconds"] for r in rows)
        if rows else 0.0
    )
    summary = {
        "final_loss": rows[-1]["loss"] if rows else float("nan"),
        "epochs": t.epochs,
        "steps": int(trainer.global_step),
        "global_batch": global_batch,
        "effective_lr": lr,
        "images_per_s": images_per_s,
        "pretrain_seconds": sum(r["epoch_seconds"] for r in rows),
        "wall_seconds_this_invocation": wall,
        "resumed_from": resume,
        "remote_checkpoints": remote_ckpt,
        "precision": precision,
        "compiled": t.compile,
        "processes": world,
        "rank": int(trainer.global_rank),
    }
    encoder: torch.nn.Module = module.method.encoder  # type: ignore[assignment]
    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    return FitResult(state, rows, summary, projection_head(module.method))


def projection_head(method: torch.nn.Module) -> dict[str, Any] | None:
    from csl.extract.projection import ProjectionHead

    head = getattr(method, "head", None)
    if not isinstance(head, ProjectionHead):
        return None
    return {"args": dict(head.args), "state_dict": {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}}
