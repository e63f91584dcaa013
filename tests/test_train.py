"""Training parts: schedule endpoints, LARS, parameter groups, resume and NaN handling."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from csl.errors import NonFiniteLossError
from csl.methods.config import parse_method
from csl.train.fit import fit
from csl.train.lars import LARS
from csl.train.optim import OptimizerConfig, build_optimizer, effective_lr, param_groups
from csl.train.schedule import warmup_cosine
from conftest import tiny_method


def test_warmup_cosine_endpoints() -> None:
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(0.1)
    assert warmup_cosine(9, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(99, total, warm) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(99, total, warm, final_fraction=0.1) == pytest.approx(0.1)
    mid = warm + (total - warm - 1) / 2
    assert warmup_cosine(int(mid), total, warm) == pytest.approx(0.5, abs=0.02)
    assert warmup_cosine(0, total, 0) == pytest.approx(1.0)
    values = [warmup_cosine(s, total, warm) for s in range(warm, total)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_lr_scaling() -> None:
    assert effective_lr(OptimizerConfig(lr=0.3, lr_scaling="linear"), 4096) == pytest.approx(4.8)
    assert effective_lr(OptimizerConfig(lr=0.075, lr_scaling="sqrt"), 4096) == pytest.approx(4.8)
    assert effective_lr(OptimizerConfig(lr=0.1, lr_scaling="none"), 4096) == pytest.approx(0.1)


def test_lars_step_by_hand() -> None:
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS([{"params": [w]}, {"params": [b], "weight_decay": 0.0, "lars_adapt": False}],
               lr=0.1, momentum=0.9, weight_decay=0.01, eta=0.001)
    w.grad = torch.tensor([0.6, 0.8])
    b.grad = torch.tensor([2.0])
    opt.step()
    g = torch.tensor([0.6, 0.8]) + 0.01 * torch.tensor([3.0, 4.0])  # g' = g + wd w
    trust = 0.001 * 5.0 / g.norm()
    torch.testing.assert_close(w.detach(), torch.tensor([3.0, 4.0]) - 0.1 * trust * g)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))  # plain SGD, no wd
    # second step uses momentum: v = 0.9 v + g''
    w.grad = torch.tensor([0.6, 0.8])
    b.grad = torch.tensor([2.0])
    opt.step()
    torch.testing.assert_close(b.detach(), torch.tensor([0.8 - 0.1 * (0.9 * 2.0 + 2.0)]))


def test_multi_tensor_lars_equals_the_per_tensor_formula() -> None:
    """The foreach implementation against the docstring's formula applied tensor by tensor, over
    3 steps, with a zero weight and a zero gradient (trust 1) and a group without adaptation."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (7, 5), (6,), (3, 2)]
    init = [torch.randn(s, generator=gen) for s in shapes]
    init[3].zero_()  # ||w|| = 0
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(3)]
    for g in grads:
        g[1].zero_()  # ||g|| = 0 (weight decay makes g' nonzero), then trust from g' alone
    params = [nn.Parameter(t.clone()) for t in init]
    opt = LARS([{"params": [params[0], params[1], params[3]]},
                {"params": [params[2]], "weight_decay": 0.0, "lars_adapt": False}],
               lr=0.2, momentum=0.9, weight_decay=0.01, eta=0.002)
    ref = [t.clone() for t in init]
    bufs = [torch.zeros_like(t) for t in init]
    for step in range(3):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        opt.step()
        for i, (w, g) in enumerate(zip(ref, grads[step])):
            adapt = i != 2
            g = g + 0.01 * w if adapt else g
            if adapt:
                wn, gn = w.norm(), g.norm()
                g = g * (0.002 * wn / gn if wn > 0 and gn > 0 else 1.0)
            bufs[i] = 0.9 * bufs[i] + g
            ref[i] = w - 0.2 * bufs[i]
        for p, r in zip(params, ref):
            torch.testing.assert_close(p.detach(), r, rtol=1e-6, atol=1e-7)
        assert all(torch.equal(p.grad, g) for p, g in zip(params, grads[step]))  # gradients untouched


