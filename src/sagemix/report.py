"""Paper-style tables and plots from run folders: accuracy, robustness, few-shot and cost.

The tables follow the evaluation of SAGE ("Saliency-Guided Mixup with Optimal Rearrangements",
Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) and of Co-Mixup (Kim et al., ICLR 2021,
https://arxiv.org/abs/2102.03065), whose protocol SAGE follows: clean top-1 accuracy (best, final and
median of the last 10 epochs, mean ± sample standard deviation over seeds) per model and method;
accuracy under each corruption and their mean; FGSM accuracy; few-shot accuracy with 95% confidence
intervals; and the training cost per epoch and per step relative to vanilla training of the same model.

Every number comes from a file of a run folder (``summary.json``, ``metrics.jsonl``, ``eval/*.json``,
see docs/ARCHITECTURE.md "Runs"); a number that is missing (no evaluation run, no vanilla run to
compare with) is printed as "—", never filled in.

Example:
    >>> from sagemix.report import collect_runs, write_report
    >>> runs = collect_runs(["runs/offline"])                    # doctest: +SKIP
    >>> write_report(runs, "runs/offline/report")                # doctest: +SKIP
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["Run", "load_run", "collect_runs", "Table", "clean_table", "corruption_table", "adversarial_table",
           "fewshot_table", "cost_table", "build_tables", "write_report", "mean_std", "METHOD_ORDER"]

#: The order of methods in the tables (others follow alphabetically).
METHOD_ORDER = ["vanilla", "mixup", "manifold_mixup", "cutmix", "cutout", "saliencymix", "puzzlemix", "comixup",
                "sage"]
DASH = "—"


# ---------------------------------------------------------------------------------------------------
# Loading runs
# ---------------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One run folder's files, parsed.

    Attributes:
        path: the folder.
        method, model, dataset: from ``summary.json`` (or ``config.json``).
        seed: the run's seed (None when unknown).
        summary: ``summary.json`` (empty when absent).
        config: ``config.json`` (empty when absent).
        metrics: the rows of ``metrics.jsonl`` (or ``metrics.csv``), one per epoch.
        eval: ``{"clean": ..., "corruptions": ..., "adversarial": ..., "fewshot": ...}`` from ``eval/*.json``.
    """

    path: Path
    method: str
    model: str
    dataset: str
    seed: int | None
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """``summary.json`` says the run finished."""
        return bool(self.summary.get("finished", False))


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _read_metrics(folder: Path) -> list[dict[str, Any]]:
    jl = folder / "metrics.jsonl"
    if jl.is_file():
        rows = []
        with open(jl, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{jl} line {i} is not valid JSON ({e})") from None
        return rows
    cs = folder / "metrics.csv"
    if cs.is_file():
        with open(cs, encoding="utf-8", newline="") as f:
            return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return []


def _num(v: Any) -> Any:
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v


def load_run(path: str | os.PathLike) -> Run:
    """Read one run folder (it must hold ``summary.json`` or ``config.json``)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {str(folder)!r} does not exist")
    summary = _read_json(folder / "summary.json") if (folder / "summary.json").is_file() else {}
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    if not summary and not config:
        raise ValueError(f"{folder} is not a run folder: it has neither summary.json nor config.json")
    ev: dict[str, Any] = {}
    for name in ("clean", "corruptions", "adversarial", "fewshot"):
        f = folder / "eval" / f"{name}.json"
        if f.is_file():
            ev[name] = _read_json(f)

    def pick(key: str, default: Any = None) -> Any:
        return summary.get(key, config.get(key, default))

    seed = pick("seed")
    return Run(path=folder, method=str(pick("method", "?")), model=str(pick("model", "?")),
               dataset=str(pick("dataset", "?")), seed=int(seed) if seed is not None else None,
               summary=summary, config=config, metrics=_read_metrics(folder), eval=ev)


def collect_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    """Load run folders; a folder that is not a run is searched (recursively) for run folders.

    Raises:
        FileNotFoundError: a path does not exist.
        ValueError: no run folder was found.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"run folder {str(p)!r} does not exist")
        if (p / "summary.json").is_file() or (p / "config.json").is_file():
            found = [p]
        else:
            found = sorted({f.parent for pat in ("summary.json", "config.json") for f in p.rglob(pat)
                            if f.parent.name != "eval"})
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                runs.append(load_run(f))
    if not runs:
        raise ValueError(f"no run folders (with summary.json or config.json) under {[str(p) for p in paths]}")
    return runs


