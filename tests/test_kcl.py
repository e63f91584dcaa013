"""KCL (Kang et al., ICLR 2021; bingykang/BalFeat): each query's positives are its key and k
same-class keys of the label queue, with the soft target 1/(1+k); the label queue follows the key
queue slot for slot."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from csl.errors import ConfigError
from csl.losses.info_nce import info_nce
from csl.losses.kcl import k_same_class
from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS


def test_k_same_class_picks_k_of_the_querys_class() -> None:
    queue_labels = torch.tensor([0, 1, 0, 2, 0, -1, 0, 1, 2, 0])  # class 0 at 0, 2, 4, 6, 9; 1 at 1, 7
    labels = torch.tensor([0, 1, 3])
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(10)
    for _ in range(200):
        m = k_same_class(labels, queue_labels, 3, g)
        assert m[0].sum() == 3 and bool((queue_labels[m[0]] == 0).all())
        assert m[1].sum() == 2 and m[1].nonzero().flatten().tolist() == [1, 7]  # fewer than k: all of them
        assert m[2].sum() == 0  # a class not in the queue; empty slots (-1) are never chosen
        counts += m[0].float()
    # uniform without replacement: each of the 5 class-0 slots chosen 3/5 of the time
    assert ((counts[[0, 2, 4, 6, 9]] / 200 - 0.6).abs() < 0.12).all()


def test_soft_target_loss_equals_its_formula() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, queue = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g), torch.randn(5, 6, generator=g)
    pos = torch.tensor([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 1]], dtype=torch.bool)
    t = 0.07
    expected = 0.0
    for i in range(3):
        qi = F.normalize(q[i], dim=0)
        logits = [float(qi @ F.normalize(k[i], dim=0)) / t] + [float(qi @ F.normalize(n, dim=0)) / t for n in queue]
        lse = math.log(sum(math.exp(x - max(logits)) for x in logits)) + max(logits)
        targets = [0] + [j + 1 for j in range(5) if pos[i, j]]
        expected += -sum(logits[j] - lse for j in targets) / len(targets)  # 1/(1+k_i) on each
    assert info_nce(q, k, queue, t, positives=pos).item() == pytest.approx(expected / 3, rel=1e-5)
    none = torch.zeros(3, 5, dtype=torch.bool)
    torch.testing.assert_close(info_nce(q, k, queue, t, positives=none), info_nce(q, k, queue, t))


def kcl():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return build_method(parse_method({**tiny_method(), **VARIANTS["kcl"]}, "methods.kcl"), META)


def test_the_label_queue_follows_the_key_queue() -> None:
    m = kcl()
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(16) % 4
    assert bool((m.label_queue == -1).all())
    m.training_loss(Batch(images, labels), torch.Generator().manual_seed(3))
    assert int(m.queue_ptr) == 16 and m.label_queue[:16].tolist() == labels.tolist()
    assert bool((m.label_queue[16:] == -1).all())
    # the second step has queued positives of each class; the loss is the soft target's
    loss = m.training_loss(Batch(images, labels), torch.Generator().manual_seed(4))["loss"]
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="KCL needs the batch's labels"):
        m.training_loss(Batch(images), torch.Generator().manual_seed(5))


def test_kcl_needs_labels_and_k_at_least_one() -> None:
    m = kcl()
    assert m.needs.labels
    with pytest.raises(ConfigError, match="needs labels, and this dataset has none"):
        m.check_dataset(1000, labelled=False)
    raw = {**tiny_method(), **VARIANTS["kcl"]}
    with pytest.raises(ConfigError, match="k' must be >= 1"):
        parse_method({**raw, "method": {**raw["method"], "k": 0}}, "methods.kcl")
