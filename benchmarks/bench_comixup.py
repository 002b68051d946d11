"""Time Co-Mixup's mask optimisation and the whole mix on one batch (CPU).

Co-Mixup: Kim, Choo, Jeong & Song, ICLR 2021, https://arxiv.org/abs/2102.03065.

Usage::

    python benchmarks/bench_comixup.py --batch 100 --size 32 --repeats 5 [--num-workers 2]

Prints the median wall time of (a) the labelling solver alone over all partitions and (b) the
whole ``CoMixup`` call (saliency pooling, solver, mixing), with the default settings.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import sagemix.functional.comixup as fc
from sagemix.mixers.comixup import CoMixup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    b, s = args.batch, args.size
    x = torch.randn(b, 3, s, s, generator=g)
    y = torch.arange(b) % 10
    sal = torch.rand(b, s, s, generator=g) ** 4

    mixer = CoMixup(num_classes=10, generator=torch.Generator().manual_seed(1), num_workers=args.num_workers)
    # The solver alone, with the inputs the mixer would give it.
    cost = (-fc.block_saliency(sal, mixer.m_block_num)).numpy()
    peaks = fc.pooled_saliency_peaks(sal)
    prior = mixer._prior(b).numpy()
    jobs = []
    for lo, hi in fc.partition_bounds(b, mixer.m_part):
        init = torch.randint(0, hi - lo, (hi - lo, mixer.m_block_num, mixer.m_block_num), generator=g).numpy()
        jobs.append((cost[lo:hi], fc.compatibility_from_peaks(peaks[lo:hi], mixer.omega).numpy(), prior[lo:hi], init))

    solver_times, iters = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for c, a, p, i in jobs:
            res = fc.solve_labelling(c, a, p, i)
            iters.append(res.iterations)
        solver_times.append(time.perf_counter() - t0)

    mixer(x, y, sal)  # warm-up (creates the pool when num_workers > 0)
    mix_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mixer(x, y, sal)
        mix_times.append(time.perf_counter() - t0)
    mixer.close()

    print(f"B={b} {s}x{s} m_part={mixer.m_part} n={mixer.m_block_num} niter={mixer.niter} "
          f"num_workers={args.num_workers} torch_threads={args.threads}")
    print(f"mask optimisation (solver, {len(jobs)} partitions, serial): median {statistics.median(solver_times):.3f} s "
          f"(min {min(solver_times):.3f}, max {max(solver_times):.3f}; mean outer iterations "
          f"{statistics.mean(iters):.2f})")
    print(f"whole CoMixup call: median {statistics.median(mix_times):.3f} s "
          f"(min {min(mix_times):.3f}, max {max(mix_times):.3f})")


if __name__ == "__main__":
    main()