# ---------------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------------
def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1; None with fewer than 2 values) of the non-None values."""
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _fmt(mean: float | None, std: float | None = None, digits: int = 2) -> str:
    if mean is None:
        return DASH
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _test_accs(run: Run) -> list[float]:
    return [float(r["test_acc"]) for r in run.metrics if r.get("test_acc") not in (None, "")]


def clean_numbers(run: Run) -> dict[str, float | None]:
    """Best, final and median-of-last-10 test accuracy of a run.

    From ``summary.json`` when it has them, else computed from ``metrics.jsonl`` the same way the
    trainer does (max, last, median of the last 10 epochs).
    """
    accs = _test_accs(run)
    out: dict[str, float | None] = {}
    fallback = {"best_acc": max(accs) if accs else None, "final_acc": accs[-1] if accs else None,
                "median_last10_acc": statistics.median(accs[-10:]) if accs else None}
    for key in ("best_acc", "final_acc", "median_last10_acc"):
        v = run.summary.get(key)
        out[key] = float(v) if v is not None else fallback[key]
    return out


def _cost_numbers(run: Run) -> dict[str, float | None]:
    def mean_of(col: str) -> float | None:
        vals = [float(r[col]) for r in run.metrics if r.get(col) not in (None, "")]
        return statistics.fmean(vals) if vals else None

    ep = run.summary.get("mean_epoch_time_s")
    st = run.summary.get("mean_step_time_s")
    return {"epoch_s": float(ep) if ep is not None else mean_of("epoch_time_s"),
            "step_s": float(st) if st is not None else mean_of("step_time_s")}


# -- evaluation files, as `sagemix eval` writes them (sagemix.commands.eval). A number these readers
# -- do not find is None, shown as "—".
def _acc_from(obj: Any) -> float | None:
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return float(obj)
    if isinstance(obj, dict):
        for key in ("accuracy", "acc", "mean_acc"):
            if isinstance(obj.get(key), (int, float)) and not isinstance(obj.get(key), bool):
                return float(obj[key])
    return None


def corruption_numbers(run: Run) -> dict[str, float]:
    """``{corruption: accuracy averaged over severities}`` plus ``"mean"`` from ``eval/corruptions.json``.

    The file is :func:`sagemix.evaluate.robustness.evaluate_corruptions`'s dict: ``{"corruptions": {name:
    {"acc": [5 severities], "mean_acc": ...}}, "mean_acc": ...}``; ``"mean"`` is its ``mean_acc`` (over
    the benchmark corruptions evaluated).
    """
    data = run.eval.get("corruptions")
    if not isinstance(data, dict) or not isinstance(data.get("corruptions"), dict):
        return {}
    out: dict[str, float] = {}
    for name, val in data["corruptions"].items():
        if not isinstance(val, dict):
            continue
        if isinstance(val.get("mean_acc"), (int, float)):
            out[name] = float(val["mean_acc"])
        elif isinstance(val.get("acc"), list) and val["acc"]:
            out[name] = statistics.fmean(float(a) for a in val["acc"])
    if isinstance(data.get("mean_acc"), (int, float)):
        out["mean"] = float(data["mean_acc"])
    return out


def adversarial_numbers(run: Run) -> dict[str, Any]:
    """``{"attack", "eps", "accuracy"}`` from ``eval/adversarial.json`` (its primary attack; empty when absent)."""
    data = run.eval.get("adversarial")
    if not isinstance(data, dict):
        return {}
    return {"attack": data.get("attack"), "eps": data.get("eps"), "accuracy": _acc_from(data)}


def fewshot_numbers(run: Run) -> dict[int, tuple[float, float | None]]:
    """``{shots: (mean accuracy, 95% CI half-width)}`` from ``eval/fewshot.json`` (empty when absent).

    The file holds ``{"classifier": primary, "results": [{"shots", "classifier", "acc", "ci95", ...}]}``;
    the primary classifier's rows are used.
    """
    data = run.eval.get("fewshot")
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        return {}
    primary = data.get("classifier")
    out: dict[int, tuple[float, float | None]] = {}
    for row in data["results"]:
        if not isinstance(row, dict) or "shots" not in row or _acc_from(row) is None:
            continue
        if primary is not None and row.get("classifier", primary) != primary:
            continue
        ci = row.get("ci95")
        out[int(row["shots"])] = (_acc_from(row), float(ci) if isinstance(ci, (int, float)) else None)  # type: ignore[assignment]
    return out


# ---------------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------------
@dataclass
class Table:
    """A titled table: ``rows`` of cells (strings for Markdown, raw values for CSV)."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    raw: list[list[Any]]
    note: str = ""
    csv_columns: list[str] | None = None

    def to_markdown(self) -> str:
        """``### title`` then a Markdown table (and the note)."""
        lines = [f"### {self.title}", ""]
        if not self.rows:
            lines += [f"{DASH} (no data)", ""]
            return "\n".join(lines)
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" if i < 2 else "---:" for i in range(len(self.columns))) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """The raw numbers as CSV (empty cells where missing)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.csv_columns or _csv_columns(self.columns))
        for r in self.raw:
            w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in r])
        return buf.getvalue()


