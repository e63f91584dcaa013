"""Stateful parts (MoCo's queue, SwAV's queue and prototypes, DINO's centre and teacher, EMA
targets) are checkpointed and restored: a resumed run ends in the same state as an
uninterrupted one. Step-indexed schedules and freezes follow the papers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from csl.methods.base import Batch
from csl.errors import ConfigError
from csl.methods.config import parse_method
from csl.methods.views import embed_views
from csl.train.build import build_method
from csl.train.fit import fit
from csl.train.schedule import cosine_ramp, linear_warmup
from conftest import tiny_method
from test_methods import META, VARIANTS
from test_train import CrashAtEpoch

STATE_KEYS = {
    "moco_v2": ("method.queue", "method.target_encoder.features.0.weight"),
    "kcl": ("method.queue", "method.label_queue"),
    "pcl": ("method.queue", "method.centroids_0", "method.density_1", "method.im2cluster_1"),  # k-means at 1, 2
    "mochi": ("method.queue", "method.target_encoder.features.0.weight"),  # mixes from step 2 of 12
    "swav": ("method.queue", "method.queue_count", "method.prototypes.weight"),
    "dino": ("method.center", "method.target_projector.last_v", "method.target_encoder.features.0.weight"),
}


def cfg_for(name: str, epochs: int = 3, **method: object):  # type: ignore[no-untyped-def]
    raw = {**tiny_method(epochs=epochs), **VARIANTS[name]}
    if method:
        raw["method"] = {**raw["method"], **method}
    return parse_method(raw, f"methods.{name}")


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
def test_resumed_run_continues_with_the_same_state(name: str, prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for(name)
    fit(cfg, prepared, tmp_path / "a")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(cfg, prepared, tmp_path / "b", extra_callbacks=[CrashAtEpoch(2)])
    midway = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    resumed = fit(cfg, prepared, tmp_path / "b")
    assert resumed.summary["resumed_from"] is not None
    straight = torch.load(tmp_path / "a" / "last.ckpt", weights_only=True)["state_dict"]
    final = torch.load(tmp_path / "b" / "last.ckpt", weights_only=True)["state_dict"]
    assert set(straight) == set(final)
    for key in STATE_KEYS[name]:
        assert key in straight, f"{key} is not checkpointed"
        assert not torch.equal(midway[key], final[key]), f"{key} did not change in the resumed epoch"
    for k, v in straight.items():
        torch.testing.assert_close(final[k], v, msg=f"{k} differs after resume")


def test_queue_larger_than_the_dataset_fails_before_training(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = cfg_for("moco_v2", queue_size=512)  # 256 training images
    with pytest.raises(ConfigError, match="queue_size 512 exceeds the 256 training images"):
        fit(cfg, prepared, tmp_path / "q")
    assert not (tmp_path / "q" / "last.ckpt").exists()


def test_moco_queue_is_a_ring_buffer_of_normalized_keys() -> None:
    method = build_method(cfg_for("moco_v2"), META)
    keys = torch.randn(96, 16, generator=torch.Generator().manual_seed(0))
    method._enqueue(keys[:64])
    assert int(method.queue_ptr) == 64
    method._enqueue(keys[64:])  # 32 more; the queue holds 128
    torch.testing.assert_close(method.queue[:96], torch.nn.functional.normalize(keys, dim=1))
    method._enqueue(keys[:64])  # wraps: rows 96..127 then 0..31
    assert int(method.queue_ptr) == 32
    torch.testing.assert_close(method.queue[96:], torch.nn.functional.normalize(keys[:32], dim=1))
    torch.testing.assert_close(method.queue[:32], torch.nn.functional.normalize(keys[32:64], dim=1))


def test_moco_step_uses_the_old_queue_then_enqueues_its_keys() -> None:
    method = build_method(cfg_for("moco_v2"), META)
    before = method.queue.clone()
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    method.training_loss(Batch(images), torch.Generator().manual_seed(0))
    assert int(method.queue_ptr) == 16  # asymmetric v2: one key per image
    torch.testing.assert_close(method.queue[16:], before[16:])
    assert not torch.allclose(method.queue[:16], before[:16])
    torch.testing.assert_close(method.queue[:16].norm(dim=1), torch.ones(16))


def test_swav_prototypes_frozen_in_the_first_epoch_then_trained() -> None:
    method = build_method(cfg_for("swav", queue_length=0), META)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    for step, frozen in ((0, True), (4, False)):  # 4 steps per epoch, freeze_prototypes_epochs = 1
        method.before_step(step, 40, 4)
        method.zero_grad()
        method.training_loss(Batch(images), torch.Generator().manual_seed(step))["loss"].backward()
        method.after_backward()
        assert (method.prototypes.weight.grad is None) == frozen
        assert method.encoder.features[0].weight.grad is not None
    # prototypes are re-normalized before every step
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(10))


def test_swav_queue_joins_after_it_is_full() -> None:
    method = build_method(cfg_for("swav", queue_length=64, queue_start_epoch=1.0), META)
    images = torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8)
    method.before_step(3, 40, 4)
    assert not method.queue_on
    method.before_step(4, 40, 4)
    assert method.queue_on
    g = torch.Generator().manual_seed(0)
    method.training_loss(Batch(images), g)
    assert int(method.queue_count) == 32
    method.training_loss(Batch(images), g)
    assert int(method.queue_count) == 64 and method.queue.abs().sum(dim=2).gt(0).all()


def test_dino_centre_update_teacher_temperature_and_frozen_last_layer() -> None:
    method = build_method(cfg_for("dino", teacher_temperature_warmup_epochs=2.0), META)
    images = torch.randint(0, 256, (16, 1, 16, 16), dtype=torch.uint8)
    c0 = method.center.clone()
    method.before_step(0, 40, 4)
    assert method.teacher_temperature == pytest.approx(0.04) and method.freeze_last
    loss = method.training_loss(Batch(images), torch.Generator().manual_seed(7))["loss"]
    with torch.no_grad():  # the same views again: the teacher's outputs on the global crops
        views = method.augment(images, torch.Generator().manual_seed(7))
        teacher = embed_views(views[:2], method.target_encoder, method.target_projector, False)
    torch.testing.assert_close(method.center, 0.9 * c0 + 0.1 * torch.cat(teacher).mean(0))
    loss.backward()
    method.after_backward()
    assert method.projector.last_v.grad is None  # frozen in the first epoch
    assert method.projector.mlp[0].weight.grad is not None
    method.before_step(4, 40, 4)  # epoch 1 of a 2-epoch warm-up: half way
    assert method.teacher_temperature == pytest.approx(0.055) and not method.freeze_last
    method.before_step(8, 40, 4)
    assert method.teacher_temperature == pytest.approx(0.07)


def test_schedule_endpoints() -> None:
    assert linear_warmup(0, 10, 0.04, 0.07) == pytest.approx(0.04)
    assert linear_warmup(5, 10, 0.04, 0.07) == pytest.approx(0.055)
    assert linear_warmup(10, 10, 0.04, 0.07) == pytest.approx(0.07)
    assert linear_warmup(3, 0, 0.04, 0.07) == pytest.approx(0.07)
    assert cosine_ramp(0, 100, 0.04, 0.4) == pytest.approx(0.04)
    assert cosine_ramp(50, 100, 0.04, 0.4) == pytest.approx(0.22)
    assert cosine_ramp(100, 100, 0.04, 0.4) == pytest.approx(0.4)


class RecordWeightDecay(L.Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.values.append(trainer.optimizers[0].param_groups[0]["weight_decay"])


def test_weight_decay_follows_its_cosine_schedule_per_step(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = tiny_method(epochs=2)
    raw["optimizer"] = {"name": "adamw", "lr": 1e-3, "weight_decay": 0.04}
    raw["schedule"] = {"warmup_epochs": 0, "weight_decay_final": 0.4}
    rec = RecordWeightDecay()
    fit(parse_method(raw, "m"), prepared, tmp_path / "wd", extra_callbacks=[rec])
    total = 8  # 256 images / 64 per batch x 2 epochs
    assert rec.values == pytest.approx([cosine_ramp(s, total, 0.04, 0.4) for s in range(total)])


def test_multicrop_views_must_fit_the_encoder() -> None:
    raw = {**tiny_method(), "augment": {"name": "views", "groups": [{"count": 2}, {"count": 2, "size": 6}]},
           "encoder": {"name": "amdim", "widths": [4, 4, 4, 4]}}
    with pytest.raises(ConfigError, match="a view of 16 px cannot go through encoder 'amdim' \\(it takes 25 to 64 px\\)"):
        build_method(parse_method(raw, "m"), META)


def test_compositions_rejected_at_config_time() -> None:
    with pytest.raises(ConfigError, match=r"queue_size' \(100\) must be a multiple of the global batch \(64 = train.batch_size"):
        cfg_for("moco_v2", queue_size=100)
    with pytest.raises(ConfigError, match="method 'cpc' needs encoder 'patch_grid'"):
        parse_method({**tiny_method(), **VARIANTS["cpc"], "encoder": "small_cnn"}, "m")
    with pytest.raises(ConfigError, match="method 'moco_v2' cannot use loss 'nt_xent'"):
        parse_method({**tiny_method(), **VARIANTS["moco_v2"], "loss": "nt_xent"}, "m")
    with pytest.raises(ConfigError, match=r"unknown key 'm.method.predictor'"):
        parse_method({**tiny_method(), **VARIANTS["moco_v2"],
                      "method": {"name": "moco_v2", "queue_size": 128, "predictor": {}}}, "m")
    with pytest.raises(ConfigError, match="uses scale\\(s\\) \\[5\\]"):
        build_method(parse_method({**tiny_method(), **VARIANTS["dim"],
                                   "method": {"name": "dim", "comparisons": [[1, 5]]}}, "m"), META)
    with pytest.raises(ConfigError, match="prediction_steps \\(3\\) must be below the patch grid's 3 rows"):
        build_method(parse_method({**tiny_method(), **VARIANTS["cpc"],
                                   "method": {"name": "cpc", "prediction_steps": 3}}, "m"), META)


def test_too_few_views_fail_before_training() -> None:
    one_view = {"name": "views", "groups": [{"count": 1}]}
    for name in ("dino", "swav", "moco_v2", "dim"):
        raw = {**tiny_method(), **VARIANTS[name], "augment": one_view}
        with pytest.raises(ConfigError, match=f"method '{name.split('_')[0] if name == 'moco_v2' else name}' "
                                              "needs 2 views"):
            build_method(parse_method(raw, "m"), META)
