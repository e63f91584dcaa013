"""No host-device synchronization per training step.

On a GPU, reading a value back to the host (``.item()``, ``bool(t)``, ``int(t)``), boolean
mask indexing, ``nonzero`` and friends wait for every queued kernel: one per step stalls the
pipeline. There is no GPU here, so the test watches the operators themselves: a
``TorchDispatchMode`` records every ATen call that synchronizes on a GPU, with the step it
happened in. Every method's step (augmentation, forward, loss, backward, optimizer, EMA) must
make none, and a whole ``fit`` may read back only on Lightning's logging steps (every
``log_every_n_steps``) and at epoch ends. A positive control shows the detector sees the
calls it must see.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from csl.methods.config import parse_method
from csl.train.build import build_method
from csl.train.fit import fit
from csl.train.optim import build_optimizer
from conftest import tiny_method
from test_methods import META, VARIANTS, batch_for, config

aten = torch.ops.aten
SYNCING = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default,
           aten.equal.default, aten.is_nonzero.default, aten.allclose.default, aten._unique2.default,
           aten.unique_consecutive.default, aten.repeat_interleave.Tensor}


class SyncDetector(TorchDispatchMode):
    """Records ``(step, op, where)`` for each ATen call that would make the host wait."""

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.hits: list[tuple[int, str, str]] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        syncs = func in SYNCING or (
            func is aten.index.Tensor and any(i is not None and i.dtype == torch.bool for i in args[1]))
        if syncs:
            frames = [f for f in traceback.extract_stack()[:-1] if "site-packages/torch/" not in f.filename]
            where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
            self.hits.append((self.step, str(func), where))
        return func(*args, **kwargs)


def test_the_detector_sees_reads_and_boolean_indexing() -> None:
    x = torch.randn(8)
    with SyncDetector() as d:
        x.sum().item()
        bool(x[0] > 0)
        x[x > 0].sum()
        (x + 1).mul(2)  # no read-back
    ops = [op for _, op, _ in d.hits]
    assert ops.count("aten._local_scalar_dense.default") == 2
    assert "aten.index.Tensor" in ops and len(ops) == 3


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_training_step_of_every_method_reads_nothing_back(name: str) -> None:
    cfg = parse_method(config(name), name)
    method = build_method(cfg, META)
    opt = build_optimizer(method, cfg.optimizer, 0.05)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with SyncDetector() as d:
        for step in range(3):  # queues fill, EMA targets move, prototypes unfreeze
            d.step = step
            method.before_step(step, 10, 5)
            loss = method.training_loss(batch_for(method, images), gen)["loss"]
            loss.backward()
            method.after_backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            method.after_step(step, 10)
    # SwAV reads its restored queue counter once, at the first step that uses the queue
    allowed = {(0, "aten._local_scalar_dense.default")} if name == "swav" else set()
    assert {(s, op) for s, op, _ in d.hits} <= allowed, d.hits


class Watch(L.Callback):
    """Turns the detector on for the whole of training, tagging calls with the step."""

    def __init__(self) -> None:
        self.detector = SyncDetector()
        self.epoch_ends: list[int] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.detector.__enter__()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self.detector.step = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.detector.step = -1 - trainer.current_epoch  # epoch-end reads: tagged negative
        self.epoch_ends.append(trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.detector.__exit__(None, None, None)


def test_fit_reads_back_only_on_logging_steps_and_epoch_ends(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = parse_method(tiny_method(epochs=2, batch_size=8), "m")  # 32 steps per epoch
    watch = Watch()
    fit(cfg, prepared, tmp_path / "c", extra_callbacks=[watch])
    steps = {s for s, _, _ in watch.detector.hits if s >= 0}
    logging = {s for s in range(64) if (s + 1) % 10 == 0}
    last_of_epoch = {31, 63}  # the epoch-end hooks (history row, finite check) run with this step's tag
    assert steps, "the loss is read back on logging steps: the detector must see it"
    assert steps & logging, "the finite-loss check reads on logging steps"
    assert steps <= logging | last_of_epoch, sorted({(s, w) for s, _, w in watch.detector.hits
                                                     if s not in logging | last_of_epoch})
