"""Writing the report: ``report.md``, one CSV per table and the plots."""
from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Sequence

from .paired import REFERENCES, gap_table, paired_tables, runs_table
from .plots import plot_accuracy_vs_cost, plot_learning_curves, plot_train_test_gap
from .runs import Run
from .tables import DASH, build_tables
from .verdict import Endpoint, GateOptions, dataset_verdict, endpoints_table, gate_table

__all__ = ["write_report"]


def write_report(runs: Sequence[Run], out_dir: str | os.PathLike, *, plots: bool = True,
                 clean_key: str = "final_acc", references: Sequence[str] = REFERENCES,
                 ci: str = "t", endpoints: Sequence[Endpoint] = (), gate: GateOptions | None = None) -> dict[str, Path]:
    """Write ``report.md``, one CSV per table and the plots into ``out_dir``.

    Args:
        runs: from :func:`collect_runs`.
        out_dir: the output folder (created).
        plots: also draw ``accuracy_vs_cost.png``, ``learning_curves.png`` and ``train_test_gap.png`` (needs
            matplotlib; without it the report says so and the tables are still written).
        clean_key: the clean accuracy of the paired table (``best_acc``, ``final_acc``, ``median_last10_acc``).
        references: the methods the paired tables difference against (same model and seed).
        ci: the paired confidence interval, ``"t"`` or ``"bootstrap"`` (:mod:`sagemix.report.stats`).
        endpoints: the primary endpoints (:mod:`sagemix.report.verdict`): a table at the top of the report.
        gate: the gate's options: its checks at the top of the report.

        With ``endpoints`` or ``gate``, ``verdict.json`` holds both (:func:`~sagemix.report.verdict.dataset_verdict`).

    Returns:
        ``{name: path}`` of the files written.
    """
    from ..utils import atomic_write_text, disk_write_error

    if not runs:
        raise ValueError("runs is empty: nothing to report")
    paired = paired_tables(runs, clean_key=clean_key, references=references, ci=ci)  # checks its options first
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise disk_write_error(e, out, "report folder") from e
    tables = build_tables(runs)
    written: dict[str, Path] = {}
    datasets = sorted({r.dataset for r in runs})
    md = ["# sagemix comparison report", "",
          f"{len(runs)} runs ({sum(r.finished for r in runs)} finished), dataset(s): {', '.join(datasets)}. "
          f"Missing numbers are shown as {DASH}.", ""]
    verdict_tables: list = []
    if endpoints or gate is not None:
        verdict = dataset_verdict(runs, endpoints=endpoints, gate=gate, clean_key=clean_key)
        p = out / "verdict.json"
        atomic_write_text(p, json.dumps(verdict, indent=2) + "\n")
        written["verdict"] = p
        if gate is not None:
            verdict_tables.append(gate_table(verdict["gate"]))
        if endpoints:
            verdict_tables.append(endpoints_table(verdict["endpoints"], alpha=gate.alpha if gate else 0.05,
                                                 min_seeds=gate.endpoint_seeds if gate else 2))
        md += ["## Verdict", ""] + ([f"**Verdict:** {verdict['verdict']}.", ""] if "verdict" in verdict else [])
    if paired:
        verdict_tables.append(None)  # the heading of the paired tables
    for t in verdict_tables + paired + [gap_table(runs)] + tables + [runs_table(runs, clean_key=clean_key)]:
        if t is None:
            md += ["## Paired differences over seeds", ""]
            continue
        if t is tables[0]:
            md += ["## Tables", ""]
        md.append(t.to_markdown())
        if t.raw:
            p = out / f"{t.name}.csv"
            atomic_write_text(p, t.to_csv())
            written[t.name] = p
    if plots:
        try:
            for name, fn in (("accuracy_vs_cost", partial(plot_accuracy_vs_cost, clean_key=clean_key)),
                             ("learning_curves", plot_learning_curves), ("train_test_gap", plot_train_test_gap)):
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
