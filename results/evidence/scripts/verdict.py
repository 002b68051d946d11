"""Gather each dataset's verdict into results/evidence/verdict.json.

Usage: python results/evidence/scripts/verdict.py NAME=REPORT_DIR [NAME=REPORT_DIR ...] [--out FILE]

Each REPORT_DIR is a `sagemix report` (or `sagemix compare`) output folder written with a gate and
endpoints (its verdict.json, sagemix.report.verdict.dataset_verdict); NAME is the dataset's key in
the result, e.g. fashion_mnist=runs/evidence_fmnist/report offline=runs/evidence_offline/report.
A NAME given more than once is one dataset gated in several regimes, oldest first: its entry is the
last regime's, and the earlier ones are kept whole, in order, under its "earlier_regimes".
The file is written atomically; each entry records its source folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from sagemix.utils import atomic_write_text

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "verdict.json"


def main(argv: list[str]) -> int:
    out = DEFAULT_OUT
    if "--out" in argv:
        i = argv.index("--out")
        out = Path(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    if not argv or any("=" not in a for a in argv):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    regimes: dict[str, list[dict]] = {}
    for arg in argv:
        name, folder = arg.split("=", 1)
        path = Path(folder) / "verdict.json"
        if not path.is_file():
            print(f"{path}: no verdict.json (write the report with a gate and endpoints first)", file=sys.stderr)
            return 2
        regimes.setdefault(name, []).append(json.loads(path.read_text(encoding="utf-8")) | {"source": str(folder)})
    result = {name: entries[-1] | ({"earlier_regimes": entries[:-1]} if len(entries) > 1 else {})
              for name, entries in regimes.items()}
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
