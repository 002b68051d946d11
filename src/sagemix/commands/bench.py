"""``sagemix bench``: the cost of one training step of each method, and of the mixing kernels alone.

See :mod:`sagemix.bench` for what is measured and how.
"""
from __future__ import annotations

import argparse
import json

from ._common import (add_command, add_progress_arguments, add_threads_argument, apply_threads, check_methods,
                      check_mixer_options, check_out_dir, parse_seed, progress_enabled, report_missing_extras)

__all__ = ["add_parser", "run", "SCALE_PARTS"]

#: The parts of ``sagemix bench --scale``.
SCALE_PARTS = ("loader", "search", "mixers")

DESCRIPTION = """\
Time one training step (MixStep + SGD step) of each method on one model, batch and device (median of
interleaved steps after warm-up; each method's ratio to vanilla measured in the same run), the
saliency pass and the mixer alone, peak memory, and the mixing kernels alone (SAGE's sage_mix at
K=39 and exhaustive, Puzzle Mix's and Co-Mixup's mask optimisation). Prints a Markdown table; --out
writes bench.json and bench.md.
"""

EXAMPLES = """examples:
  sagemix bench                                   # every method, PreActResNet18, 32x32, B=100, CPU
  sagemix bench --methods sage mixup cutmix --model smallnet --batch-size 32 --steps 5
  sagemix bench --device cuda --steps 50 --out bench-h100      # writes bench.json and bench.md there
  sagemix bench --kernels-only --batch-size 100                # sage_mix K=39 vs exhaustive, graph cuts
  sagemix bench --methods sage --mixer-kwargs '{"sage": {"rand_pos": 1.0}}'
  sagemix bench --scale --scale-root /tmp/scale --scale-large   # streaming loader vs decode limit, RSS 10k vs 40k
  sagemix bench --scale --scale-parts search mixers --threads 1  # SAGE's searches and every mixer at 32/64/224 px
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``bench`` subcommand."""
    p = add_command(subparsers, "bench", help="time and peak memory of one training step per method, ratios to vanilla",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods to time (default: all registered); vanilla is always included")
    p.add_argument("--model", default="preactresnet18", help="model name (default: preactresnet18)")
    p.add_argument("--num-classes", type=int, default=10, help="number of classes K (default: 10)")
    p.add_argument("--input-size", default="32", help="H or HxW (default: 32)")
    p.add_argument("--batch-size", type=int, default=100, help="batch size B (default: 100)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per method (default: 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps per method (default: 2)")
    p.add_argument("--seed", type=parse_seed, default=0, help="seed of the weights, batch and mixers (default: 0)")
    add_threads_argument(p)
    p.add_argument("--mixer-kwargs", default=None, metavar="JSON",
                   help='per-method options as JSON, e.g. \'{"sage": {"rand_pos": 1.0}}\'')
    p.add_argument("--no-parts", action="store_true", help="skip timing the saliency pass and mixer alone")
    p.add_argument("--no-memory", action="store_true", help="skip the peak memory measurement")
    kern = p.add_mutually_exclusive_group()
    kern.add_argument("--no-kernels", action="store_true", help="skip the kernels-alone benchmark")
    kern.add_argument("--kernels-only", action="store_true", help="only the kernels-alone benchmark")
    p.add_argument("--kernel-repeats", type=int, default=5, help="timed calls per kernel (default: 5)")
    p.add_argument("--out", default=None, metavar="DIR", help="write bench.json and bench.md into DIR")
    add_progress_arguments(p)
    scale = p.add_argument_group("scale benchmark (--scale: the streaming loader, SAGE's searches, mixers at 224 px)")
    scale.add_argument("--scale", action="store_true",
                       help="run the scale benchmark instead, the parts of --scale-parts: loader (images/s on a "
                            "generated folder of 256 px JPEGs against the decode limit measured in the same run, "
                            "and peak RSS per folder size), search (SAGE's objective and time per search) and "
                            "mixers (every mixer's time and peak memory per batch)")
    scale.add_argument("--scale-parts", nargs="+", choices=SCALE_PARTS, default=["loader"], metavar="PART",
                       help=f"parts of the scale benchmark, of {', '.join(SCALE_PARTS)} (default: loader)")
    scale.add_argument("--scale-sizes", type=int, nargs="+", default=[32, 64, 224], metavar="PX",
                       help="image sides of the search and mixers parts (default: 32 64 224)")
    scale.add_argument("--scale-batch", type=int, default=64, metavar="B",
                       help="batch size of the search and mixers parts (default: 64)")
    scale.add_argument("--scale-root", default="sagemix-scale-data", metavar="DIR",
                       help="where the JPEG folders are generated and reused (default: sagemix-scale-data)")
    scale.add_argument("--scale-files", type=int, default=10_000, metavar="N",
                       help="files of the throughput folder (default: 10000)")
    scale.add_argument("--scale-large", type=int, nargs="?", const=40_000, default=None, metavar="N",
                       help="also a folder of N files (default 40000) for the RSS comparison (generation takes "
                            "minutes)")
    scale.add_argument("--scale-workers", type=int, default=None, metavar="W",
                       help="loader workers (default: CPUs - 1, at most 8)")
    return p


def _run_scale(args: argparse.Namespace) -> int:
    """``sagemix bench --scale``: the parts of the scale benchmark named by ``--scale-parts``."""
    for arg, values in (("--scale-sizes", args.scale_sizes), ("--scale-batch", [args.scale_batch])):
        if any(v < 2 for v in values):
            raise ValueError(f"{arg} must be integers >= 2, got {values}")
    out = check_out_dir(args.out) if args.out else None  # before the work
    apply_threads(args.threads)
    say = print if progress_enabled(args.progress) else None
    md, results = [], {}
    if "loader" in args.scale_parts:
        from ..bench.loader import loader_report_markdown, loader_scale_report

        results["loader"] = loader_scale_report(args.scale_root, n_small=args.scale_files, n_large=args.scale_large,
                                                workers=args.scale_workers, log=say)
        md.append(loader_report_markdown(results["loader"]))
    if "search" in args.scale_parts or "mixers" in args.scale_parts:
        from ..bench.scale import bench_mixers, bench_sage_search, growth_lines

        if "search" in args.scale_parts:
            rows = bench_sage_search(sizes=args.scale_sizes, batch_size=args.scale_batch, progress=say is not None)
            results["search"] = rows
            md += ["## SAGE's shift searches", "", "| side | random 1% (s) | coarse-to-fine (s) | speed-up | "
                   "c2f >= random (pairs) | optimum reached: c2f / random |", "|---:|---:|---:|---:|---:|---:|"]
            md += [f"| {r['size']} | {r['random_s']:.3f} | {r['c2f_s']:.3f} | {r['speedup']:.1f}x | "
                   f"{r['c2f_ge_random']:.0%} | {r.get('c2f_opt', float('nan')):.0%} / "
                   f"{r.get('random_opt', float('nan')):.0%} |" for r in rows] + [""]
        if "mixers" in args.scale_parts:
            rows = bench_mixers(sizes=args.scale_sizes, batch_size=args.scale_batch,
                                methods=check_methods(args.methods), progress=say is not None)
            results["mixers"] = rows
            md += ["## Mixers", "", "| mixer | side | pool workers | s per batch | peak MiB |", "|---|---:|---:|---:|---:|"]
            md += [f"| {r['method']} | {r['size']} | {r['workers']} | {r['seconds']:.3f} | {r['peak_mib']:.1f} |"
                   for r in rows]
            if len(args.scale_sizes) > 1:
                md += ["", "```"] + growth_lines(rows) + ["```"]
            md.append("")
    text = "\n".join(md)
    print(text)
    if out is not None:
        from ..utils import atomic_write_json, atomic_write_text

        atomic_write_json(out / "scale.json", results)
        atomic_write_text(out / "scale.md", text)
        print(f"wrote {out / 'scale.json'} and {out / 'scale.md'}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the Markdown table, write the files."""
    if args.scale:
        return _run_scale(args)
    from ..bench import BenchReport, bench_kernels, bench_methods, device_name, parse_input_size, timing_method
    from ..utils import resolve_device

    mixer_kwargs = None
    if args.mixer_kwargs:
        try:
            mixer_kwargs = json.loads(args.mixer_kwargs)
        except json.JSONDecodeError as e:
            raise ValueError(f"--mixer-kwargs must be JSON like '{{\"sage\": {{\"rand_pos\": 1.0}}}}', "
                             f"got {args.mixer_kwargs!r} ({e})") from None
        if not isinstance(mixer_kwargs, dict) or not all(isinstance(v, dict) for v in mixer_kwargs.values()):
            raise ValueError(f"--mixer-kwargs must map method names to option objects, got {args.mixer_kwargs!r}")
    # Everything named is checked before any work: methods, their options, the output folder, extras.
    methods = check_methods(args.methods)
    if not args.kernels_only:
        from ..mixers import list_mixers

        timed = ["vanilla"] + [m for m in (methods or list_mixers()) if m != "vanilla"]
        for name, options in (mixer_kwargs or {}).items():
            if name not in timed:
                raise ValueError(f"--mixer-kwargs has options for {name!r}, which is not among the methods {timed}")
            check_mixer_options(name, options, "--mixer-kwargs", num_classes=args.num_classes)
        report_missing_extras(timed, "bench")
    out = check_out_dir(args.out) if args.out else None
    progress = progress_enabled(args.progress)
    apply_threads(args.threads)
    if args.kernels_only:
        dev = resolve_device(args.device)
        report = BenchReport(device=str(dev), device_name=device_name(dev), model="(none)",
                             input_size=parse_input_size(args.input_size), batch_size=args.batch_size,
                             num_classes=args.num_classes, steps=args.kernel_repeats, warmup=1,
                             timing=timing_method(dev), memory="not measured")
    else:
        report = bench_methods(methods, model=args.model, num_classes=args.num_classes,
                               input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                               steps=args.steps, warmup=args.warmup, seed=args.seed, mixer_kwargs=mixer_kwargs,
                               measure_parts=not args.no_parts, measure_memory=not args.no_memory,
                               progress=progress)
    if not args.no_kernels:
        report.kernels = bench_kernels(input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                                       repeats=args.kernel_repeats, seed=args.seed, num_classes=args.num_classes,
                                       progress=progress)
    md = report.to_markdown()
    print(md)
    if out is not None:
        from ..utils import atomic_write_json, atomic_write_text

        atomic_write_json(out / "bench.json", report.to_dict())
        atomic_write_text(out / "bench.md", md)
        print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
