"""Summarise run folders: train/test accuracy, gap, convergence, times; seed statistics of a group.

Usage: python analyse.py RUN_DIR [RUN_DIR ...]   (prints a Markdown table, then seed stats of runs named *_s<k>)
"""
from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path


def load(run: str) -> dict:
    rows = [json.loads(line) for line in open(Path(run) / "metrics.jsonl")]
    cfg = json.loads((Path(run) / "config.json").read_text())
    ev = [(r["epoch"], r["test_acc"]) for r in rows if r.get("test_acc") is not None]
    e = len(rows)
    last = rows[-1]
    tail_start = max(1, math.ceil(0.9 * cfg["epochs"]))  # last 10% of the planned epochs
    tail = [a for ep, a in ev if ep >= tail_start]
    out = {"run": Path(run).name, "method": cfg["method"], "n_train": cfg.get("train_limit"),
           "epochs_done": e, "epochs": cfg["epochs"], "milestones": cfg["milestones"],
           "train_acc": last["train_acc"], "test_acc": last["test_acc"],
           "gap": last["train_acc"] - last["test_acc"],
           "median_last10": statistics.median([a for _, a in ev[-10:]]),
           "tail_change": (max(tail) - min(tail)) if e >= cfg["epochs"] and tail else None,
           "tail_delta": (tail[-1] - tail[0]) if e >= cfg["epochs"] and tail else None,
           "train_s_per_epoch": statistics.fmean(r["epoch_time_s"] for r in rows),
           "step_ms": 1000 * statistics.fmean(r["step_time_s"] for r in rows)}
    t = Path(run) / "time.txt"
    if t.is_file():
        parts = t.read_text().split()
        try:
            out["wall_s"], out["cpu_s"] = float(parts[0]), float(parts[2]) + float(parts[4])
        except (IndexError, ValueError):
            pass
    b = Path(run) / "bigeval.json"
    if b.is_file():
        out.update({f"big_{k}": v for k, v in json.loads(b.read_text()).items()})
    return out


def main() -> None:
    res = [load(r) for r in sys.argv[1:]]
    keys = ["run", "method", "n_train", "epochs_done", "epochs", "train_acc", "test_acc", "gap", "median_last10",
            "tail_change", "tail_delta", "train_s_per_epoch", "step_ms", "wall_s", "cpu_s",
            "big_train_acc_eval_mode", "big_test_acc_big"]
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in res:
        print("| " + " | ".join(f"{r[k]:.2f}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in keys) + " |")
    for metric in ("test_acc", "median_last10", "big_test_acc_big"):
        vals = [r[metric] for r in res if r.get(metric) is not None and r["epochs_done"] == r["epochs"]]
        if len(vals) >= 2:
            sd = statistics.stdev(vals)
            t = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571}.get(len(vals), 2.5)
            print(f"{metric}: n={len(vals)} mean={statistics.fmean(vals):.2f} sd={sd:.3f} "
                  f"CI95 half-width={t * sd / math.sqrt(len(vals)):.3f}  values={[round(v, 2) for v in vals]}")
    print(json.dumps(res, indent=0))


if __name__ == "__main__":
    main()
