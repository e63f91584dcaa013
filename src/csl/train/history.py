"""Per-epoch metrics (loss, lr, images/s, time) collected during pretraining."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import lightning as L

MetricSink = Callable[[dict[str, float], int], None]


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


class EpochHistory(L.Callback):
    """Records one row per epoch and passes it to ``sink(metrics, epoch)`` on rank 0."""

    def __init__(self, global_batch: int, sink: MetricSink | None = None,
                 extras: Callable[[], dict[str, float]] | None = None) -> None:
        self.global_batch = global_batch
        self.sink = sink
        self.extras = extras  # more of this epoch's values (the health check's), joined into the row
        self.rows: list[dict[str, float]] = []
        self._t0 = 0.0
        self._b0 = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        self._b0 = trainer.global_step

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = time.perf_counter() - self._t0
        steps = trainer.global_step - self._b0
        row = {
            "epoch": float(trainer.current_epoch),
            "loss": float(trainer.callback_metrics["loss_epoch"]),
            "lr": float(trainer.optimizers[0].param_groups[0]["lr"]),
            "epoch_seconds": seconds,
            "images_per_s": steps * self.global_batch / seconds if seconds > 0 else 0.0,
        }
        extra = self.extras() if self.extras is not None else {}
        row.update(extra)
        self.rows.append(row)
        done = trainer.current_epoch + 1
        left = (trainer.max_epochs or done) - done
        shown = "".join(f", {k.split('/')[-1]} {v:.3g}" for k, v in extra.items()
                        if k.split("/")[-1] in ("rankme", "std_ratio"))
        pl_module.print(
            f"epoch {done}/{trainer.max_epochs}: loss {row['loss']:.4f}{shown}, {row['images_per_s']:.0f} images/s, "
            f"{seconds:.0f} s/epoch, about {_duration(left * seconds)} left",
        )  # (through the progress bar when there is one: tqdm.write takes no flush argument)
        sys.stdout.flush()  # one line per epoch, visible at once in piped and pod logs
        if self.sink is not None and trainer.is_global_zero:
            self.sink({k: v for k, v in row.items() if k != "epoch"}, trainer.current_epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
