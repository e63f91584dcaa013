"""Every registered method: one CPU training step on tiny data gives a finite loss, changes
the online parameters, and gives target networks no gradient. Compositions are checked at
config time; EMA state and the momentum schedule follow the papers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from csl.methods.base import Batch, Method
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
    "moco_v2": {"method": {"name": "moco_v2", "queue_size": 128, "key_bn_groups": 2, "momentum_base": 0.9,
                           "momentum_final": 0.9},
                "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}},
    "mochi": {"method": {"name": "mochi", "queue_size": 128, "key_bn_groups": 2, "momentum_base": 0.9,
                         "momentum_final": 0.9, "n_hardest": 16, "s": 8, "s_prime": 4, "start_step": 2},
              "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}},
    "clae": {"method": {"name": "clae", "eps": 0.03, "alpha": 1.0}},
    "imix": {"method": {"name": "imix", "alpha": 1.0}, "loss": {"name": "imix_npair", "temperature": 0.2}},
    "imix_moco": {"method": {"name": "imix_moco", "queue_size": 128, "key_bn_groups": 2, "momentum_base": 0.9,
                             "momentum_final": 0.9, "alpha": 1.0},
                  "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}},
    "kcl": {"method": {"name": "kcl", "queue_size": 128, "key_bn_groups": 2, "momentum_base": 0.9,
                       "momentum_final": 0.9, "k": 3},
            "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}},
    "pcl": {"method": {"name": "pcl", "queue_size": 128, "key_bn_groups": 2, "momentum_base": 0.9,
                       "momentum_final": 0.9, "num_clusters": [4, 8], "negative_prototypes": 4, "warmup_epochs": 1,
                       "kmeans_iterations": 5, "kmeans_redo": 2},
            "augment": "moco_v2", "loss": {"name": "info_nce", "temperature": 0.2}},
    "moco_v3": {"method": {"name": "moco_v3", "predictor": {"hidden_dim": 32}, "momentum_base": 0.9},
                "augment": "byol", "loss": {"name": "info_nce", "temperature": 1.0, "scale": 2.0}},
    "swav": {"method": {"name": "swav", "prototypes": 10, "queue_length": 64, "queue_start_epoch": 0},
             "augment": {"name": "swav", "local_crops": 2, "local_size": 8}, "loss": "swav"},
    "dino": {"method": {"name": "dino", "momentum_base": 0.9},
             "augment": {"name": "dino", "local_crops": 2, "local_size": 8},
             "extract": {"name": "dino_head", "hidden_dim": 32, "bottleneck_dim": 8, "out_dim": 64}, "loss": "dino"},
    "dim": {"method": {"name": "dim", "comparisons": [[1, 4], [4, 4]]}, "augment": "amdim", "similarity": "dot",
            "loss": "amdim_nce"},
    "cpc": {"method": {"name": "cpc", "prediction_steps": 2}, "augment": "cpc",
            "encoder": {"name": "patch_grid", "patch": 8, "stride": 4, "backbone": {"name": "small_cnn", "widths": [8, 16]}},
            "extract": "identity", "similarity": "dot", "loss": "cpc_infonce"},
    "supcon": {"method": "supcon", "loss": {"name": "supcon", "temperature": 0.1, "base_temperature": 0.1}},
}
META = {"shape": [1, 16, 16], "mean": [0.3], "std": [0.3]}


def batch_for(method: Method, images: torch.Tensor, labels: torch.Tensor | None = None,
              indices: torch.Tensor | None = None) -> Batch:
    """The batch the data path gives ``method``: labels and indices only when it needs them (three
    classes by default, so that every image has positives of its class; rows 0..N-1 by default)."""
    n = images.shape[0]
    if labels is None:
        labels = torch.arange(n) % 3
    if indices is None:
        indices = torch.arange(n)
    return Batch(images, labels if method.needs.labels else None, indices if method.needs.indices else None)


def config(name: str) -> dict:
    return {**tiny_method(), **VARIANTS[name]}


def test_every_registered_method_has_a_smoke_test() -> None:
    assert set(VARIANTS) == set(METHODS)


def one_step(method: Method, lr: float = 0.05) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    before = {k: v.detach().clone() for k, v in method.state_dict().items()}
    opt = build_optimizer(method, parse_method(tiny_method(), "m").optimizer, lr)
    loss = method.training_loss(batch_for(method, images), torch.Generator().manual_seed(0))["loss"]
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
    grads = [p.grad for n, p in method.named_parameters() if not n.startswith("target_") and p.requires_grad]
    assert all(g is not None for g in grads)
    opt.step()
    if type(method).after_step is not Method.after_step:  # the EMA methods
        assert method.after_step(0, 10)["momentum"] == pytest.approx(0.9)
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


def test_amdim_encoder_scales_and_the_papers_comparisons() -> None:
    """AMDIM's own composition at 28 px: 1-5, 1-7, 5-5 in both directions."""
    raw = {**config("dim"), "method": {"name": "dim"}, "encoder": {"name": "amdim", "widths": [8, 8, 16, 16]}}
    method = build_method(parse_method(raw, "methods.amdim"), {**META, "shape": [1, 28, 28]})
    maps = method.encoder.feature_maps(torch.zeros(2, 1, 28, 28))
    assert {s: tuple(m.shape[2:]) for s, m in maps.items()} == {7: (7, 7), 5: (5, 5), 1: (1, 1)}
    assert method.encoder(torch.zeros(2, 1, 28, 28)).shape == (2, 16)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    loss = method.training_loss(Batch(images), torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in method.heads.parameters())


def test_simclr_loss_with_byol_predictor_and_multicrop_is_configuration_only() -> None:
    """A variant no paper has: NT-Xent over BYOL's predictor/target, with 2 global + 2 local crops."""
    raw = {**config("byol"), "loss": {"name": "nt_xent", "temperature": 0.2},
           "augment": {"name": "views", "groups": [{"count": 2, "crop_scale": [0.4, 1.0]},
                                                   {"count": 2, "size": 8, "crop_scale": [0.1, 0.4]}]}}
    method = build_method(parse_method(raw, "methods.novel"), META)
    views = method.augment(torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8), torch.Generator())
    assert [v.shape[-1] for v in views] == [16, 16, 8, 8]
    loss, _, _ = one_step(method)  # type: ignore[misc]
    assert torch.isfinite(loss) and loss.item() > 0