def test_fused_adamw_equals_torch_reference_adamw() -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))  # (no BN: its input bias has no gradient)
    ref = copy.deepcopy(model)
    cfg = OptimizerConfig(name="adamw", weight_decay=0.05)
    opt = build_optimizer(model, cfg, 1e-2)
    assert opt.defaults["fused"] is True
    groups = param_groups(ref, cfg)
    for g in groups:
        g.pop("lars_adapt", None)
    ref_opt = torch.optim.AdamW(groups, lr=1e-2, betas=cfg.betas, weight_decay=0.05, foreach=False)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        for m, o in ((model, opt), (ref, ref_opt)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for p, r in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, r, rtol=1e-5, atol=1e-6)


def test_bias_and_norm_are_excluded_from_decay_and_adaptation() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    groups = param_groups(model, OptimizerConfig())
    assert [p.shape for p in groups[0]["params"]] == [torch.Size([3, 4]), torch.Size([2, 3])]
    assert len(groups[1]["params"]) == 3 and groups[1]["weight_decay"] == 0.0 and not groups[1]["lars_adapt"]
    for name in ("sgd", "adamw", "lars"):
        opt = build_optimizer(model, OptimizerConfig(name=name, weight_decay=0.1), 0.5)  # type: ignore[arg-type]
        assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


class CrashAtEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_interrupted_training_resumes_to_the_same_weights(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = parse_method(tiny_method(epochs=3), "m")
    straight = fit(cfg, prepared, tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg, prepared, tmp_path / "b", extra_callbacks=[CrashAtEpoch(2)])
    assert (tmp_path / "b" / "last.ckpt").is_file()
    ckpt = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 1 and "csl" in ckpt  # two epochs done, augmentation RNG saved
    resumed = fit(cfg, prepared, tmp_path / "b")
    assert resumed.summary["resumed_from"] == str(tmp_path / "b" / "last.ckpt")
    assert [r["epoch"] for r in resumed.history] == [0.0, 1.0, 2.0]
    for k, v in straight.encoder_state.items():
        torch.testing.assert_close(resumed.encoder_state[k], v, msg=f"{k} differs after resume")
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-5)


