"""``sagemix report RUN_DIRS... --out DIR``: paper-style tables (Markdown + CSV) and plots from run folders."""
from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]

EXAMPLES = """examples:
  sagemix report runs/offline --out runs/offline/report      # every run folder under runs/offline
  sagemix report runs/sage-s0 runs/sage-s1 runs/vanilla-s0 --out report --no-plots
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``report`` subcommand."""
    p = subparsers.add_parser(
        "report", help="tables (Markdown, CSV) and plots comparing run folders",
        description="Collect run folders (a folder that is not a run is searched for runs) and write "
                    "report.md with: clean accuracy (best, final, median of the last 10 epochs; mean ± std "
                    "over seeds) per model and method; corruption accuracy per corruption and mean; "
                    "adversarial (FGSM) accuracy; few-shot accuracy with 95% CIs; time per epoch and per "
                    "step relative to vanilla; one CSV per table; accuracy-vs-cost and learning-curve plots. "
                    "Missing numbers (no evaluation run) are shown as '—', never invented.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding run folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for report.md, *.csv, *.png")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    return p


def run(args: argparse.Namespace) -> int:
    """Collect the runs, write the report and print its Markdown."""
    from ..report import collect_runs, write_report

    runs = collect_runs(args.runs)
    written = write_report(runs, args.out, plots=not args.no_plots)
    print(written["report"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
