"""The report's numbers and tables: clean accuracy, corruptions, adversarial, few-shot and cost.

Each table is a :class:`Table` (Markdown cells and raw CSV values) built from :class:`Run` objects;
a number that is missing is ``None`` in the CSV and "—" in the Markdown, never filled in.
"""
from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from ..checks import is_number
from ..mixers.registry import METHOD_ORDER
from ..run_folder import accuracy_summary
from .runs import Run

__all__ = ["METHOD_ORDER", "DASH", "mean_std", "clean_numbers", "corruption_numbers", "adversarial_numbers",
           "fewshot_numbers", "cost_numbers", "Table", "clean_table", "corruption_table", "adversarial_table",
           "fewshot_table", "cost_table", "build_tables"]

#: The order of methods in the tables (others follow alphabetically).
DASH = "—"


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


def clean_numbers(run: Run) -> dict[str, float | None]:
    """Best, final and median-of-last-10-epochs test accuracy of a run.

    Computed from ``metrics.jsonl`` as the trainer's summary is (:func:`sagemix.run_folder.accuracy_summary`),
    so that runs whose summary predates a fix read the same; from ``summary.json`` when the run has no
    evaluated epoch in its metrics.
    """
    keys = ("best_acc", "final_acc", "median_last10_acc")
    acc = accuracy_summary(run.metrics)
    src = acc if acc["final_acc"] is not None else run.summary
    return {k: None if src.get(k) is None else float(src[k]) for k in keys}


def _cost_numbers(run: Run) -> dict[str, float | None]:
    def mean_of(col: str) -> float | None:
        vals = [float(r[col]) for r in run.metrics if r.get(col) not in (None, "")]
        return statistics.fmean(vals) if vals else None

    out: dict[str, float | None] = {}
    for key, col in (("epoch_s", "epoch_time_s"), ("step_s", "step_time_s"), ("epoch_cpu_s", "epoch_cpu_s"),
                     ("step_cpu_s", "step_cpu_s")):
        v = run.summary.get("mean_" + col)
        out[key] = float(v) if v is not None else mean_of(col)
    return out


# -- evaluation files, as `sagemix eval` writes them (sagemix.commands.eval). A number these readers
# -- do not find is None, shown as "—".
def _acc_from(obj: Any) -> float | None:
    if is_number(obj):
        return float(obj)
    if isinstance(obj, dict):
        for key in ("accuracy", "acc", "mean_acc"):
            if is_number(obj.get(key)):
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
    """Runs grouped by (model, method), models sorted, methods in :data:`METHOD_ORDER` (a variant right
    after its registry method), seeds ascending."""
    d: dict[tuple[str, str], list[Run]] = {}
    base: dict[str, str] = {}
    for r in runs:
        d.setdefault((r.model, r.method), []).append(r)
        base.setdefault(r.method, getattr(r, "base_method", "") or r.method)

    def order(key: tuple[str, str]) -> tuple[str, int, int, str]:
        m = key[1]
        b = base.get(m, m)
        return key[0], METHOD_ORDER.index(b) if b in METHOD_ORDER else len(METHOD_ORDER), int(m != b), m

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
                      "of the test accuracy over the last 10 epochs (those evaluated).", csv_columns=cols)


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
    if is_number(e):
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
    """Per (model, method): mean epoch and step time over seeds (wall, and process CPU when the runs
    recorded it) and their ratios to vanilla's on the same model."""
    out: dict[tuple[str, str], dict[str, float | None]] = {}
    keys = ("epoch_s", "step_s", "epoch_cpu_s", "step_cpu_s")
    for model, method, rs in _groups(runs):
        c = [_cost_numbers(r) for r in rs]
        out[(model, method)] = {k: mean_std([x[k] for x in c])[0] for k in keys}
    for (model, method), d in out.items():
        base = out.get((model, "vanilla"), {})
        for k in keys:
            b = base.get(k)
            d[k.replace("_s", "_ratio")] = d[k] / b if d[k] is not None and b else None
    return out


def cost_table(runs: Sequence[Run]) -> Table:
    """Training time per epoch and per step, and both relative to vanilla on the same model (wall time,
    and process CPU time when the runs recorded it)."""
    rows, raw = [], []
    for (model, method), d in cost_numbers(runs).items():
        rows.append([model, method, _fmt(d["epoch_s"]), _fmt(d["epoch_ratio"]), _fmt(d["step_s"], None, 4),
                     _fmt(d["step_ratio"]), _fmt(d["epoch_cpu_s"]), _fmt(d["epoch_cpu_ratio"])])
        raw.append([model, method, d["epoch_s"], d["epoch_ratio"], d["step_s"], d["step_ratio"], d["epoch_cpu_s"],
                    d["epoch_cpu_ratio"]])
    have_cpu = any(r[6] is not None for r in raw)
    return Table("cost", "Training cost (mean over seeds), relative to vanilla on the same model",
                 ["model", "method", "epoch (s)", "epoch × vanilla", "step (s)", "step × vanilla", "epoch CPU (s)",
                  "CPU × vanilla"], rows, raw,
                 note="Measured by the trainer during these runs: wall time (summary.json mean_epoch_time_s and "
                      "mean_step_time_s), whose ratios are only comparable between runs made on the same machine "
                      "under the same load; and process CPU time (mean_epoch_cpu_s), which holds when runs share "
                      "the machine. " + ("" if have_cpu else "These runs recorded no CPU time: only wall time "
                                         "is shown."),
                 csv_columns=["model", "method", "epoch_s", "epoch_x_vanilla", "step_s", "step_x_vanilla",
                              "epoch_cpu_s", "epoch_cpu_x_vanilla"])


def build_tables(runs: Sequence[Run]) -> list[Table]:
    """All tables, in report order."""
    return [clean_table(runs), corruption_table(runs), adversarial_table(runs), fewshot_table(runs),
            cost_table(runs)]