def _csv_columns(cols: list[str]) -> list[str]:
    out = []
    for c in cols:
        c = c.replace(" ± std", "").replace(" (%)", "").replace("×", "x")
        out.append(c.lower().replace(" ", "_").replace("-", "_"))
    return out


def _groups(runs: Sequence[Run]) -> list[tuple[str, str, list[Run]]]:
    """Runs grouped by (model, method), models sorted, methods in :data:`METHOD_ORDER`."""
    d: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        d.setdefault((r.model, r.method), []).append(r)

    def order(key: tuple[str, str]) -> tuple[str, int, str]:
        m = key[1]
        return key[0], METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m

    return [(k[0], k[1], sorted(d[k], key=lambda r: (r.seed is None, r.seed or 0))) for k in sorted(d, key=order)]


def _stat_cells(values: list[float | None]) -> tuple[str, float | None, float | None]:
    m, s = mean_std(values)
    return _fmt(m, s), m, s


def clean_table(runs: Sequence[Run]) -> Table:
    """Clean test accuracy per model and method: best, final, median of the last 10 epochs."""
    cols = ["model", "method", "seeds", "epochs", "best_acc", "best_acc_std", "final_acc", "final_acc_std",
            "median_last10_acc", "median_last10_acc_std"]
    md_cols = ["model", "method", "seeds", "epochs", "best (%)", "final (%)", "median last 10 (%)"]
    rows, raw = [], []
    for model, method, rs in _groups(runs):
        nums = [clean_numbers(r) for r in rs]
        epochs = sorted({int(r.summary.get("epochs_done", r.summary.get("epochs", len(r.metrics)))) for r in rs})
        ep = "/".join(str(e) for e in epochs)
        unfinished = sum(not r.finished for r in rs)
        cells, vals = [], []
        for key in ("best_acc", "final_acc", "median_last10_acc"):
            c, m, s = _stat_cells([n[key] for n in nums])
            cells.append(c)
            vals += [m, s]
        seeds = f"{len(rs)}" + (f" ({unfinished} unfinished)" if unfinished else "")
        rows.append([model, method, seeds, ep] + cells)
        raw.append([model, method, len(rs), ep] + vals)
    return Table("clean", "Clean test accuracy (%), mean ± std over seeds", md_cols, rows, raw,
                 note="best: highest test accuracy over the epochs; final: last epoch; median last 10: median "
                      "of the last 10 epochs' test accuracy.", csv_columns=cols)


