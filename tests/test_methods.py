"""Every registered method: one CPU training step on tiny data gives a finite loss, changes
the online parameters, and gives target networks no gradient. Compositions are checked at
config time; EMA state and the momentum schedule follow the papers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from csl.errors import ConfigError
from csl.methods import METHODS
from csl.methods.config import parse_method
from csl.methods.ema import ema_update, make_target
from csl.train.build import build_method
from csl.train.optim import build_optimizer
from csl.train.schedule import cosine_momentum
from conftest import tiny_method

PROJ = {"name": "mlp_projection", "hidden_dim": 32, "out_dim": 16}
VARIANTS = {
    "simclr": {},
    "byol": {"method": {"name": "byol", "predictor": {"hidden_dim": 32}, "momentum_base": 0.9},
             "loss": {"name": "byol"}},
    "simsiam": {"method": {"name": "simsiam", "predictor": {"hidden_dim": 8}},
                "extract": {**PROJ, "layers": 3, "last_batch_norm": True}, "loss": {"name": "negative_cosine"}},
    "barlow_twins": {"method": "barlow_twins", "extract": {**PROJ, "layers": 3},
                     "loss": {"name": "barlow_twins", "lambda_offdiag": 5e-3}},
}
META = {"shape": [1, 16, 16], "mean": [0.3], "std": [0.3]}


def config(name: str) -> dict:
    return {**tiny_method(), **VARIANTS[name]}


def test_every_registered_method_has_a_smoke_test() -> None:
    assert set(VARIANTS) == set(METHODS)


def one_step(method: nn.Module, lr: float = 0.05) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    before = {k: v.detach().clone() for k, v in method.state_dict().items()}
    opt = build_optimizer(method, parse_method(tiny_method(), "m").optimizer, lr)
    loss = method.training_loss(images, torch.Generator().manual_seed(0))["loss"]
    opt.zero_grad()
    loss.backward()
    return loss, before, opt  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_training_step(name: str) -> None:
    cfg = parse_method(config(name), f"methods.{name}")
    method = build_method(cfg, META)
    loss, before, opt = one_step(method)  # type: ignore[misc]
    assert loss.dim() == 0 and torch.isfinite(loss)
    targets = [n for n, _ in method.named_parameters() if n.startswith("target_")]
    for n, p in method.named_parameters():
        if n.startswith("target_"):
            assert p.grad is None and not p.requires_grad, n
    grads = [p.grad for n, p in method.named_parameters() if not n.startswith("target_")]
    assert all(g is not None for g in grads)
    opt.step()
    after_step = getattr(method, "after_step", None)
    if callable(after_step):
        assert after_step(0, 10)["momentum"] == pytest.approx(0.9)
    state = method.state_dict()
    changed = [k for k in before if before[k].is_floating_point() and not torch.equal(before[k], state[k])]
    assert any(k.startswith("encoder.") for k in changed)
    if targets:  # the EMA moved the target toward the online network, and it is checkpointed
        assert any(k.startswith("target_encoder.") for k in changed)
        assert any(k.startswith("target_projector.") for k in state)


def test_incompatible_compositions_fail_at_config_time() -> None:
    with pytest.raises(ConfigError, match=r"method 'simsiam' cannot use loss 'nt_xent' \(a contrastive loss\); "
                                          r"it takes predictive losses: byol, negative_cosine"):
        parse_method({**config("simsiam"), "loss": {"name": "nt_xent"}}, "methods.x")
    with pytest.raises(ConfigError, match="method 'simclr' cannot use loss 'barlow_twins'"):
        parse_method({**tiny_method(), "loss": "barlow_twins"}, "methods.x")
    with pytest.raises(ConfigError, match="unknown key 'methods.x.method.momentum'"):
        parse_method({**config("byol"), "method": {"name": "byol", "momentum": 0.9}}, "methods.x")


def test_a_variant_no_paper_has_is_configuration_only() -> None:
    """SimCLR's loss (NT-Xent with cosine similarity) on BYOL's predictor and EMA target."""
    cfg = parse_method({**config("byol"), "loss": {"name": "nt_xent", "temperature": 0.2}}, "methods.novel")
    method = build_method(cfg, META)
    loss, _, _ = one_step(method)  # type: ignore[misc]
    assert torch.isfinite(loss) and loss.item() > 0


def test_cosine_momentum_endpoints() -> None:
    assert cosine_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert cosine_momentum(0, 100, 0.99, 0.999) == pytest.approx(0.99)


def test_ema_update_covers_parameters_and_buffers() -> None:
    online = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    target = make_target(online)
    assert all(not p.requires_grad for p in target.parameters())
    old = copy.deepcopy(target.state_dict())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
        online[1].running_mean.add_(2.0)  # type: ignore[operator]
    ema_update(target, online, 0.75)
    new = target.state_dict()
    on = online.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean"):
        torch.testing.assert_close(new[k], 0.75 * old[k] + 0.25 * on[k])  # biases and BN included
    assert torch.equal(new["1.num_batches_tracked"], on["1.num_batches_tracked"])
