"""The report's plots: accuracy against training cost, and learning curves (matplotlib, Agg)."""
from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from ..utils import pyplot
from .paired import CLEAN_KEYS
from .runs import Run
from .tables import _groups, clean_numbers, cost_numbers, mean_std

__all__ = ["plot_accuracy_vs_cost", "plot_learning_curves", "plot_train_test_gap", "mean_curves"]


def _save(plt: Any, fig: Any, path: str | os.PathLike, dpi: int) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG at ``dpi`` and close it."""
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def cost_points(runs: Sequence[Run], clean_key: str = "final_acc"
                ) -> tuple[dict[str, list[tuple[str, float, float, float]]], bool]:
    """Per model, ``(method, epoch-time ratio to vanilla, mean, std of clean_key over seeds)``; and whether the
    ratio is of process CPU time (every method recorded it) rather than wall time."""
    if clean_key not in CLEAN_KEYS:
        raise ValueError(f"clean_key={clean_key!r}: expected one of {list(CLEAN_KEYS)}")
    cost = cost_numbers(runs)
    use_cpu = bool(cost) and all(d.get("epoch_cpu_ratio") is not None for d in cost.values())
    points: dict[str, list[tuple[str, float, float, float]]] = {}
    for model, method, rs in _groups(runs):
        m, s = mean_std([clean_numbers(r)[clean_key] for r in rs])
        ratio = cost[(model, method)].get("epoch_cpu_ratio" if use_cpu else "epoch_ratio")
        if m is not None and ratio is not None:
            points.setdefault(model, []).append((method, ratio, m, s or 0.0))
    return points, use_cpu


def label_offsets(anchors: Sequence[tuple[float, float]], widths: Sequence[float], height: float = 10.0,
                  step: float = 10.0, gap: float = 5.0) -> list[float]:
    """Vertical text offsets (points) for labels placed ``gap`` points right of their anchors, greedily in order.

    ``anchors`` are the points' positions and ``widths`` the labels' widths, both in points. A label starts 4
    points above its anchor; while its box (``width`` x ``height``) overlaps the box of an earlier label it tries
    one ``step`` below, one above, two below and so on, the nearest free place first, so that long labels of
    nearby points do not run into each other and each label stays close to its point.
    """
    placed: list[tuple[float, float, float, float]] = []
    out: list[float] = []
    for (x, y), w in zip(anchors, widths):
        k, dy = 0, 4.0
        while any(x + gap < x1 and x2 < x + gap + w and y + dy < y1 and y2 < y + dy + height
                  for x2, y2, x1, y1 in placed):
            k += 1
            dy = 4.0 + step * (-(k + 1) // 2 if k % 2 else k // 2)
        placed.append((x + gap, y + dy, x + gap + w, y + dy + height))
        out.append(dy)
    return out


def plot_accuracy_vs_cost(runs: Sequence[Run], path: str | os.PathLike, clean_key: str = "final_acc") -> Path | None:
    """Scatter of clean accuracy (``clean_key``, mean ± std over seeds) against epoch time relative to vanilla,
    per model.

    The time is process CPU time when every method's runs recorded it, else wall time (the axis says which).
    Returns the PNG path, or None when no method has both numbers.
    """
    plt = pyplot()
    points, use_cpu = cost_points(runs, clean_key)
    if not points:
        return None
    fig, axes = plt.subplots(1, len(points), figsize=(5.5 * len(points), 4.2), squeeze=False)
    colors: dict[tuple[str, str], Any] = {}
    for ax, (model, pts) in zip(axes[0], points.items()):
        for method, x, y, e in pts:
            colors[(model, method)] = ax.errorbar([x], [y], yerr=[e], fmt="o", capsize=3, label=method)[0].get_color()
        ax.set_xlabel(f"epoch {'CPU' if use_cpu else 'wall'} time relative to vanilla")
        ax.set_ylabel(f"clean test accuracy ({clean_key.replace('_acc', '').replace('_', ' ')}, %)")  # as the tables
        ax.set_title(model)
        ax.grid(alpha=0.3)
    fig.tight_layout()  # the axes' final size and limits, so that the labels can be placed in points
    to_pt = 72.0 / fig.dpi
    for ax, (model, pts) in zip(axes[0], points.items()):
        ax.autoscale_view()
        # anchors in points (display pixels at the figure's dpi, 72 points an inch); a label's width is
        # estimated from its length, 0.6 em a character at font size 8
        anchors = [tuple(v * to_pt for v in ax.transData.transform((x, y))) for _, x, y, _ in pts]
        widths = [0.6 * 8 * len(method) for method, *_ in pts]
        for (method, x, y, _), dy in zip(pts, label_offsets(anchors, widths)):
            ax.annotate(method, (x, y), textcoords="offset points", xytext=(5, dy), fontsize=8,
                        color=colors[(model, method)])  # a label moved off its point still names it by colour
    return _save(plt, fig, path, 120)


def plot_learning_curves(runs: Sequence[Run], path: str | os.PathLike) -> Path | None:
    """Test accuracy per epoch (mean over seeds) for each method, one panel per model."""
    plt = pyplot()
    curves: dict[str, list[tuple[str, list[int], list[float]]]] = {}
    for (model, method), (eps, accs) in mean_curves(runs, "test_acc").items():
        curves.setdefault(model, []).append((method, eps, accs))
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
    return _save(plt, fig, path, 120)


def mean_curves(runs: Sequence[Run], column: str) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """Per (model, method): the epochs and the mean over seeds of a metrics column at each epoch."""
    out: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for model, method, rs in _groups(runs):
        by_epoch: dict[int, list[float]] = {}
        for r in rs:
            for i, row in enumerate(r.metrics):
                if row.get(column) not in (None, ""):
                    by_epoch.setdefault(int(row.get("epoch", i + 1)), []).append(float(row[column]))
        if by_epoch:
            eps = sorted(by_epoch)
            out[(model, method)] = (eps, [statistics.fmean(by_epoch[e]) for e in eps])
    return out


def plot_train_test_gap(runs: Sequence[Run], path: str | os.PathLike) -> Path | None:
    """Learning curves with the train/test gap: per model, train (dashed) and test (solid) accuracy per
    epoch for each method (mean over seeds), and the gap train − test per epoch.

    Returns the PNG path, or None when no run has both curves.
    """
    plt = pyplot()
    train, test = mean_curves(runs, "train_acc"), mean_curves(runs, "test_acc")
    keys = [k for k in test if k in train]
    models = sorted({k[0] for k in keys})
    if not models:
        return None
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 4.4 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        for i, key in enumerate(k for k in keys if k[0] == model):
            colour = f"C{i % 10}"
            (te_ep, te), (tr_ep, tr) = test[key], train[key]
            row[0].plot(te_ep, te, color=colour, label=f"{key[1]} test")
            row[0].plot(tr_ep, tr, color=colour, linestyle="--", linewidth=0.9)
            common = sorted(set(te_ep) & set(tr_ep))
            tr_d, te_d = dict(zip(tr_ep, tr)), dict(zip(te_ep, te))
            row[1].plot(common, [tr_d[e] - te_d[e] for e in common], color=colour, label=key[1])
        row[0].set_title(f"{model}: train (dashed) and test (solid) accuracy, mean over seeds", fontsize=9)
        row[0].set_ylabel("accuracy (%)")
        row[1].set_title(f"{model}: gap = train − test accuracy", fontsize=9)
        row[1].set_ylabel("gap (points)")
        for ax in row:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return _save(plt, fig, path, 110)
