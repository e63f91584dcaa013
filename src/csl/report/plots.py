"""PNG figures for the report (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def loss_curves(histories: dict[str, list[dict[str, float]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for name, rows in histories.items():
        ax.plot([r["epoch"] + 1 for r in rows], [r["loss"] for r in rows], marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("pretraining loss (epoch mean)")
    ax.set_title("Pretraining loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def accuracy_chart(rows: list[dict[str, Any]], path: Path) -> None:
    names = [r["variant"] for r in rows]
    series = [("linear_top1", "linear (pretrained)"), ("random_linear_top1", "linear (random init)"),
              ("knn_top1", "kNN (pretrained)"), ("random_knn_top1", "kNN (random init)")]
    x = np.arange(len(names))
    width = 0.18
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    lowest = 100.0
    for i, (key, label) in enumerate(series):
        vals = [100 * r.get(key, float("nan")) for r in rows]
        lowest = min([lowest, *[v for v in vals if v == v]])
        bars = ax.bar(x + (i - 1.5) * width, vals, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("test top-1 (%)")
    ax.set_ylim(max(0.0, 10 * np.floor(lowest / 10) - 10), 100)  # zoom in so the margin is visible
    ax.set_title("Accuracy: pretrained vs random-init encoder", pad=28)
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def embedding_map_plot(xy: np.ndarray, labels: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.0, 5.0), dpi=110)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for k, name in enumerate(classes):
        m = labels == k
        ax.scatter(xy[m, 0], xy[m, 1], s=4, color=cmap(k % cmap.N), label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def metric_chart(rows: list[dict[str, Any]], series: list[tuple[str, str]], title: str, ylabel: str, path: Path,
                 scale: float = 100.0) -> None:
    """Grouped bars: one group per variant, one bar per ``(key, label)`` of ``series`` (a protocol's
    metrics, each beside its random-init baseline); missing values are left out."""
    names = [r["variant"] for r in rows]
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for i, (key, label) in enumerate(series):
        vals = [scale * r[key] if isinstance(r.get(key), (int, float)) else float("nan") for r in rows]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=label)
        ax.bar_label(bars, fmt="%.1f" if scale == 100 else "%.2f", fontsize=7)
    ax.set_xticks(x, names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    # beside the axes, one entry a line, and the figure grown to hold it: no legend entry is ever cut
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
