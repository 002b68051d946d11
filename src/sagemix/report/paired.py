"""The report's seed-paired tables: differences to reference methods with CIs, every run's numbers, the gap.

- :func:`paired_table`: per method, each seed's value, the mean ± std, and the paired difference to each
  reference method (vanilla and SAGE by default) over the seeds both have, with its 95% confidence
  interval (:func:`sagemix.report.stats.paired_difference`) and ``*`` when the interval excludes 0.
- :func:`runs_table`: every run's own numbers (clean, corruption mean, FGSM, epoch time).
- :func:`gap_table`: train and test accuracy at the last epoch and their gap (memorisation).

The paired and gap tables use finished runs only: a run still training has no final numbers yet.
"""
from __future__ import annotations

import math
import re
import statistics
from fractions import Fraction
from typing import Callable, Sequence

from .runs import Run
from .stats import CI_METHODS, PairedDifference, format_p, holm, paired_difference
from .tables import DASH, Table, _fmt, _groups, adversarial_numbers, clean_numbers, corruption_numbers, mean_std

__all__ = ["CLEAN_KEYS", "REFERENCES", "metric_value", "paired_table", "paired_tables", "runs_table", "gap_numbers",
           "gap_table", "epoch_time"]

#: The clean-accuracy summaries a paired table can use.
CLEAN_KEYS = ("best_acc", "final_acc", "median_last10_acc")
#: The default reference methods of the paired differences.
REFERENCES = ("vanilla", "sage")
_METRICS = {"corruptions": "corruption accuracy (mean of the corruptions x severities, %)",
            "fgsm": "adversarial (FGSM) accuracy (%)"}


def _check_clean_key(clean_key: str) -> str:
    if clean_key not in CLEAN_KEYS:
        raise ValueError(f"clean_key must be one of {CLEAN_KEYS}, got {clean_key!r}")
    return clean_key


def metric_value(run: Run, metric: str, clean_key: str = "final_acc") -> float | None:
    """One run's number for ``metric``: ``"clean"`` (its ``clean_key``), ``"corruptions"`` (the mean over the
    corruptions) or ``"fgsm"`` (the recorded attack's accuracy); None when the run has no such number."""
    if metric == "clean":
        return clean_numbers(run)[_check_clean_key(clean_key)]
    if metric == "corruptions":
        return corruption_numbers(run).get("mean")
    if metric == "fgsm":
        return adversarial_numbers(run).get("accuracy")
    if metric.startswith("fgsm@"):  # FGSM at another radius of the evaluation (EvalOptions.extra_eps)
        data = run.eval.get("adversarial")
        entry = data.get("by_eps", {}).get(metric[5:], {}) if isinstance(data, dict) else {}
        acc = entry.get("attacks", {}).get("fgsm", {}).get("adv_acc") if isinstance(entry, dict) else None
        return float(acc) if isinstance(acc, (int, float)) else None
    raise ValueError(f"metric must be 'clean', 'corruptions', 'fgsm' or 'fgsm@EPS', got {metric!r}")


def extra_radii(runs: Sequence[Run]) -> list[str]:
    """The FGSM radii besides each run's primary one found in the runs' evaluations (``"2/255"``, ...)."""
    found: dict[str, None] = {}
    for r in runs:
        data = r.eval.get("adversarial")
        if isinstance(data, dict) and isinstance(data.get("by_eps"), dict):
            found.update((e, None) for e in data["by_eps"] if e != data.get("eps_str"))
    return sorted(found, key=lambda e: float(Fraction(e)) if _is_fraction(e) else math.inf)


def _is_fraction(text: str) -> bool:
    try:
        Fraction(text)
    except (ValueError, ZeroDivisionError):
        return False
    return True


def _by_seed(rs: Sequence[Run], value: Callable[[Run], float | None]) -> dict[int, float]:
    """The finished runs' values by seed (a run still training has no final numbers yet)."""
    out: dict[int, float] = {}
    for r in rs:
        v = value(r) if r.finished else None
        if r.seed is not None and v is not None:
            out[r.seed] = float(v)
    return out


