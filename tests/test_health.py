"""The online health check and the collapse guard: a run forced to collapse (SimSiam without its
stop-gradient, the paper's Fig. 2 ablation) is stopped within ``patience`` checks, the same run with
the stop-gradient is not, and neither is the default SimCLR recipe; the CLI exits 2 and the MLflow
run is FAILED naming the measure."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import BIN, csl_env, tiny_method
from csl.errors import CollapseError
from csl.methods.config import parse_method
from csl.train.config import HealthConfig
from csl.train.fit import fit
from csl.train.health import HealthMonitor


def simsiam(stop_gradient: bool, epochs: int = 8) -> dict[str, Any]:
    return {"method": {"name": "simsiam", "predictor": {"hidden_dim": 16}},
            "augment": {"name": "simclr", "crop_scale": [0.3, 1.0], "strength": 0.5},
            "encoder": {"name": "small_cnn", "widths": [8, 16]},
            "extract": {"name": "mlp_projection", "hidden_dim": 32, "out_dim": 32, "layers": 2},
            "similarity": "cosine", "loss": {"name": "negative_cosine", "stop_gradient": stop_gradient},
            # lr 2.0 on 512 digits: with the stop-gradient it trains (RankMe >= 1.9 at every epoch, 5.9 at
            # the end; std ratio >= 0.1), without it RankMe is 1.17, 1.11, 1.15 in the first three epochs
            "optimizer": {"name": "sgd", "lr": 2.0, "weight_decay": 1e-5}, "schedule": {"warmup_epochs": 0},
            "train": {"epochs": epochs, "batch_size": 64, "progress_bar": False, "seed": 0}}


@pytest.fixture
def digits512(idx_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    from csl.data import DataConfig, load, read, write

    write(read(DataConfig(source=str(idx_dir), max_train=512, max_test=128), tmp_path, seed=0), tmp_path / "p512")
    return load(tmp_path / "p512")


def test_simsiam_without_stop_gradient_is_stopped_within_patience(digits512, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = HealthConfig(samples=64, patience=3)
    with pytest.raises(CollapseError, match=r"rankme [\d.]+ < 1.5.* at step \d+ \(epoch 2\), 3 checks in a row"):
        fit(parse_method(simsiam(False), "m"), digits512, tmp_path / "a", health=cfg)  # the first 3 checks
    kept = fit(parse_method(simsiam(True), "m"), digits512, tmp_path / "b", health=cfg)
    assert len(kept.history) == 8 and min(r["health/rankme"] for r in kept.history) > cfg.rankme_min
    assert kept.history[-1]["health/rankme"] > 3 * cfg.rankme_min
    assert kept.history[-1]["health/std_ratio"] > 10 * cfg.std_ratio_min


def test_default_simclr_recipe_is_never_stopped_and_logs_its_health(prepared, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    logged: list[tuple[dict[str, float], int]] = []
    result = fit(parse_method(tiny_method(epochs=4), "m"), prepared, tmp_path / "c",
                 sink=lambda m, step: logged.append((m, step)), health=HealthConfig(samples=64, every_steps=2))
    assert len(result.history) == 4
    assert all(r["health/rankme"] > 1.5 and r["health/std_ratio"] > 0.02 for r in result.history)
    epochs = [m for m, _ in logged if "health/rankme" in m]
    steps = [(m, s) for m, s in logged if "health_step/rankme" in m]
    assert len(epochs) == 4 and [s for _, s in steps] == [2, 4, 6, 8, 10, 12, 14, 16][: len(steps)] and steps


class _Constant(torch.nn.Module):
    """A 'method' whose every embedding is the same vector (or, once ``healthy``, random ones)."""

    def __init__(self) -> None:
        super().__init__()
        self.healthy = False

    def health_embedding(self, x: torch.Tensor) -> torch.Tensor:
        if self.healthy:
            return torch.randn(x.shape[0], 16, generator=torch.Generator().manual_seed(0))
        return torch.ones(x.shape[0], 16)


class _Module:
    def __init__(self) -> None:
        self.method = _Constant()
        self.device = torch.device("cpu")


class _Trainer:
    global_step = 0
    current_epoch = 0
    is_global_zero = True


def test_constant_encoder_stops_after_exactly_patience_checks_and_a_healthy_check_resets() -> None:
    images = torch.randint(0, 255, (32, 1, 8, 8), dtype=torch.uint8)
    mon = HealthMonitor(HealthConfig(samples=32, patience=2), images, [0.5], [0.25])
    module, trainer = _Module(), _Trainer()
    mon.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]
    module.method.healthy = True
    mon.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]  (resets the count)
    assert mon.low == 0 and mon.last["rankme"] > 10
    module.method.healthy = False
    mon.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]
    with pytest.raises(CollapseError, match="std_ratio 0 < 0.02"):
        mon.on_train_epoch_end(trainer, module)  # type: ignore[arg-type]
    assert [round(c["rankme"], 3) for c in mon.checks][::2] == [1.0, 1.0]


def test_cli_exits_2_and_the_mlflow_run_is_failed_naming_the_measure(project: Path, tmp_path: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["methods"] = {"collapse": simsiam(False, epochs=8)}
    params["variants"] = ["collapse"]
    params["eval"]["champion_metric"] = "linear_top1"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = csl_env(tmp_path)
    subprocess.run([str(BIN / "csl"), "prepare", "data.max_train=512", "data.max_test=128"], cwd=project, env=env,
                   check=True, capture_output=True)
    out = subprocess.run([str(BIN / "csl"), "pretrain", "--variant", "collapse", "data.max_train=512",
                          "data.max_test=128"], cwd=project, env=env, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "the embeddings collapsed: rankme" in out.stderr
    assert not (project / "runs" / "collapse" / "pretrain" / "encoder.pt").exists()
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["csl-test"], filter_string="tags.`csl.stage` = 'pretrain'",
                              output_format="list")
    assert len(runs) == 1 and runs[0].info.status == "FAILED"
    assert "collapsed: rankme" in runs[0].data.tags["csl.error"]
