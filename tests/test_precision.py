"""``precision: auto`` and the evaluation's autocast use bf16 only where the device runs it natively:
on a CPU without AVX-512 BF16 or AMX, bf16 is emulated (~10x slower than fp32), so csl computes in fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_method, tiny_params
from csl import precision
from csl.errors import ConfigError


@pytest.fixture
def cpu_bf16(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set what the CPU reports: ``cpu_bf16(avx512_bf16, amx)``."""
    monkeypatch.delenv(precision.ENV, raising=False)

    def set_caps(avx512_bf16: bool, amx: bool = False) -> None:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)

    return set_caps


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (True, False, "bf16-mixed"), (False, True, "bf16-mixed"), (False, False, "32-true")])
def test_auto_is_bf16_only_on_a_cpu_with_native_bf16(cpu_bf16, avx512_bf16: bool, amx: bool,  # type: ignore[no-untyped-def]
                                                      expected: str) -> None:
    cpu_bf16(avx512_bf16, amx)
    assert precision.resolve_precision("auto", "cpu") == expected
    assert precision.bf16_pays("cpu") == (expected == "bf16-mixed")
    for explicit in ("32-true", "bf16-mixed", "16-mixed"):  # what the user sets is kept
        assert precision.resolve_precision(explicit, "cpu") == explicit


def test_the_environment_overrides_the_detection(cpu_bf16, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    cpu_bf16(False)
    monkeypatch.setenv(precision.ENV, "1")
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    cpu_bf16(True)
    monkeypatch.setenv(precision.ENV, "0")
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setenv(precision.ENV, "yes")
    with pytest.raises(ConfigError, match="CSL_CPU_BF16='yes'.*1.*0"):
        precision.resolve_precision("auto", "cpu")


@pytest.mark.parametrize("native", [True, False])
def test_autocast_computes_in_bf16_only_where_it_pays(cpu_bf16, native: bool) -> None:  # type: ignore[no-untyped-def]
    cpu_bf16(native)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with precision.autocast("cpu"):
        out = a @ b
    assert out.dtype == (torch.bfloat16 if native else torch.float32)


def test_features_without_native_bf16_are_the_fp32_forward(cpu_bf16) -> None:  # type: ignore[no-untyped-def]
    """The evaluation's features on such a CPU are exactly the encoder's fp32 output."""
    from csl.augment.view import normalize
    from csl.encoders.small_cnn import SmallCNN
    from csl.evaluate.features import extract_features

    cpu_bf16(False)
    torch.manual_seed(0)
    net = SmallCNN(3, [8, 16]).eval()
    images = np.random.default_rng(0).integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.2, 0.2]
    feats = extract_features(net, images, mean, std, batch_size=7, progress=False)
    with torch.no_grad():
        ref = net(normalize(torch.as_tensor(images), torch.tensor(mean), torch.tensor(std)))
    assert feats.dtype == torch.float32 and torch.allclose(feats, ref, rtol=0, atol=1e-6)
    cpu_bf16(True)
    bf = extract_features(net, images, mean, std, batch_size=7, progress=False)
    assert not torch.equal(bf, ref)  # bf16 where it pays: not the fp32 numbers


def test_checkpoint_key_holds_the_resolved_precision(cpu_bf16, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint of a bf16 run never resumes as an fp32 run of the same params (and vice versa)."""
    import yaml

    from csl.params import load_params
    from csl.stages.layout import Layout

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(tmp_path, {"v": tiny_method()})))
    params = load_params(tmp_path / "params.yaml")
    layout, v = Layout(tmp_path, params), params.variant("v")
    cpu_bf16(True)
    on_bf16 = layout.checkpoint_dir(v, "abc", "code")
    cpu_bf16(False)
    on_fp32 = layout.checkpoint_dir(v, "abc", "code")
    assert on_bf16 != on_fp32


def test_training_records_the_precision_it_ran_in(cpu_bf16, prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``precision: auto`` on a CPU without native bf16 trains in fp32 and says so in the summary;
    bf16 asked for there trains in bf16 with a warning that names the cost and the fix."""
    from csl.methods.config import parse_method
    from csl.train.fit import fit

    cpu_bf16(False)
    res = fit(parse_method(tiny_method(limit_train_batches=2), "m"), prepared, tmp_path / "a")
    assert res.summary["precision"] == "32-true"
    with pytest.warns(UserWarning, match="bf16-mixed on a CPU without native bf16.*precision: auto"):
        res = fit(parse_method(tiny_method(limit_train_batches=2, precision="bf16-mixed"), "m"), prepared,
                  tmp_path / "b")
    assert res.summary["precision"] == "bf16-mixed"
