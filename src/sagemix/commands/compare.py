"""``sagemix compare --config FILE``: train a matrix of methods x seeds (x models), evaluate, report.

Resumable: finished runs are skipped, interrupted ones resumed. See :mod:`sagemix.compare`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (add_command, add_threads_argument, auto_threads, check_methods, check_out_dir, parse_seed,
                      report_missing_extras)

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Train every (model, method, seed) of a comparison config with one recipe (in this process, through
sagemix.train), evaluate each finished run in this process too (as `sagemix eval` would, with the
config's eval flags and options), and write the report (sagemix report). Running it again continues:
runs whose summary.json says finished are not redone, interrupted ones are resumed from their
checkpoint, evaluations whose files exist are skipped.
"""

EXAMPLES = """examples:
  sagemix compare --config configs/offline_comparison.json            # run (or continue) everything
  sagemix compare --config configs/offline_comparison.json --dry-run  # the plan and each run's state
  sagemix compare --config configs/offline_comparison.json --methods vanilla sage --seeds 0
  sagemix compare --config configs/offline_comparison.json --no-eval --set device=cuda
  sagemix compare --config configs/evidence_comparison.json --jobs 2   # two runs at once, 1 thread each
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``compare`` subcommand."""
    p = add_command(subparsers, "compare", description=DESCRIPTION, examples=EXAMPLES,
                    help="train and evaluate a matrix of methods x seeds with one recipe, then report")
    p.add_argument("--config", required=True, metavar="FILE", help="the comparison JSON file")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME", help="only these methods")
    p.add_argument("--seeds", nargs="+", type=parse_seed, default=None, metavar="SEED", help="only these seeds")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME", help="only these models")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (repeatable), e.g. --set device=cuda")
    p.add_argument("--out", default=None, metavar="DIR", help="override the config's output folder")
    p.add_argument("--dry-run", action="store_true", help="print the plan and the state of each run")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs at once, each in its own process with the runs' threads (default 1: one after "
                        "the other in this process); resumable and writing the same run folders either way")
    ev = p.add_mutually_exclusive_group()
    ev.add_argument("--no-eval", action="store_true", help="skip the evaluations")
    ev.add_argument("--eval", action="store_true", help="evaluate even if the config does not ask for it")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    add_threads_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the comparison; exit status 1 when a run or an evaluation failed."""
    from ..compare import load_comparison, run_comparison
    from ..compare.config import MATRIX_KEYS
    from ..train.config import parse_overrides

    cfg = load_comparison(args.config)
    extra = parse_overrides(args.set)
    for k in MATRIX_KEYS:
        if k in extra:
            raise ValueError(f"--set {k}=... is not allowed: the comparison matrix sets {k!r} "
                             "(use --methods/--models/--seeds/--out)")
    cfg.overrides.update(extra)
    threads = getattr(args, "threads", "auto")
    if threads != "auto" or "threads" not in cfg.overrides:  # --threads, else the config's, else auto
        cfg.overrides["threads"] = auto_threads() if threads == "auto" else threads
    # Names checked (registry methods and the config's variants; the config's own list was checked when it
    # loaded), and methods whose extra is missing dropped, before any work.
    methods = None
    if args.methods is not None:
        variants = {v.lower(): v for v in cfg.variants}
        methods = [variants[m.lower()] if m.lower() in variants else check_methods([m])[0] for m in args.methods]
    base = {m: cfg.variants.get(m, {}).get("method", m) for m in cfg.methods + (methods or [])}
    missing_base = report_missing_extras(sorted(set(base.values())), "compare")
    missing = {m: missing_base[b] for m, b in base.items() if b in missing_base}
    if missing:
        cfg.methods = [m for m in cfg.methods if m not in missing]
        cfg.method_overrides = {m: v for m, v in cfg.method_overrides.items() if m not in missing}
        methods = None if methods is None else [m for m in methods if m not in missing]
        if not cfg.methods or methods == []:
            raise ValueError("compare: every method asked for needs a missing extra: "
                             + "; ".join(f"{m} {why}" for m, why in missing.items()))
    if args.out:
        cfg.out = args.out
        cfg.report_out = None
    option = "--out" if args.out else f"the comparison's 'out' ({args.config})"
    if args.dry_run:  # nothing is written: only say whether the folder could be
        if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
            raise ValueError(f"{option} {str(cfg.out)!r} is a file; expected a folder")
    else:
        check_out_dir(cfg.out, option)
    evaluate = False if args.no_eval else (True if args.eval else None)
    only = {"methods": methods, "seeds": args.seeds, "models": args.models}
    result = run_comparison(cfg, only=only, dry_run=args.dry_run, evaluate=evaluate, report=not args.no_report,
                            jobs=args.jobs)
    if args.dry_run:
        return 0
    print(f"trained {len(result['trained'])}, resumed {len(result['resumed'])}, skipped {len(result['skipped'])} "
          f"(finished), evaluated {len(result['evaluated'])}, failed {len(result['failed'])}")
    for name, err in result["failed"].items():
        print(f"  failed: {name}: {err}")
    return 1 if result["failed"] else 0
