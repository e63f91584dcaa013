"""Losses beyond NT-Xent: each equals its paper's formula written naively here, has the
paper's invariances, and sends gradients only where the paper does."""

from __future__ import annotations

import math

import pytest
import torch

from csl.losses import barlow_twins, byol_loss, dino_loss, info_nce, negative_cosine, sinkhorn, swav_loss


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# --- InfoNCE (MoCo) -------------------------------------------------------------------------

def test_info_nce_hand_computed() -> None:
    q = torch.tensor([[1.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])
    queue = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    tau = 0.5
    pos, negs = 0.6, [0.0, -1.0]
    expected = -math.log(math.exp(pos / tau) / (math.exp(pos / tau) + sum(math.exp(n / tau) for n in negs)))
    assert info_nce(q, k, queue, tau).item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_naive_and_invariances() -> None:
    q, k, queue = torch.randn(6, 4, generator=g(0)), torch.randn(6, 4, generator=g(1)), torch.randn(10, 4, generator=g(2))
    naive = 0.0
    for i in range(6):
        qi, ki = unit(q[i]), unit(k[i])
        num = math.exp(float(qi @ ki) / 0.2)
        den = num + sum(math.exp(float(qi @ unit(n)) / 0.2) for n in queue)
        naive += -math.log(num / den) / 6
    assert info_nce(q, k, queue, 0.2).item() == pytest.approx(naive, rel=1e-5)
    perm = torch.randperm(10, generator=g(3))
    torch.testing.assert_close(info_nce(q, k, queue[perm], 0.2), info_nce(q, k, queue, 0.2))  # queue order
    torch.testing.assert_close(info_nce(2 * q, 3 * k, queue, 0.2), info_nce(q, k, queue, 0.2))  # scale
    # an empty queue leaves only the positive: loss 0
    assert info_nce(q, k, queue[:0], 0.2).item() == pytest.approx(0.0, abs=1e-6)


# --- SimSiam / BYOL -------------------------------------------------------------------------

def test_negative_cosine_and_byol_values_and_stop_gradient() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]], requires_grad=True)
    cos = [1 / math.sqrt(2), -1.0]
    assert negative_cosine(p, z).item() == pytest.approx(-sum(cos) / 2, rel=1e-6)
    loss = byol_loss(p, z)
    assert loss.item() == pytest.approx(sum(2 - 2 * c for c in cos) / 2, rel=1e-6)
    loss.backward()
    assert p.grad is not None and p.grad.abs().sum() > 0
    assert z.grad is None  # stop-gradient on the target / other branch
    # BYOL's loss is the squared distance of the normalized vectors
    pn, zn = unit(p.detach()), unit(z.detach())
    assert loss.item() == pytest.approx(((pn - zn) ** 2).sum(1).mean().item(), rel=1e-6)


# --- Barlow Twins ---------------------------------------------------------------------------

def naive_barlow(a: torch.Tensor, b: torch.Tensor, lam: float) -> float:
    n, d = a.shape
    an = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5)
    bn = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + 1e-5)
    total = 0.0
    for i in range(d):
        for j in range(d):
            c = float(sum(an[k, i] * bn[k, j] for k in range(n)) / n)
            total += (1 - c) ** 2 if i == j else lam * c * c
    return total


def test_barlow_twins_formula_and_invariances() -> None:
    a, b = torch.randn(8, 5, generator=g(4)), torch.randn(8, 5, generator=g(5))
    assert barlow_twins(a, b, 5e-3).item() == pytest.approx(naive_barlow(a, b, 5e-3), rel=1e-4)
    perm = torch.randperm(8, generator=g(6))
    torch.testing.assert_close(barlow_twins(a[perm], b[perm]), barlow_twins(a, b))  # batch order
    torch.testing.assert_close(barlow_twins(3 * a + 1, 0.5 * b - 2), barlow_twins(a, b), rtol=1e-4, atol=1e-4)
    # identical, decorrelated views reach the minimum 0: columns centred first, then orthonormalized,
    # so they stay zero-mean and their correlation matrix is exactly the identity (what is left is
    # the standardization's epsilon, ~1e-6)
    x = torch.randn(64, 4, generator=g(7))
    x = torch.linalg.qr(x - x.mean(0))[0]
    assert x.mean(0).abs().max() < 1e-6
    assert barlow_twins(x, x).item() == pytest.approx(0.0, abs=1e-5)
    # and the bound can fail: the same features paired with other samples are far from it
    assert barlow_twins(x, x.roll(1, 0)).item() > 0.5
    aa, bb = a.clone().requires_grad_(), b.clone().requires_grad_()
    barlow_twins(aa, bb).backward()
    assert aa.grad is not None and bb.grad is not None and aa.grad.abs().sum() > 0 and bb.grad.abs().sum() > 0


