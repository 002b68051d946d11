"""Copy the small files of run folders (config, summary, per-epoch metrics, evaluations) into the repository.

Usage: python results/evidence/scripts/record_runs.py SRC_DIR DEST_DIR

For every run folder under SRC_DIR (a folder with config.json), copies config.json, summary.json,
metrics.jsonl and eval/*.json to DEST_DIR/<run folder name>/ — everything `sagemix report` reads, without
the checkpoints. Runs still training are copied too (their summary says finished: false).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

FILES = ("config.json", "summary.json", "metrics.jsonl")


def main(src: Path, dest: Path) -> int:
    n = 0
    for cfg in sorted(src.rglob("config.json")):
        run = cfg.parent
        if "report" in run.parts or not (run / "metrics.jsonl").is_file():
            continue
        out = dest / run.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
        for ev in sorted((run / "eval").glob("*.json")) if (run / "eval").is_dir() else []:
            (out / "eval").mkdir(exist_ok=True)
            shutil.copy2(ev, out / "eval" / ev.name)
        n += 1
    print(f"copied {n} runs from {src} to {dest}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
