"""Print a finished comparison's README table over one fixed set of seeds.

Usage: python results/evidence/scripts/comparison_summary.py RUNS_DIR --seeds 5 6 7 8 9 [--reference vanilla]

`sagemix report` pairs each method with the reference over every seed both ran, and its per-method means
span every finished run. Where some methods ran on more seeds than others (the confirmatory gate's four
methods on seeds 5-14, the rest on 5-9), this table keeps to the seeds given, so that every mean and every
difference in a row is over the same seeds. Per method: the mean ± sd of clean accuracy, corruption-mean
accuracy and FGSM accuracy at each radius evaluated; the paired difference to the reference on clean and
corruption accuracy with its 95 % interval and Holm-adjusted p over the other methods; the epoch CPU time
relative to the reference; and the summed training CPU time and evaluation time of the runs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from sagemix.report.paired import _by_seed, extra_radii, metric_value, paired_table
from sagemix.report.runs import collect_runs
from sagemix.report.stats import format_p

ORDER = ["vanilla", "mixup", "manifold_mixup", "cutmix", "saliencymix", "puzzlemix", "comixup", "sage",
         "sage_no_rearrangement", "sage_exhaustive"]


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{statistics.fmean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", required=True)
    ap.add_argument("--reference", default="vanilla")
    args = ap.parse_args(argv)
    seeds = set(args.seeds)
    runs = [r for r in collect_runs([args.runs]) if r.finished and r.seed in seeds]
    by_method: dict[str, list] = {}
    for r in runs:
        by_method.setdefault(r.method, []).append(r)
    methods = [m for m in ORDER if m in by_method] + sorted(set(by_method) - set(ORDER))
    if args.reference not in by_method:
        print(f"--reference {args.reference!r} has no finished run on seeds {sorted(seeds)}", file=sys.stderr)
        return 2
    radii = ["fgsm@" + e for e in extra_radii(runs)]
    metrics = ["clean", "corruptions", *radii, "fgsm"]
    vals = {k: {m: _by_seed(by_method[m], lambda r, k=k: metric_value(r, k)) for m in methods} for k in metrics}
    ref = args.reference
    diffs: dict[str, dict[str, str]] = {}
    for k in ("clean", "corruptions"):  # the report's own paired table, over these seeds' runs only
        t = paired_table(runs, k, references=[ref])
        col = {c: i for i, c in enumerate(t.csv_columns)}
        diffs[k] = {r[col["method"]]: f"{r[col[f'diff_vs_{ref}']]:+.2f} [{r[col[f'ci_lo_vs_{ref}']]:+.2f}, "
                    f"{r[col[f'ci_hi_vs_{ref}']]:+.2f}]; {format_p(r[col[f'p_holm_vs_{ref}']])}"
                    for r in t.raw if r[col[f"diff_vs_{ref}"]] is not None}
    cpu = {m: [sum(e.get("epoch_cpu_s") or 0.0 for e in r.metrics) for r in by_method[m]] for m in methods}
    epoch_cpu = {m: statistics.fmean(r.summary["mean_epoch_cpu_s"] for r in by_method[m]) for m in methods}
    primary = {r.eval["adversarial"].get("eps_str") for r in runs if isinstance(r.eval.get("adversarial"), dict)}
    names = [e.split("@")[1] for e in radii] + ["/".join(sorted(map(str, primary))) or "(none)"]
    print(f"Seeds {sorted(seeds)}; Δ: paired difference to {ref} over these seeds, 95 % t-interval; p: Holm-adjusted "
          f"over the {len(methods) - 1} methods.\n")
    print("| method | runs | clean (%) | Δ clean | corruptions (%) | Δ corruptions | "
          + " | ".join(f"FGSM {n} (%)" for n in names) + f" | epoch CPU × {ref} | training CPU min / run |")
    print("|---|---:|" + "---:|" * (4 + len(names) + 2))
    for m in methods:
        cells = [_mean_sd(list(vals[k][m].values())) for k in metrics]
        print(f"| {m} | {len(by_method[m])} | {cells[0]} | {diffs['clean'].get(m, '(reference)' if m == ref else '—')} "
              f"| {cells[1]} | {diffs['corruptions'].get(m, '(reference)' if m == ref else '—')} | "
              + " | ".join(cells[2:]) + f" | {epoch_cpu[m] / epoch_cpu[ref]:.2f} | {statistics.fmean(cpu[m]) / 60:.1f} |")
    train_h = sum(sum(v) for v in cpu.values()) / 3600
    eval_s = [float(json.loads(f.read_text(encoding="utf-8"))["eval_time_s"]) for r in runs
              if (f := r.path / "eval" / "summary.json").is_file()]
    print(f"\n{len(runs)} runs: training {train_h:.2f} CPU-hours (process CPU of the training steps; the test "
          f"evaluations during training, checkpoints and start-up not included); `sagemix eval` "
          f"{sum(eval_s) / 3600:.2f} hours of wall time over {len(eval_s)} runs (one thread each); together {train_h + sum(eval_s) / 3600:.2f} hours.")
    missing = [f"{m}-s{s}" for m in methods for s in sorted(seeds) if s not in {r.seed for r in by_method[m]}]
    if missing:
        print(f"missing (not finished): {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
