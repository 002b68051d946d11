"""Scale benchmark: every mixer at 32, 64 and 224 px, SAGE's shift searches, and the streaming loader.

Three measurements, each a library function (also run by ``sagemix bench --scale --scale-parts ...``):

- ``sagemix.bench.scale.bench_mixers``: every mixer's time and peak extra memory for one batch per
  image side, the pooled mixers with and without their worker pool;
- ``sagemix.bench.scale.bench_sage_search``: SAGE's objective reached per pair and the time of the
  paper's 1% random search, the coarse-to-fine search and (on a few pairs) the exhaustive optimum;
- the loader (``benchmarks/bench_scale_loader.py``, ``sagemix.bench.loader.loader_scale_report``):
  images/s of the streaming loader on a generated folder of 256 px JPEGs against the decode limit
  measured in the same run, and its peak RSS with 10,000 and 40,000 files (``--large``).

Targets (issue 9): every mixer at 224x224, B = 64, CPU: <= 2 GiB peak and <= 5 s per batch; no
mixer's memory growing faster than the pixel count; coarse-to-fine >= the random search's objective on
>= 95% of pairs at <= 1/10 of its time at 224x224. Run::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_scale.py --batch 64 --sizes 32 64 224
    python benchmarks/bench_scale.py --parts loader --root /tmp/sagemix-scale --large   # the loader part
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

import torch

from bench_scale_loader import add_loader_arguments, run_loader_benchmark
from sagemix.bench.scale import bench_mixers, bench_sage_search, growth_lines
from sagemix.bench.loader import loader_report_markdown

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python benchmarks/bench_scale.py [--batch 64] [--sizes 32 64 224] ...``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--exhaustive-pairs", type=int, default=16)
    ap.add_argument("--parts", nargs="+", choices=("search", "mixers", "loader"), default=["search", "mixers"],
                    help="what to measure (default: search mixers; the loader part generates JPEG folders)")
    add_loader_arguments(ap)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if "search" in args.parts:
        bench_sage_search(sizes=args.sizes, batch_size=args.batch, exhaustive_pairs=args.exhaustive_pairs)
    if "loader" in args.parts:
        print(loader_report_markdown(run_loader_benchmark(args)))
    if "mixers" in args.parts:
        rows = bench_mixers(sizes=args.sizes, batch_size=args.batch, methods=args.methods, workers=args.workers,
                            repeats=args.repeats)
        if len(args.sizes) > 1:
            print("\n".join(growth_lines(rows)))
    print(f"(torch threads: {torch.get_num_threads()}; CPU cores: {os.cpu_count()})")


if __name__ == "__main__":
    main()
