"""The report's plots: accuracy against training cost, and learning curves (matplotlib, Agg)."""
from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from ..utils import pyplot
from .runs import Run
from .tables import _groups, clean_numbers, cost_numbers, mean_std

__all__ = ["plot_accuracy_vs_cost", "plot_learning_curves"]


def plot_accuracy_vs_cost(runs: Sequence[Run], path: str | os.PathLike) -> Path | None:
    """Scatter of best accuracy (mean ± std over seeds) against epoch time relative to vanilla, per model.

    Returns the PNG path, or None when no method has both numbers.
    """
    plt = pyplot()
    cost = cost_numbers(runs)
    points: dict[str, list[tuple[str, float, float, float]]] = {}
    for model, method, rs in _groups(runs):
        m, s = mean_std([clean_numbers(r)["best_acc"] for r in rs])
        ratio = cost[(model, method)].get("epoch_ratio")
        if m is not None and ratio is not None:
            points.setdefault(model, []).append((method, ratio, m, s or 0.0))
    if not points:
        return None
    fig, axes = plt.subplots(1, len(points), figsize=(5.5 * len(points), 4.2), squeeze=False)
    for ax, (model, pts) in zip(axes[0], points.items()):
        for method, x, y, e in pts:
            ax.errorbar([x], [y], yerr=[e], fmt="o", capsize=3, label=method)
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("epoch time relative to vanilla")
        ax.set_ylabel("best test accuracy (%)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_learning_curves(runs: Sequence[Run], path: str | os.PathLike) -> Path | None:
    """Test accuracy per epoch (mean over seeds) for each method, one panel per model."""
    plt = pyplot()
    curves: dict[str, list[tuple[str, list[int], list[float]]]] = {}
    for model, method, rs in _groups(runs):
        by_epoch: dict[int, list[float]] = {}
        for r in rs:
            for i, row in enumerate(r.metrics):
                if row.get("test_acc") not in (None, ""):
                    by_epoch.setdefault(int(row.get("epoch", i + 1)), []).append(float(row["test_acc"]))
        if by_epoch:
            eps = sorted(by_epoch)
            curves.setdefault(model, []).append((method, eps, [statistics.fmean(by_epoch[e]) for e in eps]))
    if not curves:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
    for ax, (model, cs) in zip(axes[0], curves.items()):
        for method, eps, accs in cs:
            ax.plot(eps, accs, marker="." if len(eps) < 30 else None, label=method)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(model)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
