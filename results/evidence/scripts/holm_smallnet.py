"""The committed smallnet comparison under the issue-19 statistics: raw and Holm-adjusted p-values.

Usage: python results/evidence/scripts/holm_smallnet.py [OUT_DIR]   (default results/evidence/holm)

The run folders of that comparison are not in the repository; its report's ``runs.csv`` holds every
run's final clean accuracy, corruption mean and FGSM accuracy, which is all the paired tables need. This
rebuilds the runs in memory from it and writes, with the library's code (sagemix.report): the paired
tables with p-values, Holm-adjusted p-values per reference column and the smallest resolvable
difference, and the endpoints SAGE vs vanilla, Mixup, Puzzle Mix and Co-Mixup on clean accuracy and
corruptions (named after the fact here: that comparison fixed no endpoints before it ran).
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

from sagemix.report import write_report
from sagemix.report.runs import Run
from sagemix.report.verdict import parse_endpoints

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"sage_no_rearrangement": "sage", "sage_exhaustive": "sage"}


def runs_from_csv(path: Path) -> list[Run]:
    runs = []
    with open(path) as f:
        for r in csv.DictReader(f):
            ev = {}
            if r["corruption_mean_acc"]:
                ev["corruptions"] = {"corruptions": {}, "mean_acc": float(r["corruption_mean_acc"])}
            if r["fgsm_acc"]:
                ev["adversarial"] = {"attack": "fgsm", "eps": 8 / 255, "accuracy": float(r["fgsm_acc"])}
            runs.append(Run(path=Path(r["path"]), method=r["method"], model=r["model"], dataset="offline",
                            seed=int(r["seed"]), summary={k: float(r[k]) for k in ("best_acc", "final_acc",
                                                                                   "median_last10_acc")}
                            | {"finished": r["finished"] == "True"},
                            eval=ev, base_method=VARIANTS.get(r["method"], r["method"])))
    return runs


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "holm"
    endpoints = parse_endpoints([f"sage:{b}:{m}" for m in ("clean", "corruptions")
                                 for b in ("vanilla", "mixup", "puzzlemix", "comixup")])
    written = write_report(runs_from_csv(ROOT / "report" / "runs.csv"), out, plots=False, endpoints=endpoints)
    print("wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    main()
