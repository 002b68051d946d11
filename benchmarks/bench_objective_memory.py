"""Memory of ``MixStep.objective`` + one backward against ``MixStep.__call__`` (one measurement, no test).

``objective`` keeps the clean pass's graph alive until the single backward when the method keeps its
clean loss (SAGE ``update_ratio < 1``, Co-Mixup, Puzzle Mix with ``clean_lam > 0``); ``step()``
back-propagates the clean loss first and frees that graph before the mixed forward. Two measures, each
in a fresh child process per (method, mode), on CPU, one training step of PreActResNet18 (width 64)
on random 32x32 images after the model and the batch exist:

- ``rss_mb``: growth of the peak RSS over the step (``resource.getrusage(...).ru_maxrss`` after the
  step minus before it; the process's first step, so one-time allocations are in both modes);
- ``tensor_mb``: the peak of the bytes of the tensors created during the step and alive at once, from
  ``torch.profiler``'s memory timeline (``profile_memory=True``; the creations and destructions that
  ``export_memory_timeline`` plots), in a run apart from the RSS one.

Usage: python benchmarks/bench_objective_memory.py [--methods sage mixup puzzlemix] [--batch 64] [--out results/objective_memory.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import torch


def measure(method: str, mode: str, measure_kind: str, batch: int, size: int, width: int) -> float:
    """One step in this process; MB grown (``rss``) or the torch allocator's peak (``tensor``)."""
    from sagemix import MixStep, create_mixer
    from sagemix.models import create_model

    torch.manual_seed(0)
    model = create_model("preactresnet18", num_classes=10, width=width)
    step = MixStep(model, create_mixer(method, num_classes=10, generator=torch.Generator().manual_seed(0)))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 3, size, size, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def run() -> None:
        if mode == "step":
            step(x, y)
        else:
            step.objective(x, y).loss.backward()

    if measure_kind == "rss":
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action, MemoryProfile  # what export_memory_timeline reads

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run()
    live = peak = 0
    for _, action, _, size in MemoryProfile(prof.profiler.kineto_results).timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["sage", "puzzlemix", "mixup"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--out", default=None, help="also write the table as JSON here")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "MODE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        print(measure(*args.child, args.batch, args.size, args.width))
        return
    rows = []
    for method in args.methods:
        row = {"method": method}
        for mode in ("step", "objective"):
            for kind in ("rss", "tensor"):
                cmd = [sys.executable, __file__, "--batch", str(args.batch), "--size", str(args.size), "--width",
                       str(args.width), "--child", method, mode, kind]
                r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
                                   check=True)
                row[f"{mode}_{kind}_mb"] = round(float(r.stdout.split()[-1]), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        from sagemix.utils import atomic_write_json

        atomic_write_json(args.out, {"model": f"preactresnet18 width {args.width}", "batch": args.batch,
                                     "size": args.size, "device": "cpu", "rows": rows})


if __name__ == "__main__":
    main()
