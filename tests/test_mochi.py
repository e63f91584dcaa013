"""MoCHi (arXiv 2010.01028): the synthetic negatives are unit vectors mixed from each query's N
hardest queue entries (and, for s', with the query at a share below one half), carry no gradient,
enter the loss as extra negatives, and only from the configured step on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csl.errors import ConfigError
from csl.losses.info_nce import info_nce
from csl.losses.mochi import hard_negative_mixes
from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS

D = 12
N_HARD = 4


def setup() -> tuple[torch.Tensor, torch.Tensor]:
    """q = e0; the 4 hardest queue entries are e1..e4 (similarity 0); the other 6 point away from q
    (similarity -0.6 or less)."""
    e = torch.eye(D)
    far = F.normalize(-e[0] + 0.5 * e[5:11], dim=1)
    return e[:1], torch.cat([far[:3], e[1:1 + N_HARD], far[3:]])


def test_mixes_are_unit_vectors_from_the_hardest_negatives() -> None:
    q, queue = setup()
    h = hard_negative_mixes(q, queue, N_HARD, s=50, s_prime=30, generator=torch.Generator().manual_seed(0))
    assert h.shape == (1, 80, D) and not h.requires_grad
    torch.testing.assert_close(h.norm(dim=2), torch.ones(1, 80))
    hard_span = torch.zeros(D, dtype=torch.bool)
    hard_span[1:1 + N_HARD] = True
    # s mixes of two hard negatives: nothing outside span{e1..e4}
    assert h[0, :50][:, ~hard_span].abs().max() < 1e-6
    # s' mixes with the query: span{q, e1..e4}, and q's share beta / (beta + (1 - beta)) < 0.5
    sp = h[0, 50:]
    outside = ~hard_span
    outside[0] = False
    assert sp[:, outside].abs().max() < 1e-6
    beta = sp[:, 0] / sp.sum(1)  # coefficients (before normalizing) sum to 1; orthonormal basis
    assert (beta > 0).all() and (beta < 0.5).all()
    assert beta.max() > 0.3  # U(0, 0.5): the draws cover the range


def test_mixes_carry_no_gradient_to_the_query() -> None:
    q, queue = setup()
    q = q.clone().requires_grad_()
    h = hard_negative_mixes(q, queue, N_HARD, 8, 8, torch.Generator().manual_seed(1))
    assert h.grad_fn is None
    key = F.normalize(q.detach() + 0.1, dim=1)
    (g,) = torch.autograd.grad(info_nce(q, key, queue, 0.2, h), q)
    # the same gradient as with the mixes given as constants
    (g_const,) = torch.autograd.grad(info_nce(q, key, queue, 0.2, h.clone()), q)
    torch.testing.assert_close(g, g_const)


def test_info_nce_with_synthetic_negatives_is_cross_entropy_over_all_of_them() -> None:
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(3, D, generator=g), torch.randn(3, D, generator=g)
    queue, syn = torch.randn(7, D, generator=g), F.normalize(torch.randn(3, 5, D, generator=g), dim=2)
    t = 0.2
    expected = 0.0
    for i in range(3):
        qi, ki = F.normalize(q[i], dim=0), F.normalize(k[i], dim=0)
        negs = [F.normalize(n, dim=0) for n in queue] + list(syn[i])
        logits = [float(qi @ ki) / t] + [float(qi @ n) / t for n in negs]
        expected += -logits[0] + math.log(sum(math.exp(x) for x in logits))
    assert info_nce(q, k, queue, t, syn).item() == pytest.approx(expected / 3, rel=1e-5)


def mochi(start_step: int):  # type: ignore[no-untyped-def]
    raw = {**tiny_method(), **VARIANTS["mochi"]}
    raw["method"] = {**raw["method"], "start_step": start_step}
    torch.manual_seed(0)
    return build_method(parse_method(raw, "methods.mochi"), META)


def moco_v2():  # type: ignore[no-untyped-def]
    raw = {**tiny_method(), **VARIANTS["mochi"]}
    raw["method"] = {k: v for k, v in raw["method"].items()
                     if k not in ("n_hardest", "s", "s_prime", "start_step")} | {"name": "moco_v2"}
    torch.manual_seed(0)
    return build_method(parse_method(raw, "methods.moco"), META)


def test_mixing_starts_at_its_step() -> None:
    """Before ``start_step`` MoCHi is MoCo v2 (same loss from the same weights and views); from it on,
    the extra negatives raise the loss (more terms in the denominator)."""
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))

    def loss(m, step: int) -> float:  # type: ignore[no-untyped-def]
        m.before_step(step, 10, 5)
        return float(m.training_loss(Batch(images), torch.Generator().manual_seed(4))["loss"])

    base = loss(moco_v2(), 0)
    assert loss(mochi(start_step=5), 4) == pytest.approx(base, rel=1e-6)
    assert loss(mochi(start_step=5), 5) > base + 1e-4


def test_bad_compositions_fail_at_config_time() -> None:
    raw = {**tiny_method(), **VARIANTS["mochi"]}
    with pytest.raises(ConfigError, match=r"n_hardest' \(256\) exceeds queue_size \(128\)"):
        parse_method({**raw, "method": {**raw["method"], "n_hardest": 256}}, "methods.m")
    with pytest.raises(ConfigError, match="need n_hardest >= 1, s >= 0"):
        parse_method({**raw, "method": {**raw["method"], "s": -1}}, "methods.m")