class PoisonWeights(L.Callback):
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_nan_loss_stops_with_clear_error_and_keeps_last_good_checkpoint(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = parse_method(tiny_method(epochs=3), "m")
    # 4 steps per epoch: the first bad step is 4, read back at the epoch-end check
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 1, step 4\. .*last good checkpoint is kept"):
        fit(cfg, prepared, tmp_path / "c", extra_callbacks=[PoisonWeights()])
    ckpt = torch.load(tmp_path / "c" / "last.ckpt", weights_only=True)
    assert ckpt["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


class PoisonAtStep(L.Callback):
    def __init__(self, step: int) -> None:
        self.step, self.last = step, -1

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object,
                             batch_idx: int) -> None:
        self.last = trainer.global_step
        if trainer.global_step == self.step:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_nan_mid_epoch_names_the_first_bad_step_and_stops_at_the_next_check(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The loss is checked on the device every step and read back every 10 steps: a NaN at step
    13 of a 32-step epoch stops training after step 19, naming step 13, before any checkpoint."""
    cfg = parse_method(tiny_method(epochs=1, batch_size=8), "m")
    poison = PoisonAtStep(13)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 0, step 13\. "):
        fit(cfg, prepared, tmp_path / "c", extra_callbacks=[poison])
    assert poison.last == 19
    assert not (tmp_path / "c" / "last.ckpt").exists()


def test_training_changes_the_encoder(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from csl.train.build import build_method

    cfg = parse_method(tiny_method(epochs=1), "m")
    torch.manual_seed(0)
    L.seed_everything(0, verbose=False)
    init = {k: v.clone() for k, v in build_method(cfg, prepared.meta).encoder.state_dict().items()}
    out = fit(cfg, prepared, tmp_path / "d")
    assert math.isfinite(out.history[0]["loss"])
    changed = [k for k in init if init[k].is_floating_point() and not torch.equal(init[k], out.encoder_state[k])]
    assert len(changed) > len(init) // 2
    assert out.summary["steps"] == 256 // 64 and out.summary["global_batch"] == 64


def test_truncated_checkpoint_falls_back_to_the_previous_one(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = parse_method(tiny_method(epochs=3), "m")
    straight = fit(cfg, prepared, tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg, prepared, tmp_path / "b", extra_callbacks=[CrashAtEpoch(2)])
    last, prev = tmp_path / "b" / "last.ckpt", tmp_path / "b" / "prev.ckpt"
    assert torch.load(prev, weights_only=True)["epoch"] == 0 and torch.load(last, weights_only=True)["epoch"] == 1
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])  # a copy cut short
    resumed = fit(cfg, prepared, tmp_path / "b")
    assert resumed.summary["resumed_from"] == str(prev)
    for k, v in straight.encoder_state.items():  # epochs 2 and 3 redone from the epoch-1 state
        torch.testing.assert_close(resumed.encoder_state[k], v, msg=f"{k} differs")
    assert torch.load(last, weights_only=True)["epoch"] == 2  # a good checkpoint again


def test_epoch_line_with_the_progress_bar(prepared, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The default (progress bar on) prints the per-epoch line through tqdm."""
    cfg = parse_method(tiny_method(epochs=1, progress_bar=True), "m")
    fit(cfg, prepared, tmp_path / "c")
    assert "epoch 1/1: loss " in capsys.readouterr().out


def test_compiled_training_equals_eager_and_keeps_checkpoint_keys(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``train.compile``: the networks really run compiled (TorchInductor graphs are made), train
    the same weights as eager up to float reordering, and checkpoints/encoder keys are the same."""
    import torch._dynamo

    base = tiny_method(epochs=1, precision="32-true")
    eager = fit(parse_method(base, "m"), prepared, tmp_path / "eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled = fit(parse_method({**base, "train": {**base["train"], "compile": True}}, "m"), prepared,
                   tmp_path / "compiled")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # encoder and head
    assert compiled.summary["compiled"] is True and eager.summary["compiled"] is False
    assert eager.encoder_state.keys() == compiled.encoder_state.keys()
    for k, v in eager.encoder_state.items():
        if v.is_floating_point():
            torch.testing.assert_close(compiled.encoder_state[k], v, rtol=1e-3, atol=1e-4)
    assert compiled.history[0]["loss"] == pytest.approx(eager.history[0]["loss"], rel=1e-4)
    a = torch.load(tmp_path / "eager" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "compiled" / "last.ckpt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    torch._dynamo.reset()


def test_checkpoint_key_ignores_compile_but_not_the_method(tmp_path: Path) -> None:
    """Switching ``train.compile`` resumes the same checkpoints; any other change starts afresh."""
    from csl.params import load_params
    from csl.stages.layout import Layout
    from conftest import tiny_params

    def key(**train: object) -> Path:
        raw = tiny_params(tmp_path, {"v": tiny_method(**train)})
        (tmp_path / "params.yaml").write_text(__import__("yaml").safe_dump(raw))
        params = load_params(tmp_path / "params.yaml")
        return Layout(tmp_path, params).checkpoint_dir(params.variant("v"), "abc")

    assert key(compile=True) == key(compile=False) == key()
    assert key(batch_size=32) != key()


def test_checkpoint_key_includes_the_training_code(tmp_path: Path) -> None:
    """Other code never resumes a checkpoint: the key holds the code fingerprint (the current code's
    by default)."""
    import yaml

    from csl.params import load_params
    from csl.stages.deps import fingerprint
    from csl.stages.layout import Layout
    from conftest import tiny_params

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path, {"v": tiny_method()})))
    params = load_params(tmp_path / "params.yaml")
    layout, v = Layout(tmp_path, params), params.variant("v")
    assert layout.checkpoint_dir(v, "abc") == layout.checkpoint_dir(v, "abc", fingerprint())
    assert layout.checkpoint_dir(v, "abc", "code-a") != layout.checkpoint_dir(v, "abc", "code-b")