def corruption_table(runs: Sequence[Run]) -> Table:
    """Accuracy under each corruption (mean over severities, then over seeds) and the mean."""
    groups = _groups(runs)
    names: list[str] = []
    per_group = []
    for model, method, rs in groups:
        nums = [corruption_numbers(r) for r in rs]
        for n in nums:
            names += [k for k in n if k != "mean" and k not in names]
        per_group.append((model, method, rs, nums))
    rows, raw = [], []
    for model, method, rs, nums in per_group:
        have = [n for n in nums if n]
        if not have:
            rows.append([model, method, "0"] + [DASH] * (len(names) + 1))
            raw.append([model, method, 0] + [None] * (len(names) + 1))
            continue
        cells, vals = [], []
        for k in ["mean"] + names:
            m, s = mean_std([n.get(k) for n in have])
            cells.append(_fmt(m, s if k == "mean" else None))
            vals.append(m)
        rows.append([model, method, str(len(have))] + cells)
        raw.append([model, method, len(have)] + vals)
    if not any(r[2] for r in raw):
        rows, raw = [], []
    return Table("corruptions", "Corruption accuracy (%), mean over severities and seeds",
                 ["model", "method", "seeds", "mean"] + names, rows, raw,
                 note="seeds: runs with a corruption evaluation (eval/corruptions.json).")


def adversarial_table(runs: Sequence[Run]) -> Table:
    """FGSM (or the attack recorded) accuracy, mean ± std over seeds."""
    rows, raw = [], []
    for model, method, rs in _groups(runs):
        nums = [adversarial_numbers(r) for r in rs]
        have = [n for n in nums if n.get("accuracy") is not None]
        m, s = mean_std([n["accuracy"] for n in have])
        attack = "/".join(sorted({str(n.get("attack")) for n in have})) or DASH
        eps = "/".join(sorted({_eps(n.get("eps")) for n in have})) or DASH
        rows.append([model, method, str(len(have)), attack, eps, _fmt(m, s)])
        raw.append([model, method, len(have), attack if have else None, eps if have else None, m, s])
    if not any(r[2] for r in raw):
        rows, raw = [], []
    return Table("adversarial", "Adversarial accuracy (%), mean ± std over seeds",
                 ["model", "method", "seeds", "attack", "eps", "accuracy (%)"], rows, raw,
                 csv_columns=["model", "method", "seeds", "attack", "eps", "accuracy", "accuracy_std"])


def _eps(e: Any) -> str:
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        k = e * 255
        return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{e:.4g}"
    return DASH if e is None else str(e)


def fewshot_table(runs: Sequence[Run]) -> Table:
    """Few-shot accuracy per shot count: mean over seeds, with the mean of the runs' 95% CI half-widths."""
    groups = _groups(runs)
    shots = sorted({s for _, _, rs in groups for r in rs for s in fewshot_numbers(r)})
    rows, raw = [], []
    for model, method, rs in groups:
        nums = [fewshot_numbers(r) for r in rs]
        have = [n for n in nums if n]
        cells, vals = [], []
        for s in shots:
            accs = [n[s][0] for n in have if s in n]
            cis = [n[s][1] for n in have if s in n and n[s][1] is not None]
            m, _ = mean_std(accs)
            ci = statistics.fmean(cis) if cis else None
            cells.append(DASH if m is None else (f"{m:.2f} ± {ci:.2f}" if ci is not None else f"{m:.2f}"))
            vals += [m, ci]
        rows.append([model, method, str(len(have))] + cells)
        raw.append([model, method, len(have)] + vals)
    if not any(r[2] for r in raw):
        rows, raw = [], []
    return Table("fewshot", "Few-shot accuracy (%) on novel classes, ± 95% confidence interval",
                 ["model", "method", "seeds"] + [f"{s}-shot" for s in shots], rows, raw,
                 note="Mean over seeds of each run's mean episode accuracy; ± is the mean of the runs' 95% CI "
                      "half-widths (1.96 std / sqrt(episodes)).",
                 csv_columns=["model", "method", "seeds"] + [c for s in shots for c in (f"{s}_shot", f"{s}_shot_ci95")])


def cost_numbers(runs: Sequence[Run]) -> dict[tuple[str, str], dict[str, float | None]]:
    """Per (model, method): mean epoch and step time over seeds and their ratios to vanilla's."""
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    for model, method, rs in _groups(runs):
        c = [_cost_numbers(r) for r in rs]
        out[(model, method)] = {"epoch_s": mean_std([x["epoch_s"] for x in c])[0],
                                "step_s": mean_std([x["step_s"] for x in c])[0]}
    for (model, method), d in out.items():
        base = out.get((model, "vanilla"), {})
        for k in ("epoch_s", "step_s"):
            b = base.get(k)
            d[k.replace("_s", "_ratio")] = d[k] / b if d[k] is not None and b else None
    return out


