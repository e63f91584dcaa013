"""The evaluation suite's parts against hand computations: label subsets, fine-tuning from a head
layer, the distillation loss, Hungarian accuracy, recall@k and mAP@R, transfer adaptation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from csl.errors import ConfigError, CslError
from csl.evaluate.adapt import adapt_images
from csl.evaluate.classifier import build_classifier, crop_flip
from csl.evaluate.clustering import cluster_metrics, hungarian_accuracy
from csl.evaluate.distill import distillation_loss
from csl.evaluate.retrieval import retrieval_metrics
from csl.evaluate.subsets import balanced_subset, fraction_key, subset_hash
from csl.extract.projection import ProjectionHead


def test_subsets_are_class_balanced_deterministic_and_shared() -> None:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(5), [100, 100, 100, 100, 40])
    rng.shuffle(labels)
    idx = balanced_subset(labels, 0.1, seed=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)  # sorted, no repeats
    assert np.bincount(labels[idx]).tolist() == [10, 10, 10, 10, 4]  # round(0.1 n_c) of every class
    again = balanced_subset(labels.copy(), 0.1, seed=0)
    assert np.array_equal(idx, again) and subset_hash(idx) == subset_hash(again)  # any variant gets this subset
    other = balanced_subset(labels, 0.1, seed=1)
    assert not np.array_equal(idx, other) and subset_hash(idx) != subset_hash(other)
    small = balanced_subset(labels, 0.05, seed=0)
    assert np.bincount(labels[small]).tolist() == [5, 5, 5, 5, 2]
    assert np.array_equal(balanced_subset(labels, 1.0, seed=3), np.arange(len(labels)))
    assert [fraction_key(f) for f in (0.01, 0.1, 1.0, 0.005)] == ["1pct", "10pct", "100pct", "0_5pct"]


def test_a_fraction_that_empties_a_class_is_refused() -> None:
    labels = np.repeat(np.arange(3), [300, 300, 20])
    with pytest.raises(ConfigError, match="leaves class 2 \\(20 training examples\\) with no example"):
        balanced_subset(labels, 0.01, seed=0)


def _payload(layers: int = 3) -> dict:
    from csl.encoders.small_cnn import SmallCNN  # noqa: F401  (registered builder)

    torch.manual_seed(0)
    head = ProjectionHead(16, 12, 8, batch_norm=True, layers=layers)
    for p in head.parameters():
        torch.nn.init.normal_(p)
    from csl.encoders.saved import build_from_payload

    payload = {"encoder": {"name": "small_cnn", "widths": [8, 16]}, "in_channels": 1, "image_size": 16,
               "mean": [0.5], "std": [0.25], "variant": "v", "method": "simclr", "state_dict": None,
               "head": {"args": dict(head.args), "state_dict": head.state_dict()}}
    enc = build_from_payload(payload, random_init_seed=5)
    for p in enc.parameters():
        torch.nn.init.normal_(p)
    payload["state_dict"] = enc.state_dict()
    return payload


def test_fine_tuning_from_a_head_layer_takes_that_layers_pretrained_weights() -> None:
    payload = _payload()
    net = build_classifier(payload, from_head_layer=1, num_classes=4, seed=0)
    lin, bn, relu = list(net.head.children())
    head_state = payload["head"]["state_dict"]
    torch.testing.assert_close(lin.weight, head_state["net.0.weight"])  # the first layer of the head ...
    torch.testing.assert_close(bn.weight, head_state["net.1.weight"])  # ... with its batch norm
    torch.testing.assert_close(bn.running_mean, head_state["net.1.running_mean"])
    assert isinstance(relu, torch.nn.ReLU) and net.fc.in_features == 12 and net.fc.out_features == 4
    for k, v in net.encoder.state_dict().items():
        torch.testing.assert_close(v, payload["state_dict"][k])
    two = build_classifier(payload, from_head_layer=2, num_classes=4, seed=0)
    torch.testing.assert_close(list(two.head.children())[3].weight, head_state["net.3.weight"])
    zero = build_classifier(payload, from_head_layer=0, num_classes=4, seed=0)
    assert isinstance(zero.head, torch.nn.Identity) and zero.fc.in_features == 16
    x = torch.rand(3, 1, 16, 16)
    net.eval()
    expect = torch.relu(torch.nn.functional.batch_norm(
        net.encoder(x) @ head_state["net.0.weight"].T, head_state["net.1.running_mean"],
        head_state["net.1.running_var"], head_state["net.1.weight"], head_state["net.1.bias"]))
    torch.testing.assert_close(net(x), net.fc(expect))
    # the random-init baseline: the same architecture, none of the pretrained weights
    base = build_classifier(payload, from_head_layer=1, num_classes=4, seed=0, random_init=True)
    assert not torch.allclose(list(base.head.children())[0].weight, head_state["net.0.weight"])
    assert [p.shape for p in base.parameters()] == [p.shape for p in net.parameters()]
    with pytest.raises(CslError, match="has 2 hidden layer\\(s\\); use 0..2"):
        build_classifier(payload, from_head_layer=3, num_classes=4, seed=0)
    with pytest.raises(CslError, match="saved without one"):
        build_classifier({**payload, "head": None}, from_head_layer=1, num_classes=4, seed=0)


def test_crop_flip_moves_whole_images() -> None:
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.uint8).view(2, 1, 6, 6)
    out = crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    for i in range(2):  # without padding: the image or its mirror
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(2))


def test_distillation_loss_is_the_papers_formula() -> None:
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    for tau in (1.0, 2.0, 0.5):
        want = 0.0
        for i in range(2):
            zt = [math.exp(v / tau) for v in t[i].tolist()]
            zs = [math.exp(v / tau) for v in s[i].tolist()]
            want += -sum(a / sum(zt) * math.log(b / sum(zs)) for a, b in zip(zt, zs))
        assert float(distillation_loss(s, t, tau)) == pytest.approx(want / 2, rel=1e-6)
    s.requires_grad_(True)
    t.requires_grad_(True)
    distillation_loss(s, t, 1.0).backward()
    assert t.grad is None or torch.count_nonzero(t.grad) == 0  # the teacher gets no gradient
    # a one-hot teacher at tau -> 0 is cross-entropy on its labels; invariant to a shift of the logits
    hard = torch.tensor([[50.0, 0.0, 0.0], [0.0, 0.0, 50.0]])
    ce = torch.nn.functional.cross_entropy(s.detach(), torch.tensor([0, 2]))
    assert float(distillation_loss(s.detach(), hard)) == pytest.approx(float(ce), rel=1e-5)
    assert float(distillation_loss(s.detach() + 7, t.detach() - 3)) == pytest.approx(float(distillation_loss(s, t)))


def test_hungarian_accuracy_equals_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.integers(0, 4, 30)
        clusters = rng.integers(0, 4, 30)
        best = max(np.mean([perm[c] == y for c, y in zip(clusters, labels)])
                   for perm in itertools.permutations(range(4)))
        assert hungarian_accuracy(labels, clusters) == pytest.approx(best)
    assert hungarian_accuracy(np.array([0, 0, 1, 1, 2]), np.array([2, 2, 0, 0, 1])) == 1.0


def test_clustering_recovers_separated_classes_and_refuses_k_above_n() -> None:
    centres = torch.eye(3) * 5
    y = torch.arange(3).repeat_interleave(20)
    x = centres[y] + 0.05 * torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    m = cluster_metrics(x, y, 3, seed=0, restarts=3, iterations=20)
    assert m == {"cluster_nmi": pytest.approx(1.0), "cluster_ari": pytest.approx(1.0), "cluster_acc": 1.0}
    with pytest.raises(ConfigError, match="k = 61 for 60 points"):
        cluster_metrics(x, y, 61, seed=0, restarts=1, iterations=1)


def test_recall_at_k_and_map_at_r_equal_hand_computed_values() -> None:
    # database on the unit circle: angles 0, 10, 20, 90, 100 degrees, classes a a b b a
    ang = torch.tensor([0.0, 10.0, 20.0, 90.0, 100.0]) * math.pi / 180
    db = torch.stack([ang.cos(), ang.sin()], 1)
    dbl = torch.tensor([0, 0, 1, 1, 0])
    # query 1 at 5 degrees, class a: ranking 0(a) 1(a) 2(b) 3(b) 4(a); R = 3
    # query 2 at 95 degrees, class b: ranking 3 or 4 first (tie broken away: use 93 -> 3(b) 4(a) 2(b) 1 0); R = 2
    qa = torch.tensor([5.0, 93.0]) * math.pi / 180
    q = torch.stack([qa.cos(), qa.sin()], 1)
    ql = torch.tensor([0, 1])
    m = retrieval_metrics(q, ql, db, dbl, ks=[1, 2])
    # recall@1: q1 hit (0 is a), q2 hit (3 is b) -> 1; recall@2: 1
    # AP@R q1: rel = 1,1,0 -> (1/3)(1/1 + 2/2) = 2/3; q2: rel = 1,0 -> (1/2)(1) = 1/2
    assert m["recall_at_1"] == 1.0 and m["recall_at_2"] == 1.0
    assert m["map_at_r"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # a query whose nearest is wrong: at 55 degrees, class a -> 3(b) ... ranking by cos: 90(35), 20(35)
    q3 = torch.tensor([[math.cos(math.radians(60)), math.sin(math.radians(60))]])
    # distances: 0:60 1:50 2:40 3:30 4:40 -> ranking 3(b), then 2(b)/4(a) tied at 40, 1(a), 0(a); R = 3
    m3 = retrieval_metrics(q3, torch.tensor([0]), db, dbl, ks=[1, 5])
    assert m3["recall_at_1"] == 0.0 and m3["recall_at_5"] == 1.0
    assert m3["map_at_r"] in (pytest.approx((1 / 3) * (1 / 3)), pytest.approx((1 / 3) * (1 / 2)))


def test_transfer_adaptation_matches_pil_luma_and_resizes() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 3, 8, 8), dtype=np.uint8)
    grey, record = adapt_images(rgb, channels=1, size=8)
    pil = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).convert("L")) for im in rgb])
    assert grey.shape == (3, 1, 8, 8) and np.abs(grey[:, 0].astype(int) - pil.astype(int)).max() <= 1
    assert record["steps"] == ["rgb->luma(BT.601)"]
    small, record = adapt_images(rgb, channels=3, size=4)
    assert small.shape == (3, 3, 4, 4) and record["steps"] == ["resize 8x8->4x4 (bilinear, antialias)"]
    pil_small = np.stack([np.stack([np.asarray(Image.fromarray(ch).resize((4, 4), Image.BILINEAR)) for ch in im])
                          for im in rgb])  # torch's antialiased bilinear is PIL's
    assert np.abs(small.astype(int) - pil_small.astype(int)).max() <= 1
    same, record = adapt_images(rgb, channels=3, size=8)
    assert same is rgb and record["steps"] == []
    rep, _ = adapt_images(grey, channels=3, size=8)
    assert np.array_equal(rep[:, 0], rep[:, 2]) and np.array_equal(rep[:, 1], grey[:, 0])
