"""Copy the small files of run folders (config, summary, per-epoch metrics, evaluations) into the repository.

Usage: python results/evidence/scripts/record_runs.py SRC_DIR DEST_DIR [--checkpoints]

For every run folder under SRC_DIR (a folder with config.json), copies config.json, summary.json,
metrics.jsonl and eval/*.json of every FINISHED run to DEST_DIR/<run folder name>/ — everything `sagemix
report` reads (a run still training is left out: its files are still moving). With --checkpoints, each
run's checkpoint.pt too (about 1.5 MB at width 8), so that the runs can be evaluated on another machine,
and a comparison continued there: copy DEST_DIR back under runs/ and rerun the comparison's command.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

FILES = ("config.json", "summary.json", "metrics.jsonl")


def main(src: Path, dest: Path, checkpoints: bool = False) -> int:
    n = 0
    for cfg in sorted(src.rglob("config.json")):
        run = cfg.parent
        if "report" in run.parts or not (run / "summary.json").is_file():
            continue
        if not json.loads((run / "summary.json").read_text(encoding="utf-8")).get("finished"):
            continue
        out = dest / run.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES + (("checkpoint.pt",) if checkpoints else ()):
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
        for ev in sorted((run / "eval").glob("*.json")) if (run / "eval").is_dir() else []:
            (out / "eval").mkdir(exist_ok=True)
            shutil.copy2(ev, out / "eval" / ev.name)
        n += 1
    print(f"copied {n} runs from {src} to {dest}")
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--checkpoints"]
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(args[0]), Path(args[1]), checkpoints="--checkpoints" in sys.argv[1:]))
