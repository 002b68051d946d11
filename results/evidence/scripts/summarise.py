"""Print the numbers of results/evidence/README.md from a `sagemix report` folder and the run folders.

Usage: python results/evidence/scripts/summarise.py REPORT_DIR RUNS_DIR [COMPARE_LOG]

Prints the README's paired table rows (from paired_clean/corruptions/fgsm.csv and cost.csv), vanilla's
protocol checks (train accuracy, test accuracy, gap, |acc(100) - acc(90)|, the 95% CI half-width of its
test accuracy over seeds) and the runs' summed training and evaluation times.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from pathlib import Path

from sagemix.report.stats import t_quantile

ORDER = ["vanilla", "mixup", "manifold_mixup", "cutmix", "saliencymix", "puzzlemix", "comixup", "sage",
         "sage_no_rearrangement", "sage_exhaustive"]


def rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path) as f:
        return {r["method"]: r for r in csv.DictReader(f)}


def delta(r: dict[str, str], ref: str) -> str:
    if not r.get(f"diff_vs_{ref}"):
        return "(reference)" if r["method"] == ref else "—"
    star = " *" if r[f"excludes_0_vs_{ref}"] == "True" else ""
    return f"{float(r[f'diff_vs_{ref}']):+.2f} [{float(r[f'ci_lo_vs_{ref}']):+.2f}, {float(r[f'ci_hi_vs_{ref}']):+.2f}]{star}"


def main(report: Path, runs: Path) -> None:
    clean, corr, fgsm = (rows(report / f"paired_{m}.csv") for m in ("clean", "corruptions", "fgsm"))
    cost = rows(report / "cost.csv")
    print("| method | clean (%) | Δ vs vanilla | Δ vs SAGE | corruptions (%) | Δ vs vanilla | FGSM (%) | Δ vs vanilla | epoch CPU × vanilla |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in ORDER:
        c, k, f = clean[m], corr[m], fgsm[m]
        ms = lambda r: (f"{float(r['mean']):.2f}" + (f" ± {float(r['std']):.2f}" if r["std"] else "")
                        + f" (n={r['seeds']})")
        print(f"| {m} | {ms(c)} | {delta(c, 'vanilla')} | {delta(c, 'sage')} | {ms(k)} | {delta(k, 'vanilla')} | "
              f"{ms(f)} | {delta(f, 'vanilla')} | {float(cost[m]['epoch_cpu_x_vanilla']):.2f} |")
    van = [float(v.split(":")[1]) for v in clean["vanilla"]["per_seed"].split(";")]
    n = len(van)
    half = t_quantile(0.975, n - 1) * statistics.stdev(van) / math.sqrt(n)
    print(f"\nvanilla: final test acc per seed {van}; 95% CI half-width {half:.3f} points (n={n})")
    train_s = eval_s = 0.0
    for d in sorted(runs.glob("*-s[0-9]*")):
        s = json.loads((d / "summary.json").read_text())
        with open(d / "metrics.csv") as fh:
            m = list(csv.DictReader(fh))
        train_s += sum(float(r["epoch_time_s"]) for r in m if r.get("epoch_time_s"))
        if d.name.startswith("smallnet-vanilla-"):
            acc = {int(r["epoch"]): float(r["test_acc"]) for r in m if r.get("test_acc")}
            print(f"{d.name}: train acc (last epoch, logged) {m[-1]['train_acc']}, test {acc.get(100)}, "
                  f"acc(100) - acc(90) = {acc.get(100, float('nan')) - acc.get(90, float('nan')):+.2f}, "
                  f"finished {s.get('finished')}")
        if (d / "eval" / "summary.json").exists():  # the evaluation ran right after the training
            eval_s += (d / "eval" / "summary.json").stat().st_mtime - (d / "summary.json").stat().st_mtime
    print(f"summed over the runs: training epochs {train_s / 3600:.2f} h, evaluations (file times) "
          f"{eval_s / 3600:.2f} h (one process each)")
    log = runs.parent / "compare.log" if len(sys.argv) < 4 else Path(sys.argv[3])
    if log.exists():
        done = {}
        for line in log.read_text().splitlines():
            if ": done in " in line:
                name = line.split("| ")[0].split("] ")[1]
                done[name] = float(line.rsplit("done in ", 1)[1].split()[0])
        print(f"compare.log: {len(done)} runs trained, {sum(done.values()) / 3600:.2f} h of training wall time "
              "(with the periodic test evaluations)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
