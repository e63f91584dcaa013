"""i-Mix (arXiv 2010.08887; kibok90/imix): the loss equals its formula, lambda follows
Beta(alpha, alpha) folded to [0.5, 1], the method mixes view 1 with the partner that the loss
credits, and compositions without instance logits are refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csl.errors import ConfigError
from csl.losses.imix import imix_npair, sample_beta
from csl.losses.nt_xent import nt_xent
from csl.methods import imix as imix_module
from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.similarity.cosine import cosine_similarity_matrix
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS


def test_the_loss_equals_its_formula() -> None:
    g = torch.Generator().manual_seed(0)
    mixed, keys = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    perm = torch.tensor([2, 0, 4, 1, 3])
    lam, t = 0.7, 0.2
    expected = 0.0
    for i in range(5):
        s = [float(F.normalize(mixed[i], dim=0) @ F.normalize(keys[j], dim=0)) / t for j in range(5)]
        lse = math.log(sum(math.exp(x) for x in s))
        expected += lam * (lse - s[i]) + (1 - lam) * (lse - s[int(perm[i])])
    got = imix_npair(mixed, keys, perm, torch.tensor(lam), cosine_similarity_matrix, t)
    assert got.item() == pytest.approx(expected / 5, rel=1e-5)


def test_without_mixing_it_is_the_n_pair_loss() -> None:
    """lambda = 1: one direction of NT-Xent's positives against the other view only (N-pair)."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    got = imix_npair(a, b, torch.randperm(6, generator=g), torch.tensor(1.0), cosine_similarity_matrix, 0.5)
    logits = cosine_similarity_matrix(a, b) / 0.5
    torch.testing.assert_close(got, F.cross_entropy(logits, torch.arange(6)))
    assert not torch.allclose(got, nt_xent(a, b, 0.5))  # NT-Xent also has same-view negatives


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_beta_draws_have_the_beta_moments(alpha: float) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.stack([sample_beta(alpha, g) for _ in range(3000)])
    assert ((x > 0) & (x < 1)).all()
    var = 1 / (4 * (2 * alpha + 1))  # Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    assert abs(float(x.mean()) - 0.5) < 4 * math.sqrt(var / 3000)
    assert float(x.var()) == pytest.approx(var, rel=0.1)
    g2 = torch.Generator().manual_seed(2)
    assert torch.equal(sample_beta(alpha, g2), x[0])  # from the generator alone


def test_the_method_mixes_view_one_with_the_credited_partner(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    method = build_method(parse_method({**tiny_method(), **VARIANTS["imix"]}, "methods.imix"), META)
    seen: dict[str, torch.Tensor] = {}
    monkeypatch.setattr(imix_module, "sample_beta", lambda alpha, g: torch.tensor(0.3))  # folded to 0.7
    original_embed = imix_module.embed_views

    def embed(views, *args):  # type: ignore[no-untyped-def]
        seen["mixed"], seen["plain"] = views[0].detach(), views[1].detach()
        return original_embed(views, *args)

    def loss(mixed, keys, perm, lam, similarity):  # type: ignore[no-untyped-def]
        seen["perm"], seen["lam"] = perm, lam
        return (mixed.sum() + keys.sum()) * 0

    monkeypatch.setattr(imix_module, "embed_views", embed)
    method.loss_fn = loss
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    method.training_loss(Batch(images), torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the same draws, in the method's order
    v1, v2 = method.augment(images, g)[:2]
    perm = torch.randperm(8, generator=g)
    assert torch.equal(seen["perm"], perm) and float(seen["lam"]) == pytest.approx(0.7)
    torch.testing.assert_close(seen["mixed"], 0.7 * v1 + 0.3 * v1[perm])
    torch.testing.assert_close(seen["plain"], v2)


def test_compositions_without_instance_logits_are_refused() -> None:
    with pytest.raises(ConfigError, match="method 'imix' cannot use loss 'nt_xent'"):
        parse_method({**tiny_method(), **VARIANTS["imix"], "loss": "nt_xent"}, "m")
    with pytest.raises(ConfigError, match="method 'byol' cannot use loss 'imix_npair' \\(a mixed_instance loss\\)"):
        parse_method({**tiny_method(), **VARIANTS["byol"], "loss": "imix_npair"}, "m")


def naive_imix_moco(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor | None, perm: torch.Tensor, lam: float,
                    t: float) -> float:
    total = 0.0
    cands = [F.normalize(x, dim=0) for x in k] + ([F.normalize(x, dim=0) for x in queue] if queue is not None else [])
    for i in range(q.shape[0]):
        s = [float(F.normalize(q[i], dim=0) @ c) / t for c in cands]
        lse = math.log(sum(math.exp(x) for x in s))
        total += lam * (lse - s[i]) + (1 - lam) * (lse - s[int(perm[i])])
    return total / q.shape[0]


def test_imix_on_moco_scores_in_batch_keys_and_the_queue() -> None:
    from csl.losses.info_nce import info_nce

    g = torch.Generator().manual_seed(7)
    q, k, queue = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g), torch.randn(6, 5, generator=g)
    perm = torch.tensor([3, 2, 0, 1])
    for qu in (queue, None):
        got = info_nce(q, k, qu, 0.2, mix=(perm, torch.tensor(0.6)))
        assert got.item() == pytest.approx(naive_imix_moco(q, k, qu, perm, 0.6, 0.2), rel=1e-5)


def test_imix_on_moco_mixes_the_query_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from csl.methods import moco as moco_module

    torch.manual_seed(0)
    method = build_method(parse_method({**tiny_method(), **VARIANTS["imix_moco"]}, "methods.imix_moco"), META)
    monkeypatch.setattr(moco_module, "sample_beta", lambda alpha, g: torch.tensor(0.2))  # folded to 0.8
    seen: list[torch.Tensor] = []
    original = moco_module.MoCo._branch
    monkeypatch.setattr(moco_module.MoCo, "_branch",
                        lambda self, x, *a: seen.append(x.detach()) or original(self, x, *a))
    images = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    method.training_loss(Batch(images), torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    v1, v2 = method.augment(images, g)[:2]
    perm = torch.randperm(8, generator=g)
    torch.testing.assert_close(seen[0], 0.8 * v1 + 0.2 * v1[perm])  # the query's input is mixed
    torch.testing.assert_close(seen[1], v2)  # the key's is not
