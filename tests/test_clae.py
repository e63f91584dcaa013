"""CLAE (arXiv 2010.12050; chihhuiho/CLAE gen_adv): the adversarial view is one FGSM step of eps
pixels from the anchor view along the sign of the contrastive loss's input gradient, clipped to
valid pixels, made and embedded through the adversarial batch norms (the plain ones untouched);
the loss is L(z_i, z_j) + alpha L(z_i, z_adv)."""

from __future__ import annotations

import pytest
import torch

from csl.losses.nt_xent import nt_xent
from csl.methods.base import Batch
from csl.methods.config import parse_method
from csl.train.build import build_method
from conftest import tiny_method
from test_methods import META, VARIANTS

IMAGES = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def clae(**method: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    raw = {**tiny_method(), **VARIANTS["clae"]}
    raw["method"] = {**raw["method"], **method}
    return build_method(parse_method(raw, "methods.clae"), META)


def test_the_adversarial_view_is_one_fgsm_step_in_pixels() -> None:
    m = clae(eps=0.05)
    x_i = m.augment(IMAGES, torch.Generator().manual_seed(1))[0]
    x_adv = m.adversarial_view(x_i)
    # the reference: the input gradient of the loss against the anchor, both through the adversarial BNs
    with m.adversarial_bn():
        with torch.no_grad():
            z_i = m.head(m.encoder(x_i))
        x = x_i.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(nt_xent(z_i, m.head(m.encoder(x)), 0.5), x)
    std, mean = 0.3, 0.3
    pixels, pixels_adv = x_i * std + mean, x_adv * std + mean
    expected = (pixels + 0.05 * grad.sign()).clamp(0, 1)
    torch.testing.assert_close(pixels_adv, expected, rtol=0, atol=1e-5)
    assert ((pixels_adv - pixels).abs() <= 0.05 + 1e-5).all() and not x_adv.requires_grad
    # it is adversarial: the loss against the anchor is higher than the anchor's own view's
    with m.adversarial_bn(), torch.no_grad():
        assert nt_xent(z_i, m.head(m.encoder(x_adv)), 0.5) > nt_xent(z_i, m.head(m.encoder(x_i)), 0.5)


def test_adversarial_passes_use_their_own_batch_norms() -> None:
    m = clae()
    plain = {k: v.clone() for k, v in m.encoder.state_dict().items() if "running" in k}
    adv = {k: v.clone() for k, v in m.adv_bn.state_dict().items() if "running" in k}
    x_i = m.augment(IMAGES, torch.Generator().manual_seed(1))[0]
    m.adversarial_view(x_i)
    assert all(torch.equal(v, m.encoder.state_dict()[k]) for k, v in plain.items())  # untouched
    assert any(not torch.equal(v, m.adv_bn.state_dict()[k]) for k, v in adv.items())  # updated
    assert m.adv_bn["encoder/features/1"].momentum == 0.01
    assert not any("adv" in k for k in m.encoder.state_dict())  # the saved encoder is the plain one
    assert isinstance(m.encoder.features[1], torch.nn.BatchNorm2d) and m.encoder.features[1] is not m.adv_bn[
        "encoder/features/1"]


def test_the_loss_is_plain_plus_alpha_adversarial(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    for alpha in (0.0, 1.0, 2.5):
        m = clae(alpha=alpha)
        out = m.training_loss(Batch(IMAGES), torch.Generator().manual_seed(2))
        calls.append(float(out["loss"]))
        adversarial = float(out["adversarial"])
    # the same weights and draws each time: loss(alpha) = plain + alpha * adversarial
    plain = calls[0]
    assert calls[1] == pytest.approx(plain + adversarial, rel=1e-5)
    assert calls[2] == pytest.approx(plain + 2.5 * adversarial, rel=1e-5)
    assert adversarial > 0