# --- SwAV -----------------------------------------------------------------------------------

def test_sinkhorn_equipartition() -> None:
    scores = torch.randn(32, 8, generator=g(8))
    q = sinkhorn(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(q.sum(1), torch.ones(32), rtol=0, atol=1e-5)  # a distribution per sample
    # the last step normalizes samples; prototype masses approach B/K = 4 (exact as iterations grow)
    q50 = sinkhorn(scores, epsilon=0.5, iterations=50)
    torch.testing.assert_close(q50.sum(0), torch.full((8,), 4.0), rtol=1e-2, atol=1e-2)
    assert not q.requires_grad


def test_sinkhorn_matches_the_papers_algorithm() -> None:
    scores = torch.randn(10, 4, generator=g(9))
    eps = 0.5
    # Algorithm 1 of the SwAV paper, literally
    Q = torch.exp(scores / eps).T
    Q /= Q.sum()
    K, B = Q.shape
    for _ in range(3):
        Q /= Q.sum(dim=1, keepdim=True)
        Q /= K
        Q /= Q.sum(dim=0, keepdim=True)
        Q /= B
    Q *= B
    torch.testing.assert_close(sinkhorn(scores, eps, 3), Q.T, rtol=1e-5, atol=1e-6)


def test_swav_swapped_prediction_and_gradients() -> None:
    a = torch.randn(16, 6, generator=g(10), requires_grad=True)
    b = torch.randn(16, 6, generator=g(11), requires_grad=True)
    loss = swav_loss([a, b], temperature=0.1)
    qa, qb = sinkhorn(a.detach()), sinkhorn(b.detach())
    expected = -0.5 * ((qb * torch.log_softmax(a / 0.1, 1)).sum(1).mean() + (qa * torch.log_softmax(b / 0.1, 1)).sum(1).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert a.grad is not None and b.grad is not None and a.grad.abs().sum() > 0
    # swapping the views gives the same loss
    assert swav_loss([b, a]).item() == pytest.approx(swav_loss([a, b]).item(), rel=1e-6)


# --- DINO -----------------------------------------------------------------------------------

def test_dino_pairs_and_formula() -> None:
    t = [torch.randn(4, 5, generator=g(12)) for _ in range(2)]
    s = [torch.randn(4, 5, generator=g(13 + i), requires_grad=True) for i in range(4)]  # 2 global + 2 local
    c = torch.randn(5, generator=g(20))
    loss = dino_loss(s, t, c, 0.1, 0.04)
    naive, pairs = 0.0, 0
    for ti in range(2):
        pt = torch.softmax((t[ti] - c) / 0.04, 1)
        for si in range(4):
            if si == ti:
                continue
            naive += float((-(pt * torch.log_softmax(s[si].detach() / 0.1, 1)).sum(1)).mean())
            pairs += 1
    assert pairs == 6 and loss.item() == pytest.approx(naive / pairs, rel=1e-5)
    tt = [x.clone().requires_grad_() for x in t]
    dino_loss(s, tt, c).backward()
    assert all(x.grad is None for x in tt)  # no gradient into the teacher
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in s)


def test_dino_centering_invariance_and_view_count() -> None:
    t = [torch.randn(3, 4, generator=g(30))]
    s = [torch.randn(3, 4, generator=g(31)), torch.randn(3, 4, generator=g(32))]
    # softmax is shift invariant: a centre that is a constant vector changes nothing
    torch.testing.assert_close(dino_loss(s, t, torch.full((4,), 2.5)), dino_loss(s, t, torch.zeros(4)))
    with pytest.raises(ValueError, match="at least one teacher view and two student views"):
        dino_loss(s[:1], t, torch.zeros(4))