def paired_table(runs: Sequence[Run], metric: str = "clean", *, clean_key: str = "final_acc",
                 references: Sequence[str] = REFERENCES, ci: str = "t") -> Table:
    """Per (model, method): the finished seeds' values, mean ± std, and the paired difference to each reference.

    Args:
        runs: the runs.
        metric: ``"clean"``, ``"corruptions"`` or ``"fgsm"`` (see :func:`metric_value`).
        clean_key: the clean summary for ``metric="clean"`` (:data:`CLEAN_KEYS`).
        references: methods (run labels) to difference against, on the same model and seed.
        ci: ``"t"`` or ``"bootstrap"`` (see :mod:`sagemix.report.stats`).
    """
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {CI_METHODS}, got {ci!r}")
    refs = list(references)
    groups = _groups(runs)
    values = {(model, method): _by_seed(rs, lambda r: metric_value(r, metric, clean_key))
              for model, method, rs in groups}
    found: list[tuple[str, str, dict[int, float], list[PairedDifference | str]]] = []
    for model, method, _ in groups:
        mine = values[(model, method)]
        if not mine:
            continue
        diffs: list[PairedDifference | str] = []
        for ref in refs:
            other = values.get((model, ref), {})
            common = sorted(set(mine) & set(other))
            if method == ref:
                diffs.append("(reference)")
            elif len(common) < 2:
                diffs.append(DASH)
            else:
                diffs.append(paired_difference([mine[k] for k in common], [other[k] for k in common], method=ci,
                                               seeds=common))
        found.append((model, method, mine, diffs))
    # Holm over each reference's column: the family of every method compared with that reference here.
    q_by_ref = []
    for j in range(len(refs)):
        ds = [row[3][j] for row in found]
        q_by_ref.append(holm([d.p if isinstance(d, PairedDifference) else math.nan for d in ds]))
    rows, raw = [], []
    for i, (model, method, mine, diffs) in enumerate(found):
        m, s = mean_std(list(mine.values()))
        seeds = " ".join(f"{mine[k]:.2f}" for k in sorted(mine))
        cells, vals = [], []
        for j, d in enumerate(diffs):
            if not isinstance(d, PairedDifference):
                cells += [d, DASH]
                vals += [None if d == "(reference)" else len(set(mine) & set(values.get((model, refs[j]), {}))),
                         None, None, None, None, None, None, None]
                continue
            q = q_by_ref[j][i]
            cells.append(d.cell() + ("" if d.n == len(mine) else f" (n={d.n})"))
            cells.append(f"{format_p(d.p)} ({format_p(q)}) ±{d.resolvable:.2f}")
            vals += [d.n, d.mean, d.lo, d.hi, d.excludes_zero, d.p, q, d.resolvable]
        rows.append([model, method, str(len(mine)), _fmt(m, s), seeds] + cells)
        raw.append([model, method, len(mine), m, s, ";".join(f"{k}:{mine[k]:.4f}" for k in sorted(mine))] + vals)
    what = (f"clean test accuracy ({clean_key.replace('_acc', '').replace('_', ' ')}, %)" if metric == "clean"
            else f"adversarial (FGSM at eps {metric[5:]}) accuracy (%)" if metric.startswith("fgsm@")
            else _METRICS.get(metric, metric))
    how = ("Student-t interval on the paired differences, t(0.975, n-1) · sd / sqrt(n)" if ci == "t"
           else "percentile bootstrap of the mean paired difference (10,000 resamples, fixed seed)")
    return Table(
        "paired_" + re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_"), f"Paired differences over seeds: {what}",
        ["model", "method", "seeds", "mean ± std", "per seed (by seed)"]
        + [c for r in refs for c in (f"Δ vs {r} [95% CI]", f"p (Holm) ±resolvable vs {r}")],
        rows, raw,
        note=f"Δ: mean over seeds of (method − reference) on the same model and seed (same data order and "
             f"initialisation), with its 95% confidence interval ({how}). * marks an interval that excludes 0 "
             f"(distinguishable at the 5% level, uncorrected); without * these seeds cannot tell the two apart. "
             f"p: the paired t-test's two-sided p-value; (Holm): adjusted with Holm's method over this column's "
             f"comparisons, the value to hold against 0.05 when reading the whole column; ±resolvable: the "
             f"smallest difference these seeds resolve at their paired spread (the t interval's half-width). "
             f"(n=k): only k seeds pair up. — : fewer than 2 pairs. Unfinished runs are left out.",
        csv_columns=["model", "method", "seeds", "mean", "std", "per_seed"]
                    + [c for r in refs for c in (f"n_vs_{r}", f"diff_vs_{r}", f"ci_lo_vs_{r}", f"ci_hi_vs_{r}",
                                                 f"excludes_0_vs_{r}", f"p_vs_{r}", f"p_holm_vs_{r}",
                                                 f"resolvable_vs_{r}")])


