"""``sagemix report RUN_DIRS... --out DIR``: paper-style tables (Markdown + CSV) and plots from run folders."""
from __future__ import annotations

import argparse

from ._common import add_command

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Collect run folders (a folder that is not a run is searched for runs) and write report.md with:
clean accuracy (best, final, median of the last 10 epochs; mean ± std over seeds) per model and
method; corruption accuracy per corruption and mean; adversarial (FGSM) accuracy; few-shot accuracy
with 95% CIs; time per epoch and per step (wall and process CPU) relative to vanilla; for clean,
corruption-mean and FGSM accuracy the paired difference of each method to vanilla and to SAGE over
the seeds both ran, with its 95% confidence interval (* where it excludes 0); every run's own
numbers; the train/test gap; one CSV per table; accuracy-vs-cost, learning-curve and train/test-gap
plots. Missing numbers (no evaluation run) are shown as '—', never invented.
"""

EXAMPLES = """examples:
  sagemix report runs/offline --out runs/offline/report      # every run folder under runs/offline
  sagemix report runs/sage-s0 runs/sage-s1 runs/vanilla-s0 --out report --no-plots
  sagemix report runs/offline --out report --clean-metric median_last10_acc --ci bootstrap
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``report`` subcommand."""
    from ..report.paired import CLEAN_KEYS, REFERENCES
    from ..report.stats import CI_METHODS

    p = add_command(subparsers, "report", help="tables (Markdown, CSV) and plots comparing run folders",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, or folders holding run folders")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for report.md, *.csv, *.png")
    p.add_argument("--no-plots", action="store_true", help="tables only (no matplotlib needed)")
    p.add_argument("--clean-metric", choices=CLEAN_KEYS, default="final_acc",
                   help="the clean accuracy of the paired table (default: final_acc, the last epoch's)")
    p.add_argument("--ci", choices=CI_METHODS, default="t",
                   help="paired 95%% CI: t (Student-t on the paired differences, default) or bootstrap "
                        "(percentile, 10,000 resamples, fixed seed)")
    p.add_argument("--references", nargs="+", default=list(REFERENCES), metavar="METHOD",
                   help="methods to difference against, same model and seed (default: vanilla sage)")
    p.add_argument("--endpoints", nargs="+", default=None, metavar="A:B[:METRIC]",
                   help="primary endpoints, e.g. sage:vanilla:clean sage:mixup:corruptions: a table with paired "
                        "intervals, raw and Holm-adjusted p-values over these endpoints, and verdict.json")
    p.add_argument("--gate", action="store_true",
                   help="check the gate before any verdict (a tuned, stable vanilla and a positive control: "
                        "Mixup, Manifold Mixup or CutMix beating it, Holm-corrected); see sagemix.report.verdict")
    p.add_argument("--gate-grid", nargs="+", default=None, metavar="DIR",
                   help="run folders of the gate's vanilla lr/weight-decay grid")
    return p


def run(args: argparse.Namespace) -> int:
    """Collect the runs, write the report and print its Markdown."""
    from ..report import collect_runs, write_report
    from ._common import check_out_dir
    from ..report.verdict import parse_endpoints, parse_gate

    check_out_dir(args.out)  # a file or an unwritable place: one line before reading the runs
    runs = collect_runs(args.runs)
    endpoints = parse_endpoints(args.endpoints, "--endpoints") if args.endpoints else ()
    gate = parse_gate({"grid": args.gate_grid} if args.gate_grid else {}, "--gate") if args.gate else None
    written = write_report(runs, args.out, plots=not args.no_plots, clean_key=args.clean_metric,
                           references=args.references, ci=args.ci, endpoints=endpoints, gate=gate)
    print(written["report"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
