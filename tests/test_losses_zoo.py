"""The zoo's losses against their papers' formulas written naively: MoCo v3's in-batch
InfoNCE, SwAV with multi-crop and a queue, AMDIM's NCE, CPC's InfoNCE; invariances and which
inputs receive gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csl.losses import amdim_nce, cpc_infonce, info_nce, sinkhorn, swav_loss


def g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_info_nce_in_batch_negatives_hand_computed() -> None:
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    t = 0.5
    # q0: positive 1.0, negative q0.k1 = 0.6; q1: positive 0.8, negative q1.k0 = 0
    l0 = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0.6 / t)))
    l1 = -math.log(math.exp(0.8 / t) / (math.exp(0.8 / t) + math.exp(0.0)))
    assert info_nce(q, k, None, t).item() == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_info_nce_in_batch_naive_permutation_and_gradients() -> None:
    q = torch.randn(6, 4, generator=g(1), requires_grad=True)
    k = torch.randn(6, 4, generator=g(2), requires_grad=True)
    loss = info_nce(q, k, None, 0.2)
    qn, kn = F.normalize(q.detach(), dim=1), F.normalize(k.detach(), dim=1)
    naive = 0.0
    for i in range(6):
        den = sum(math.exp(float(qn[i] @ kn[j]) / 0.2) for j in range(6))
        naive += -math.log(math.exp(float(qn[i] @ kn[i]) / 0.2) / den)
    assert loss.item() == pytest.approx(naive / 6, rel=1e-5)
    perm = torch.randperm(6, generator=g(3))
    torch.testing.assert_close(info_nce(q[perm], k[perm], None, 0.2), loss)  # batch order
    loss.backward()
    assert q.grad is not None and k.grad is not None  # MoCo passes k.detach(); the function does not


def test_swav_multicrop_every_view_predicts_the_global_codes() -> None:
    views = [torch.randn(8, 5, generator=g(10 + i), requires_grad=True) for i in range(4)]  # 2 global + 2 local
    loss = swav_loss(views, temperature=0.1, assign=[0, 1])
    naive = 0.0
    for i in (0, 1):
        q = sinkhorn(views[i].detach())
        sub = sum(-(q * torch.log_softmax(views[v].detach() / 0.1, 1)).sum(1).mean() for v in range(4) if v != i)
        naive += float(sub) / 3
    assert loss.item() == pytest.approx(naive / 2, rel=1e-5)
    loss.backward()
    assert all(v.grad is not None and v.grad.abs().sum() > 0 for v in views)  # locals get gradient as predictors


def test_swav_queue_codes_come_from_queue_and_batch() -> None:
    a, b = torch.randn(4, 6, generator=g(20)), torch.randn(4, 6, generator=g(21))
    qa, qb = torch.randn(12, 6, generator=g(22)), torch.randn(12, 6, generator=g(23))
    loss = swav_loss([a, b], queued=[qa, qb])
    codes_a = sinkhorn(torch.cat([qa, a]))[-4:]
    codes_b = sinkhorn(torch.cat([qb, b]))[-4:]
    expected = -0.5 * ((codes_a * torch.log_softmax(b / 0.1, 1)).sum(1).mean()
                       + (codes_b * torch.log_softmax(a / 0.1, 1)).sum(1).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() != pytest.approx(swav_loss([a, b]).item(), rel=1e-3)  # the queue changes the codes


def _amdim_naive(src: torch.Tensor, trg: torch.Tensor, clip: float, reg: float) -> float:
    n, d, length = trg.shape
    raw = [[[float(src[i] @ trg[j, :, loc]) / math.sqrt(d) for loc in range(length)] for j in range(n)] for i in range(n)]
    s = [[[clip * math.tanh(v / clip) for v in row] for row in mat] for mat in raw]
    total = 0.0
    for i in range(n):
        negs = [s[i][j][loc] for j in range(n) if j != i for loc in range(length)]
        for loc in range(length):
            pos = s[i][i][loc]
            total += -pos + math.log(math.exp(pos) + sum(math.exp(v) for v in negs))
    mean_sq = sum(v * v for mat in raw for row in mat for v in row) / (n * n * length)
    return total / (n * length) + reg * mean_sq


def test_amdim_nce_matches_the_formula_and_is_permutation_invariant() -> None:
    src = torch.randn(5, 8, generator=g(30)) * 4
    trg = torch.randn(5, 8, 3, generator=g(31)) * 4
    loss = amdim_nce(src, trg, clip=10.0, reg_weight=0.05)
    assert loss.item() == pytest.approx(_amdim_naive(src, trg, 10.0, 0.05), rel=1e-5)
    perm = torch.randperm(5, generator=g(32))
    torch.testing.assert_close(amdim_nce(src[perm], trg[perm]), loss)  # batch order
    loc = torch.randperm(3, generator=g(33))
    torch.testing.assert_close(amdim_nce(src, trg[:, :, loc]), loss)  # location order
    # tanh clipping bounds every score: huge inputs give a finite loss
    assert torch.isfinite(amdim_nce(src * 1e4, trg * 1e4, reg_weight=0.0))


def test_amdim_nce_gradients_reach_both_sides() -> None:
    src = torch.randn(4, 6, generator=g(34), requires_grad=True)
    trg = torch.randn(4, 6, 2, generator=g(35), requires_grad=True)
    amdim_nce(src, trg).backward()
    assert src.grad is not None and trg.grad is not None and trg.grad.abs().sum() > 0


def test_cpc_infonce_matches_the_formula() -> None:
    n, d, r = 2, 3, 3
    z = torch.randn(n, d, r, r, generator=g(40), requires_grad=True)
    preds = [torch.randn(n, d, r, r, generator=g(41 + k), requires_grad=True) for k in range(2)]
    loss = cpc_infonce(preds, z)
    allz = [(m, rr, cc) for m in range(n) for rr in range(r) for cc in range(r)]
    naive = 0.0
    for k, p in enumerate(preds, start=1):
        terms = []
        for m in range(n):
            for rr in range(r - k):
                for cc in range(r):
                    pv = p[m, :, rr, cc].detach()
                    logits = [float(pv @ z[a, :, b, c].detach()) / math.sqrt(d) for a, b, c in allz]
                    pos = float(pv @ z[m, :, rr + k, cc].detach()) / math.sqrt(d)
                    terms.append(-pos + math.log(sum(math.exp(v) for v in logits)))
        naive += sum(terms) / len(terms)
    assert loss.item() == pytest.approx(naive / 2, rel=1e-5)
    loss.backward()
    assert z.grad is not None and all(p.grad is not None for p in preds)
    # the last k rows of prediction k have no target below: they get no gradient
    assert preds[1].grad is not None and preds[1].grad[:, :, r - 2:].abs().sum() == 0


def test_cpc_infonce_rejects_steps_beyond_the_grid() -> None:
    with pytest.raises(ValueError, match="cannot predict 3 rows ahead on a grid of 3 rows"):
        cpc_infonce([torch.zeros(1, 2, 3, 3)] * 3, torch.zeros(1, 2, 3, 3))
