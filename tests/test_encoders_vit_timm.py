"""ViT and timm encoders: shapes for any input size, position embeddings interpolated to the input's
patch grid (equal to a fixed-size ViT given the hand-resampled embeddings), CLS vs mean pooling,
MoCo v3's frozen random patch projection, DINO's per-tensor gradient clipping, timm's bad input
(unknown architecture with close matches, pretrained weights offline), and a training step of the
ViT variants in params.yaml."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml

from csl.encoders import ENCODERS
from csl.errors import ConfigError, CslError
from csl.registry import build, parse_spec
from conftest import REPO


def make(raw: dict, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return build(ENCODERS, parse_spec(ENCODERS, "encoder", raw, "encoder"), in_channels=in_channels).eval()


VIT = {"name": "vit", "image_size": 16, "patch_size": 4, "dim": 32, "depth": 2, "heads": 2}


def test_vit_takes_any_size_with_position_embeddings_resampled_to_its_grid() -> None:
    from timm.layers import resample_abs_pos_embed
    from timm.models.vision_transformer import VisionTransformer

    enc = make(VIT)
    for size in (16, 8, 12, 10):  # 10: padded to 12 (dynamic_img_pad)
        assert enc(torch.randn(3, 1, size, size)).shape == (3, 32)
    # an 8x8 input (2x2 patches) gives what a ViT built for 8x8 gives with the 4x4 grid resampled to 2x2
    fixed = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=0, embed_dim=32, depth=2,
                              num_heads=2).eval()
    state = dict(enc.net.state_dict())
    state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], [2, 2], [4, 4], num_prefix_tokens=1,
                                                interpolation="bicubic", antialias=True)
    fixed.load_state_dict(state)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(enc(x), fixed(x), atol=1e-5)
        # and at its own size the learned embeddings are used as they are
        own = VisionTransformer(img_size=16, patch_size=4, in_chans=1, num_classes=0, embed_dim=32, depth=2,
                                num_heads=2).eval()
        own.load_state_dict(enc.net.state_dict())
        y = torch.randn(4, 1, 16, 16)
        assert torch.allclose(enc(y), own(y), atol=1e-6)
        # the resampled grid differs from the learned one: interpolation really happened
        assert not torch.allclose(state["pos_embed"][:, 1:], enc.net.pos_embed[:, 1:5])


def test_vit_pooling_is_the_class_token_or_the_mean_of_patch_tokens() -> None:
    x = torch.randn(2, 1, 16, 16)
    tok = make({**VIT, "pool": "token"})
    mean = make({**VIT, "pool": "mean"})
    with torch.no_grad():
        t = tok.net.forward_features(x)  # (N, 1 + 16, D), normalized
        assert torch.allclose(tok(x), t[:, 0], atol=1e-6)
        m = mean.net.forward_features(x)  # (N, 1 + 16, D); with mean pooling the LayerNorm follows the pool
        assert torch.allclose(mean(x), mean.net.fc_norm(m[:, 1:].mean(dim=1)), atol=1e-6)


def test_frozen_patch_projection_is_moco_v3s_random_init_and_never_trained() -> None:
    enc = make({**VIT, "freeze_patch_embed": True})
    proj = enc.net.patch_embed.proj
    bound = math.sqrt(6.0 / (1 * 4 * 4 + 32))
    assert not proj.weight.requires_grad and not proj.bias.requires_grad
    assert proj.weight.abs().max() <= bound and proj.weight.abs().max() > 0.9 * bound  # U(-a, a) fills the range
    assert torch.count_nonzero(proj.bias) == 0
    before = proj.weight.detach().clone()
    enc.train()
    opt = torch.optim.AdamW([p for p in enc.parameters() if p.requires_grad], lr=0.1)
    enc(torch.randn(4, 1, 16, 16)).square().mean().backward()
    opt.step()
    assert proj.weight.grad is None and torch.equal(proj.weight, before)
    assert enc.net.pos_embed.grad is not None  # the rest trains


def test_clip_per_tensor_is_dinos_clip_gradients() -> None:
    from csl.train.module import clip_per_tensor

    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    a.grad = torch.tensor([3.0, 4.0])  # norm 5 -> scaled to 3: (1.8, 2.4)
    b.grad = torch.tensor([0.6, 0.8])  # norm 1: unchanged
    clip_per_tensor([a, b], 3.0)
    assert torch.allclose(a.grad, torch.tensor([3.0, 4.0]) * 3.0 / (5.0 + 1e-6))
    assert torch.allclose(b.grad, torch.tensor([0.6, 0.8]))
    # per tensor, not global: the global norm sqrt(26) would have scaled b as well
    from csl.train.config import TrainConfig
    from csl.config.strict import parse

    with pytest.raises(ConfigError, match="gradient_clip"):
        parse(TrainConfig, {"gradient_clip": 0}, "train")


def test_timm_backbone_without_classifier_and_bad_names() -> None:
    enc = make({"name": "timm", "model": "resnet18"}, in_channels=3)
    assert enc.out_dim == 512 and enc(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    tv = make({"name": "resnet", "depth": 18, "cifar_stem": False}, in_channels=3)
    # the same architecture (same arithmetic) as csl's torchvision ResNet-18: the same parameter tensors' shapes
    assert sorted(p.shape for p in enc.parameters()) == sorted(p.shape for p in tv.parameters())
    conv = make({"name": "timm", "model": "convnext_atto"}, in_channels=1)
    assert conv(torch.randn(2, 1, 32, 32)).shape == (2, conv.out_dim)
    with pytest.raises(ConfigError, match=r"timm has no architecture 'resnet181'; close matches: resnet18"):
        make({"name": "timm", "model": "resnet181"})
    with pytest.raises(ConfigError, match="does not take the options"):
        make({"name": "timm", "model": "resnet18", "options": {"no_such_option": 1}})


def test_timm_pretrained_weights_offline_fail_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    # as on a machine without network access, without waiting for its timeouts (read at import time)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CslError, match="pretrained weights of timm model 'resnet18' cannot be loaded.*pretrained: false"):
        make({"name": "timm", "model": "resnet18", "pretrained": True})


@pytest.mark.parametrize("variant", ["dino-vit-tiny", "moco-v3-vit-tiny"])
def test_vit_variants_train_a_step_with_their_recipe(variant: str) -> None:
    from csl.methods.base import Batch
    from csl.params import parse_params
    from csl.train.build import build_method
    from csl.train.optim import build_optimizer

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    v = parse_params(raw).variant(variant)
    cfg = v.config
    assert cfg.optimizer.name == "adamw"
    if variant == "dino-vit-tiny":
        assert cfg.train.gradient_clip == 3.0 and cfg.schedule.weight_decay_final == 0.4
    else:
        assert cfg.optimizer.lr == 1.5e-4 and cfg.parts["encoder"].config.freeze_patch_embed
    torch.manual_seed(0)
    method = build_method(cfg, {"shape": [1, 28, 28], "mean": [0.3], "std": [0.35]})
    opt = build_optimizer(method, cfg.optimizer, 1e-4)
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    method.before_step(0, 10, 5)
    loss = method.training_loss(Batch(images), torch.Generator().manual_seed(0))["loss"]
    loss.backward()
    method.after_backward()
    assert torch.isfinite(loss)
    grads = [n for n, p in method.named_parameters() if p.grad is not None]
    assert any(n.startswith("encoder.net.blocks") for n in grads)
    assert not any("patch_embed" in n for n in grads) or variant == "dino-vit-tiny"
    opt.step()
    method.after_step(0, 10)
    x = torch.randn(2, 1, 28, 28)
    assert F.normalize(method.encoder(x), dim=1).shape == (2, 192)
