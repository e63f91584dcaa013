"""PCL (arXiv 2005.04966; salesforce/PCL): k-means finds the clusters, the concentration and
ProtoNCE equal the official code's computations (transcribed here with numpy and loops), negative
prototypes are never a positive of the batch, and the method switches ProtoNCE on after its warm-up
with prototypes from the momentum encoder's features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from csl.cluster import kmeans
from csl.errors import ConfigError
from csl.losses.pcl import concentration, proto_nce, sample_negative_prototypes
from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS


def blobs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    truth = torch.arange(200) % 4
    return centres[truth] + 0.5 * torch.randn(200, 2, generator=g), truth


def test_kmeans_recovers_separated_clusters() -> None:
    x, truth = blobs()
    km = kmeans(x, 4, iterations=20, redo=5, generator=torch.Generator().manual_seed(1))
    # the same partition as the truth (up to the clusters' names)
    pairs = {(int(a), int(t)) for a, t in zip(km.assign, truth)}
    assert len(pairs) == 4 and len({a for a, _ in pairs}) == 4
    torch.testing.assert_close(km.dist, ((x - km.centroids[km.assign]) ** 2).sum(1), rtol=1e-4, atol=1e-4)
    assert km.objective == pytest.approx(float(km.dist.sum()), rel=1e-5)
    again = kmeans(x, 4, iterations=20, redo=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.assign, km.assign)  # deterministic for a generator
    with pytest.raises(ValueError, match="1 <= k <= number of points"):
        kmeans(x[:3], 4)


def official_density(d_sq: np.ndarray, assign: np.ndarray, k: int, temperature: float) -> np.ndarray:
    """salesforce/PCL main_pcl.py run_kmeans, the concentration part, as written there."""
    dcluster: list[list[float]] = [[] for _ in range(k)]
    for im, i in enumerate(assign):
        dcluster[i].append(d_sq[im])
    density = np.zeros(k)
    for i, dist in enumerate(dcluster):
        if len(dist) > 1:
            density[i] = (np.asarray(dist) ** 0.5).mean() / np.log(len(dist) + 10)
    dmax = density.max()
    for i, dist in enumerate(dcluster):
        if len(dist) <= 1:
            density[i] = dmax
    density = density.clip(np.percentile(density, 10), np.percentile(density, 90))
    return temperature * density / density.mean()


def test_concentration_equals_the_official_code() -> None:
    g = torch.Generator().manual_seed(2)
    assign = torch.randint(0, 12, (100,), generator=g)
    assign[assign == 5] = 6  # an empty cluster
    assign[0] = 5  # ... and a singleton
    d_sq = torch.rand(100, generator=g) * 3
    got = concentration(d_sq, assign, 12, 0.2)
    want = official_density(d_sq.double().numpy(), assign.numpy(), 12, 0.2)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert got.mean().item() == pytest.approx(0.2, rel=1e-5)


def test_proto_nce_equals_its_formula() -> None:
    g = torch.Generator().manual_seed(3)
    q = torch.randn(3, 4, generator=g)
    centroids = F.normalize(torch.randn(7, 4, generator=g), dim=1)
    density = torch.rand(7, generator=g) + 0.1
    pos, neg = torch.tensor([2, 5, 2]), torch.tensor([0, 6])
    expected = 0.0
    cols = [2, 5, 2, 0, 6]
    for i in range(3):
        qi = F.normalize(q[i], dim=0)
        s = [float(qi @ centroids[c]) / float(density[c]) for c in cols]
        expected += math.log(sum(math.exp(v) for v in s)) - s[i]  # target: column i
    assert proto_nce(q, pos, neg, centroids, density).item() == pytest.approx(expected / 3, rel=1e-5)


def test_negative_prototypes_are_never_positives() -> None:
    g = torch.Generator().manual_seed(4)
    pos = torch.tensor([1, 3, 3, 7])
    counts = torch.zeros(10)
    for _ in range(300):
        neg = sample_negative_prototypes(pos, 10, 4, g)
        assert len(neg) == 4 and len(set(neg.tolist())) == 4 and not set(neg.tolist()) & {1, 3, 7}
        counts[neg] += 1
    free = [0, 2, 4, 5, 6, 8, 9]
    assert ((counts[free] / 300 - 4 / 7).abs() < 0.12).all()  # uniform over the 7 free prototypes
    assert len(sample_negative_prototypes(torch.tensor([1, 3, 3, 5]), 6, 16384, g)) == 2  # at most k - B


def pcl(**method: object):  # type: ignore[no-untyped-def]
    raw = {**tiny_method(), **VARIANTS["pcl"]}
    raw["method"] = {**raw["method"], **method}
    torch.manual_seed(0)
    return build_method(parse_method(raw, "methods.pcl"), META)


def test_protonce_joins_after_the_warm_up_with_the_momentum_encoders_prototypes() -> None:
    m = pcl(warmup_epochs=2)
    m.check_dataset(256, labelled=False)  # PCL needs no labels
    assert m.needs.indices and not m.needs.labels
    assert [m.wants_features(e) for e in range(4)] == [False, False, True, True]
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
    batch = Batch(images, None, torch.arange(16) * 3)
    warm = m.training_loss(batch, torch.Generator().manual_seed(6))
    assert "proto_nce" not in warm  # InfoNCE alone
    m.eval()
    with torch.no_grad():  # the hook's network: the momentum branch, normalized
        x = torch.randn(4, 1, 16, 16)
        torch.testing.assert_close(m.feature_net(x), F.normalize(m.target_projector(m.target_encoder(x)), dim=1))
    m.train()
    feats = F.normalize(torch.randn(256, 16, generator=torch.Generator().manual_seed(7)), dim=1)
    m.on_epoch_features(2, feats)
    for i, k in enumerate((4, 8)):
        assign = getattr(m, f"im2cluster_{i}")
        assert assign.shape == (256,) and int(assign.max()) < k
        torch.testing.assert_close(getattr(m, f"centroids_{i}").norm(dim=1), torch.ones(k))
        assert getattr(m, f"density_{i}").mean().item() == pytest.approx(0.2, rel=1e-5)
    out = m.training_loss(batch, torch.Generator().manual_seed(6))
    assert out["proto_nce"] > 0 and out["loss"] > out["proto_nce"]


def test_more_clusters_than_images_fail_before_training() -> None:
    with pytest.raises(ConfigError, match=r"num_clusters \[4, 300\] asks for more clusters than the 256 training"):
        pcl(num_clusters=[4, 300]).check_dataset(256, labelled=False)
