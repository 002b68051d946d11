"""Print the gate's measurements of one or more report folders as Markdown (for the README of issue 19).

Usage: python results/evidence/scripts/gate_summary.py NAME=REPORT_DIR=RUNS_DIR [...]

REPORT_DIR is a `sagemix report --gate` folder (its verdict.json); RUNS_DIR the run folders it read (for the
per-seed accuracies and the training cost). Prints, per dataset: the final test accuracy of every gate run
by seed, each control's paired difference to vanilla (n, mean, 95 % interval, p, Holm) with the smallest
gain that would have passed at that n and paired spread, and the training cost.
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from sagemix.report.runs import collect_runs
from sagemix.report.stats import format_p, t_quantile


def _runs(folder: Path) -> dict[str, dict[int, dict]]:
    """Finished runs by method and seed, read by the report's own loader."""
    out: dict[str, dict[int, dict]] = {}
    for r in collect_runs([folder]):
        if r.finished:
            out.setdefault(r.method, {})[r.seed] = {
                "final": r.summary["final_acc"], "cpu": sum(m.get("epoch_cpu_s") or 0.0 for m in r.metrics),
                "wall": sum(m.get("epoch_time_s") or 0.0 for m in r.metrics)}
    return out


def main(argv: list[str]) -> int:
    if not argv or any(a.count("=") != 2 for a in argv):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    for arg in argv:
        name, report, runs_dir = arg.split("=")
        verdict = json.loads((Path(report) / "verdict.json").read_text(encoding="utf-8"))
        runs = _runs(Path(runs_dir))
        gate = verdict["gate"]["checks"]["positive_control"]
        controls, alpha = gate["controls"], gate["alpha"]
        methods = ["vanilla"] + [c["method"] for c in controls]
        seeds = sorted({s for m in methods for s in runs.get(m, {})})
        print(f"### {name}\n")
        print("| final test accuracy (%) | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± sd |")
        print("|---|" + "---:|" * (len(seeds) + 1))
        for m in methods:
            vals = runs.get(m, {})
            xs = [vals[s]["final"] for s in seeds if s in vals]
            sd = f" ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else ""
            mean = f"{statistics.fmean(xs):.2f}{sd}" if xs else "—"
            print(f"| {m} | " + " | ".join(f"{vals[s]['final']:.2f}" if s in vals else "—" for s in seeds)
                  + f" | {mean} |")
        k = len(controls)
        print("\n| control − vanilla | seeds | Δ | 95 % CI | p | p (Holm) | gain needed to pass |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        van = runs.get("vanilla", {})
        for c in controls:
            vals = runs.get(c["method"], {})
            d = [vals[s]["final"] - van[s]["final"] for s in sorted(set(vals) & set(van))]
            # the smallest mean gain that passes Holm's first step (p < alpha / k) at this n and paired sd
            need = t_quantile(1 - alpha / (2 * k), len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
            print(f"| {c['method']} | {c['n']} | {c['diff']:+.2f} | [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}] | "
                  f"{format_p(c['p'])} | {format_p(c['p_holm'])} | {need:.2f} |")
        cpu = sum(r["cpu"] for m in runs.values() for r in m.values())
        wall = sum(r["wall"] for m in runs.values() for r in m.values())
        n = sum(len(m) for m in runs.values())
        print(f"\nfailed checks: {', '.join(verdict['gate']['failed']) or 'none'}; training of {n} runs: "
              f"{cpu / 3600:.2f} CPU-hours, {wall / 3600:.2f} hours of epochs (test evaluations not included)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
