"""RankMe, alignment, uniformity and the per-dimension std against their papers' formulas on
hand-computed cases, and the invariances the papers state."""

from __future__ import annotations

import math

import pytest
import torch

from csl.evaluate.label_free import alignment, dimension_std, rankme, std_ratio, uniformity


def test_rankme_hand_computed() -> None:
    # diag(3, 1): singular values 3, 1 -> p = (0.75, 0.25) (+1e-7)
    z = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([0.75, 0.25], dtype=torch.float64) + 1e-7
    assert rankme(z) == pytest.approx(math.exp(-float((p * p.log()).sum())), rel=1e-12)
    assert rankme(z) == pytest.approx(math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))), rel=1e-6)
    # D equal singular values: rank D; a rank-one matrix: about 1
    assert rankme(torch.eye(5) * 2) == pytest.approx(5.0, rel=1e-5)
    one = torch.outer(torch.arange(1.0, 9.0), torch.tensor([1.0, 2.0, -1.0]))
    assert rankme(one) == pytest.approx(1.0, abs=1e-5)


def test_rankme_invariances() -> None:
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    assert rankme(z * 7.5) == pytest.approx(rankme(z), rel=1e-9)  # scale
    assert rankme(z @ q) == pytest.approx(rankme(z), rel=1e-9)  # rotation of the embedding space
    assert rankme(z[torch.randperm(64)]) == pytest.approx(rankme(z), rel=1e-9)  # sample order


def test_alignment_hand_computed() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([[0.0, 5.0], [0.0, 1.0]])  # pair 1 at 90 degrees (|d|^2 = 2), pair 2 the same point
    assert alignment(x, y) == pytest.approx((2.0 + 0.0) / 2)
    assert alignment(x, y, alpha=1.0) == pytest.approx((math.sqrt(2) + 0) / 2)
    assert alignment(x, x * 3) == pytest.approx(0.0)  # positive scale of a view changes nothing


def test_uniformity_hand_computed() -> None:
    # three unit vectors: e1, -e1, e2 -> squared distances 4, 2, 2
    z = torch.tensor([[1.0, 0.0], [-2.0, 0.0], [0.0, 3.0]])
    expected = math.log((math.exp(-2 * 4) + 2 * math.exp(-2 * 2)) / 3)
    assert uniformity(z) == pytest.approx(expected, rel=1e-12)
    assert uniformity(torch.ones(10, 4)) == pytest.approx(0.0, abs=1e-12)  # collapse: the maximum, 0
    big = torch.randn(2000, 64, generator=torch.Generator().manual_seed(0))
    assert -4.0 < uniformity(big) < -3.5  # spread on the sphere: near the limit -4


def test_dimension_std_hand_computed_and_its_gaussian_reference() -> None:
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])  # unit vectors already
    per_dim = torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=torch.float64).std()  # unbiased: sqrt(2/3)
    assert dimension_std(z) == pytest.approx(float(per_dim), rel=1e-12)
    assert dimension_std(torch.ones(50, 8) * 3) == pytest.approx(0.0, abs=1e-12)  # collapse
    g = torch.randn(20000, 128, generator=torch.Generator().manual_seed(0))
    assert std_ratio(g) == pytest.approx(1.0, abs=0.01)  # SimSiam Sec. 4.1: std about 1/sqrt(d)
