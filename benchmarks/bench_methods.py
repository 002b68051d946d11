"""Per-method training-step cost: every mixing method relative to vanilla, measured in one run.

The setting of the SAGE paper's cost comparison ("Saliency-Guided Mixup with Optimal Rearrangements",
Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113): a CIFAR-size PreActResNet18 (32x32 inputs,
10 classes) at batch 100. One step is ``MixStep`` (clean saliency pass where the method has one, the
mix, the mixed forward/backward) plus an SGD step. The methods are interleaved (each timed round runs
one step of every method), the median over the rounds is reported, and each ratio is to vanilla's
median from the same run. Prints the Markdown table of :mod:`sagemix.bench` (step time, ratio, the
saliency pass and the mixer alone, step memory) and, unless ``--no-kernels``, the kernels alone.

Usage:
    python benchmarks/bench_methods.py                      # CPU, every method, 10 steps each
    python benchmarks/bench_methods.py --device cuda --steps 50
    python benchmarks/bench_methods.py --methods vanilla sage puzzlemix --steps 5 --json out.json
    python benchmarks/bench_methods.py --threads 1      # on a shared, loaded CPU machine
"""
from __future__ import annotations

import argparse
import json
import sys

from sagemix.bench import bench_kernels, bench_methods


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    p.add_argument("--model", default="preactresnet18")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--input-size", default="32")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    p.add_argument("--no-kernels", action="store_true")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    report = bench_methods(args.methods, model=args.model, num_classes=args.num_classes,
                           input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                           steps=args.steps, warmup=args.warmup)
    if not args.no_kernels:
        report.kernels = bench_kernels(input_size=args.input_size, batch_size=args.batch_size, device=args.device,
                                       num_classes=args.num_classes)
    print(report.to_markdown())
    print("ratios to vanilla: " + ", ".join(f"{k} {v:.2f}" for k, v in report.ratios().items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