def paired_tables(runs: Sequence[Run], *, clean_key: str = "final_acc", references: Sequence[str] = REFERENCES,
                  ci: str = "t") -> list[Table]:
    """The paired tables of clean accuracy, corruption mean and FGSM, at every radius (those with any number)."""
    tables = [paired_table(runs, m, clean_key=clean_key, references=references, ci=ci)
              for m in ("clean", "corruptions", "fgsm", *(f"fgsm@{e}" for e in extra_radii(runs)))]
    return [t for t in tables if t.rows]


def epoch_time(run: Run) -> tuple[float | None, str]:
    """A run's mean epoch time and its clock: process CPU (``"cpu"``) when recorded, else wall (``"wall"``)."""
    for key, col, clock in (("mean_epoch_cpu_s", "epoch_cpu_s", "cpu"), ("mean_epoch_time_s", "epoch_time_s", "wall")):
        v = run.summary.get(key)
        if v is None:
            vals = [float(r[col]) for r in run.metrics if r.get(col) not in (None, "")]
            v = statistics.fmean(vals) if vals else None
        if v is not None:
            return float(v), clock
    return None, "wall"


def runs_table(runs: Sequence[Run], *, clean_key: str = "final_acc") -> Table:
    """Every run's own numbers, grouped like the other tables and by seed."""
    _check_clean_key(clean_key)
    rows, raw = [], []
    for model, method, rs in _groups(runs):
        for r in rs:
            c = clean_numbers(r)
            corr, fgsm = metric_value(r, "corruptions"), metric_value(r, "fgsm")
            t, clock = epoch_time(r)
            cells = [c["best_acc"], c["final_acc"], c["median_last10_acc"], corr, fgsm]
            rows.append([model, method, DASH if r.seed is None else str(r.seed), "yes" if r.finished else "no"]
                        + [_fmt(v) for v in cells] + [DASH if t is None else f"{t:.2f} ({clock})", r.path.name])
            raw.append([model, method, r.seed, r.finished] + cells + [t, clock if t is not None else None, str(r.path)])
    return Table("runs", "Every run's numbers",
                 ["model", "method", "seed", "finished", "best (%)", "final (%)", "median last 10 (%)",
                  "corruptions (%)", "FGSM (%)", "epoch (s)", "folder"], rows, raw,
                 note="epoch (s): mean epoch time, process CPU time (cpu) when the run recorded it, else wall "
                      "time (wall), which depends on what else the machine ran.",
                 csv_columns=["model", "method", "seed", "finished", "best_acc", "final_acc", "median_last10_acc",
                              "corruption_mean_acc", "fgsm_acc", "epoch_s", "epoch_clock", "path"])


def gap_numbers(run: Run) -> dict[str, float | None]:
    """``{"train_acc", "test_acc", "gap"}`` at the run's last epoch with both accuracies (None when absent)."""
    for row in reversed(run.metrics):
        tr, te = row.get("train_acc"), row.get("test_acc")
        if tr not in (None, "") and te not in (None, ""):
            return {"train_acc": float(tr), "test_acc": float(te), "gap": float(tr) - float(te)}
    return {"train_acc": None, "test_acc": None, "gap": None}


def gap_table(runs: Sequence[Run]) -> Table:
    """Train accuracy, test accuracy and their gap at the last epoch, mean ± std over seeds."""
    rows, raw = [], []
    for model, method, rs in _groups(runs):
        nums = [gap_numbers(r) for r in rs if r.finished]
        have = [n for n in nums if n["gap"] is not None]
        if not have:
            continue
        stats = [mean_std([n[k] for n in have]) for k in ("train_acc", "test_acc", "gap")]
        rows.append([model, method, str(len(have))] + [_fmt(m, s) for m, s in stats])
        raw.append([model, method, len(have)] + [v for pair in stats for v in pair])
    return Table("gap", "Train and test accuracy at the last epoch and the gap (%), mean ± std over seeds",
                 ["model", "method", "seeds", "train (%)", "test (%)", "gap (%)"], rows, raw,
                 note="train: the trainer's train_acc, measured on the (mixed) training batches, so for a mixing "
                      "method it is the agreement with each mixed target's dominant label, not the accuracy on "
                      "clean training images. gap = train − test. Unfinished runs are left out.",
                 csv_columns=["model", "method", "seeds", "train_acc", "train_acc_std", "test_acc", "test_acc_std",
                              "gap", "gap_std"])