def cost_table(runs: Sequence[Run]) -> Table:
    """Training time per epoch and per step, and both relative to vanilla on the same model."""
    rows, raw = [], []
    for (model, method), d in cost_numbers(runs).items():
        rows.append([model, method, _fmt(d["epoch_s"]), _fmt(d["epoch_ratio"]), _fmt(d["step_s"], None, 4),
                     _fmt(d["step_ratio"])])
        raw.append([model, method, d["epoch_s"], d["epoch_ratio"], d["step_s"], d["step_ratio"]])
    return Table("cost", "Training cost (mean over seeds), relative to vanilla on the same model",
                 ["model", "method", "epoch (s)", "epoch × vanilla", "step (s)", "step × vanilla"], rows, raw,
                 note="Measured by the trainer during these runs (summary.json mean_epoch_time_s and "
                      "mean_step_time_s); ratios are only comparable between runs made on the same machine "
                      "under the same load.",
                 csv_columns=["model", "method", "epoch_s", "epoch_x_vanilla", "step_s", "step_x_vanilla"])


def build_tables(runs: Sequence[Run]) -> list[Table]:
    """All tables, in report order."""
    return [clean_table(runs), corruption_table(runs), adversarial_table(runs), fewshot_table(runs),
            cost_table(runs)]


# ---------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError('the report plots need matplotlib: pip install "sagemix[viz]"') from e
    return plt


def plot_accuracy_vs_cost(runs: Sequence[Run], path: str | os.PathLike) -> Path | None:
    """Scatter of best accuracy (mean ± std over seeds) against epoch time relative to vanilla, per model.

    Returns the PNG path, or None when no method has both numbers.
    """
    plt = _pyplot()
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
    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------
def write_report(runs: Sequence[Run], out_dir: str | os.PathLike, *, plots: bool = True) -> dict[str, Path]:
    """Write ``report.md``, one CSV per table and the plots into ``out_dir``.

    Args:
        runs: from :func:`collect_runs`.
        out_dir: the output folder (created).
        plots: also draw ``accuracy_vs_cost.png`` and ``learning_curves.png`` (needs matplotlib; without
            it the report says so and the tables are still written).

    Returns:
        ``{name: path}`` of the files written.
    """
    from .utils import atomic_write_text

    if not runs:
        raise ValueError("runs is empty: nothing to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = build_tables(runs)
    written: dict[str, Path] = {}
    datasets = sorted({r.dataset for r in runs})
    md = ["# sagemix comparison report", "",
          f"{len(runs)} runs ({sum(r.finished for r in runs)} finished), dataset(s): {', '.join(datasets)}. "
          f"Missing numbers are shown as {DASH}.", ""]
    for t in tables:
        md.append(t.to_markdown())
        if t.raw:
            p = out / f"{t.name}.csv"
            atomic_write_text(p, t.to_csv())
            written[t.name] = p
    if plots:
        try:
            for name, fn in (("accuracy_vs_cost", plot_accuracy_vs_cost), ("learning_curves", plot_learning_curves)):
                p = fn(runs, out / f"{name}.png")
                if p is not None:
                    written[name] = p
                    md += [f"![{name}]({p.name})", ""]
        except ImportError as e:
            md += [f"(plots skipped: {e})", ""]
    md += ["## Runs", "", "| run | method | model | seed | finished | evaluations |", "|---|---|---|---:|---|---|"]
    for r in sorted(runs, key=lambda r: str(r.path)):
        md.append(f"| {r.path} | {r.method} | {r.model} | {DASH if r.seed is None else r.seed} | "
                  f"{'yes' if r.finished else 'no'} | {', '.join(sorted(r.eval)) or DASH} |")
    p = out / "report.md"
    atomic_write_text(p, "\n".join(md) + "\n")
    written["report"] = p
    return written
