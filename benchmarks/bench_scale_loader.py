"""Scale benchmark, loader half: streaming-loader throughput against the decode limit, and RSS against file count.

Measured in one run on this machine (``sagemix.bench.loader.loader_scale_report``):
  1. a generated folder of 10,000 JPEGs (256 px; and one of 40,000 with --large) and how long generating took;
  2. the decode limit: images/s of one process decoding + RandomResizedCrop(224) flat out, times the workers;
  3. the streaming loader's images/s with that many workers (its own process normalising with the CPUs the
     workers leave), and its fraction of the limit (target >= 85%); 2 and 3 alternate in 5 rounds, so a
     drift in the machine's speed moves both alike (``measure_loader_vs_decode``);
  4. the peak RSS of a fresh process serving batches from each folder (target: growth 10,000 -> 40,000 files
     <= 100 MB).

The mixer half (every mixer's time and memory at 32/64/224 px) lives in ``benchmarks/bench_scale.py``.

Usage: python benchmarks/bench_scale_loader.py --root /tmp/sagemix-scale [--large] [--loader-workers 8] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sagemix.bench.loader import loader_report_markdown, loader_scale_report

__all__ = ["add_loader_arguments", "run_loader_benchmark", "main"]


def add_loader_arguments(p: argparse.ArgumentParser) -> None:
    """The loader benchmark's options (shared by ``sagemix bench --scale``)."""
    p.add_argument("--root", default="sagemix-scale-data", help="where the JPEG folders are generated (reused)")
    p.add_argument("--files", type=int, default=10_000, help="files of the throughput folder (default 10000)")
    p.add_argument("--large", type=int, nargs="?", const=40_000, default=None, metavar="N",
                   help="also generate a folder of N files (default 40000) for the RSS comparison")
    p.add_argument("--loader-workers", type=int, default=None, help="loader workers (default: CPUs - 1, at most 8)")
    p.add_argument("--loader-batch-size", type=int, default=64, help="loader batch size (default 64)")
    p.add_argument("--loader-steps", type=int, default=100, help="timed loader batches (default 100)")
    p.add_argument("--loader-rounds", type=int, default=5,
                   help="alternating rounds of decode-limit and loader timing (default 5)")


def run_loader_benchmark(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    """Run :func:`loader_scale_report` with the parsed options."""
    return loader_scale_report(args.root, n_small=args.files, n_large=args.large, workers=args.loader_workers,
                               batch_size=args.loader_batch_size, steps=args.loader_steps,
                               rounds=args.loader_rounds, log=log)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_loader_arguments(p)
    p.add_argument("--out", default=None, help="write loader.json and loader.md into this folder")
    args = p.parse_args(argv)
    r = run_loader_benchmark(args)
    md = loader_report_markdown(r)
    print(md)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "loader.json").write_text(json.dumps(r, indent=2, default=str))
        (out / "loader.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
