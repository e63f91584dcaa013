"""NT-Xent equals SimCLR's formula (arXiv 2002.05709, Eq. 1), by hand and by a naive loop."""

from __future__ import annotations

import math

import pytest
import torch

from csl.losses import nt_xent
from csl.similarity import dot_product_matrix


def naive_nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, tau: float) -> torch.Tensor:
    """The paper's Algorithm 1, written as loops over the 2N anchors."""
    z = torch.cat([z_a, z_b])
    n2 = z.shape[0]
    n = n2 // 2

    def sim(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u @ v) / (u.norm() * v.norm())

    total = torch.zeros(())
    for i in range(n2):
        j = (i + n) % n2
        num = torch.exp(sim(z[i], z[j]) / tau)
        den = sum(torch.exp(sim(z[i], z[k]) / tau) for k in range(n2) if k != i)
        total = total - torch.log(num / den)
    return total / n2


def test_hand_computed_two_pairs() -> None:
    # orthogonal unit vectors: pair 0 = (e1, e1), pair 1 = (e2, e2)
    z_a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tau = 0.5
    # every anchor: positive sim 1, two negatives with sim 0 (the other pair's views)
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * math.exp(0.0)))
    assert nt_xent(z_a, z_b, tau).item() == pytest.approx(expected, rel=1e-6)


def test_hand_computed_non_trivial() -> None:
    z_a = torch.tensor([[1.0, 0.0]])
    z_b = torch.tensor([[0.6, 0.8]])
    # N = 1: the only other sample of each anchor is its positive -> loss 0 regardless of tau
    assert nt_xent(z_a, z_b, 0.1).item() == pytest.approx(0.0, abs=1e-6)
    z_a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z_b = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
    tau = 1.0
    # cosine matrix of [a0, a1, b0, b1] = [(1,0), (0,1), (.6,.8), (-1,0)] after normalizing
    s = {(0, 1): 0.0, (0, 2): 0.6, (0, 3): -1.0, (1, 2): 0.8, (1, 3): 0.0, (2, 3): -0.6}
    s.update({(j, i): v for (i, j), v in list(s.items())})
    pos = {0: 2, 1: 3, 2: 0, 3: 1}
    losses = []
    for i in range(4):
        den = sum(math.exp(s[(i, k)] / tau) for k in range(4) if k != i)
        losses.append(-math.log(math.exp(s[(i, pos[i])] / tau) / den))
    assert nt_xent(z_a, z_b, tau).item() == pytest.approx(sum(losses) / 4, rel=1e-6)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_matches_naive_loop(tau: float) -> None:
    g = torch.Generator().manual_seed(0)
    z_a, z_b = torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)
    assert nt_xent(z_a, z_b, tau).item() == pytest.approx(naive_nt_xent(z_a, z_b, tau).item(), rel=1e-5)


def test_invariant_to_permuting_pairs_and_swapping_views() -> None:
    g = torch.Generator().manual_seed(1)
    z_a, z_b = torch.randn(9, 4, generator=g), torch.randn(9, 4, generator=g)
    perm = torch.randperm(9, generator=g)
    base = nt_xent(z_a, z_b, 0.3)
    torch.testing.assert_close(nt_xent(z_a[perm], z_b[perm], 0.3), base)
    torch.testing.assert_close(nt_xent(z_b, z_a, 0.3), base)


def test_invariant_to_scale_of_inputs_with_cosine() -> None:
    g = torch.Generator().manual_seed(2)
    z_a, z_b = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    torch.testing.assert_close(nt_xent(3.0 * z_a, 0.5 * z_b, 0.2), nt_xent(z_a, z_b, 0.2))


def test_gradients_flow_to_both_views() -> None:
    g = torch.Generator().manual_seed(3)
    z_a = torch.randn(5, 4, generator=g, requires_grad=True)
    z_b = torch.randn(5, 4, generator=g, requires_grad=True)
    nt_xent(z_a, z_b, 0.5).backward()
    assert z_a.grad is not None and z_a.grad.abs().sum() > 0
    assert z_b.grad is not None and z_b.grad.abs().sum() > 0
    # and agrees with the naive loop's gradients
    za2, zb2 = z_a.detach().clone().requires_grad_(), z_b.detach().clone().requires_grad_()
    naive_nt_xent(za2, zb2, 0.5).backward()
    torch.testing.assert_close(z_a.grad, za2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(z_b.grad, zb2.grad, rtol=1e-4, atol=1e-6)


def test_other_similarity_is_used() -> None:
    z_a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    z_b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # dot product is not scale invariant: the result must differ from cosine
    assert nt_xent(z_a, z_b, 1.0, dot_product_matrix).item() != pytest.approx(nt_xent(z_a, z_b, 1.0).item())


def test_bad_shapes_and_temperature() -> None:
    with pytest.raises(ValueError, match="must both be"):
        nt_xent(torch.randn(3, 2), torch.randn(4, 2))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(torch.randn(3, 2), torch.randn(3, 2), 0.0)


def test_bf16_inputs_give_fp32_loss() -> None:
    z = torch.randn(4, 8)
    out = nt_xent(z.bfloat16(), z.flip(0).bfloat16(), 0.5)
    assert out.dtype == torch.float32
