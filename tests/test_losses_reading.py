"""The reading-list losses against their formulas written independently here (naive loops over
anchors, float64, the official code's exponential form), and the equalities the papers state:
SupCon without labels is NT-Xent; DCL/HCL with tau_plus = beta = 0 is NT-Xent."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csl.losses.debiased import hard_negative_nt_xent
from csl.losses.nt_xent import nt_xent
from csl.losses.supcon import supcon
from csl.similarity.cosine import cosine_similarity_matrix, dot_product_matrix


def rand(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def naive_supcon(views: list[torch.Tensor], labels: list[int], t: float, t_base: float) -> float:
    """Eq. 2 of arXiv 2004.11362 anchor by anchor: rows view-major, cosine similarity."""
    z = [F.normalize(r.double(), dim=0) for v in views for r in v]
    y = [labels[i % len(labels)] for i in range(len(z))]
    total = 0.0
    for i in range(len(z)):
        others = [a for a in range(len(z)) if a != i]
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in others)
        pos = [p for p in others if y[p] == y[i]]
        if pos:  # an anchor without positives adds 0 (official code), and counts in the mean
            total += -(t / t_base) * sum(float(z[i] @ z[p]) / t - math.log(denom) for p in pos) / len(pos)
    return total / len(z)


@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_supcon_equals_its_formula(n_views: int) -> None:
    views = [rand(6, 4, s) for s in range(n_views)]
    labels = [0, 1, 0, 2, 1, 3]  # class 2 and 3 are singletons: with one view they have no positive
    got = supcon(views, torch.tensor(labels), cosine_similarity_matrix, 0.3, 0.07)
    assert got.item() == pytest.approx(naive_supcon(views, labels, 0.3, 0.07), rel=1e-5)


def test_supcon_hand_value() -> None:
    """Two images of one class, one view each, orthogonal unit vectors, t = t_base = 1: each anchor's
    one positive has logit 0 against a denominator of e^0: loss = -log(1) = 0; with a third image of
    another class at similarity 0 the denominator is 2: loss = log 2."""
    e = torch.eye(3)
    assert supcon([e[:2]], torch.tensor([0, 0]), cosine_similarity_matrix, 1.0, 1.0).item() == pytest.approx(0.0)
    got = supcon([e], torch.tensor([0, 0, 1]), cosine_similarity_matrix, 1.0, 1.0)
    assert got.item() == pytest.approx(2 * math.log(2) / 3)  # the third anchor has no positive: 0


def test_supcon_without_labels_is_nt_xent() -> None:
    a, b = rand(8, 5, 1), rand(8, 5, 2)
    for t in (0.07, 0.5):
        torch.testing.assert_close(supcon([a, b], None, cosine_similarity_matrix, t, t), nt_xent(a, b, t),
                                   rtol=1e-6, atol=1e-6)
    # distinct labels are the same as no labels
    torch.testing.assert_close(supcon([a, b], torch.arange(8), cosine_similarity_matrix, 0.2, 0.2),
                               supcon([a, b], None, cosine_similarity_matrix, 0.2, 0.2))


def test_supcon_invariances() -> None:
    """Renaming the classes, or permuting the images together with their labels, changes nothing;
    merging two classes changes the loss."""
    a, b = rand(8, 5, 3), rand(8, 5, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    ref = supcon([a, b], y, cosine_similarity_matrix, 0.1, 0.07)
    torch.testing.assert_close(supcon([a, b], (y + 5) * 3, cosine_similarity_matrix, 0.1, 0.07), ref)
    p = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(supcon([a[p], b[p]], y[p], cosine_similarity_matrix, 0.1, 0.07), ref)
    assert not torch.allclose(supcon([a, b], y.clamp(max=1), cosine_similarity_matrix, 0.1, 0.07), ref)


def test_supcon_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="labels must be"):
        supcon([rand(4, 3, 0)], torch.arange(5), cosine_similarity_matrix)
    with pytest.raises(ValueError, match="views must be"):
        supcon([rand(4, 3, 0), rand(5, 3, 0)], None, cosine_similarity_matrix)


def official_hcl(out_1: torch.Tensor, out_2: torch.Tensor, t: float, tau_plus: float, beta: float) -> float:
    """joshr17/HCL image/main.py ``criterion``, transcribed in float64 on normalized outputs."""
    out_1, out_2 = F.normalize(out_1.double(), dim=1), F.normalize(out_2.double(), dim=1)
    n = out_1.shape[0]
    out = torch.cat([out_1, out_2])
    neg = torch.exp(out @ out.t() / t)
    mask = torch.ones(2 * n, 2 * n, dtype=torch.bool)
    for i in range(n):
        mask[i, i] = mask[i, i + n] = mask[i + n, i] = mask[i + n, i + n] = False
    neg = neg.masked_select(mask).view(2 * n, -1)
    pos = torch.exp((out_1 * out_2).sum(-1) / t)
    pos = torch.cat([pos, pos])
    big_n = 2 * n - 2
    imp = (beta * neg.log()).exp()
    reweight_neg = (imp * neg).sum(-1) / imp.mean(-1)
    ng = (-tau_plus * big_n * pos + reweight_neg) / (1 - tau_plus)
    ng = torch.clamp(ng, min=big_n * math.e ** (-1 / t))
    return float((-torch.log(pos / (pos + ng))).mean())


@pytest.mark.parametrize("tau_plus,beta", [(0.1, 0.0), (0.1, 1.0), (0.05, 0.5), (0.0, 1.0), (0.3, 2.0)])
def test_dcl_hcl_equal_the_official_code(tau_plus: float, beta: float) -> None:
    a, b = rand(6, 4, 7), rand(6, 4, 8)
    got = hard_negative_nt_xent(a, b, 0.5, tau_plus, beta, cosine_similarity_matrix)
    assert got.item() == pytest.approx(official_hcl(a, b, 0.5, tau_plus, beta), rel=1e-5)


def test_the_lower_bound_binds_when_the_correction_overshoots() -> None:
    """Each image's two views identical, different images orthogonal: s+ = 1/t, every negative 0.
    The debiased sum (M - tau_plus M e^{1/t}) / (1 - tau_plus) is negative for tau_plus = 0.3 at
    t = 0.5, so the bound M e^{-1/t} holds the estimate: loss = -log(e^{1/t} / (e^{1/t} + M e^{-1/t}))."""
    a = torch.eye(5, 8)
    t, tau_plus, m = 0.5, 0.3, 8
    got = hard_negative_nt_xent(a, a.clone(), t, tau_plus, 0.0)
    bound = -math.log(math.exp(1 / t) / (math.exp(1 / t) + m * math.exp(-1 / t)))
    assert got.item() == pytest.approx(bound, rel=1e-5)
    assert got.item() == pytest.approx(official_hcl(a, a.clone(), t, tau_plus, 0.0), rel=1e-5)
    # without the correction (tau_plus = 0) the sum is M e^0 = M, above the bound
    assert hard_negative_nt_xent(a, a.clone(), t, 0.0, 0.0).item() == pytest.approx(
        -math.log(math.exp(1 / t) / (math.exp(1 / t) + m)), rel=1e-5)


def test_dcl_hcl_at_zero_are_nt_xent() -> None:
    a, b = rand(8, 5, 12), rand(8, 5, 13)
    for t in (0.1, 0.5, 1.0):
        torch.testing.assert_close(hard_negative_nt_xent(a, b, t, 0.0, 0.0), nt_xent(a, b, t), rtol=1e-6, atol=1e-6)
    # with another similarity too (the bound assumes cosine; dot products of unit vectors are the same)
    ua, ub = F.normalize(a, dim=1), F.normalize(b, dim=1)
    torch.testing.assert_close(hard_negative_nt_xent(ua, ub, 0.5, 0.0, 0.0, dot_product_matrix),
                               nt_xent(ua, ub, 0.5, dot_product_matrix), rtol=1e-6, atol=1e-6)


def test_hcl_weights_hard_negatives_more() -> None:
    """Raising beta moves weight to the most similar negatives: with one very similar negative the
    loss grows with beta."""
    a, b = rand(6, 4, 14), rand(6, 4, 15)
    a[1] = a[0] + 0.01  # a hard negative of anchor 0
    losses = [hard_negative_nt_xent(a, b, 0.5, 0.0, beta).item() for beta in (0.0, 0.5, 1.0, 2.0)]
    assert losses == sorted(losses) and losses[-1] > losses[0] + 1e-3


def test_losses_are_fp32_and_differentiable_in_bf16() -> None:
    a = rand(6, 4, 16).bfloat16().requires_grad_()
    b = rand(6, 4, 17).bfloat16()
    for loss in (hard_negative_nt_xent(a, b, 0.5, 0.1, 1.0), supcon([a, b], torch.arange(6) % 2,
                                                                    cosine_similarity_matrix)):
        assert loss.dtype == torch.float32
        (g,) = torch.autograd.grad(loss, a)
        assert torch.isfinite(g.float()).all()
