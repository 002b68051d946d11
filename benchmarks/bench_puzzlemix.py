"""Time Puzzle Mix's mask optimisation per grid side (Kim, Choo & Song, ICML 2020, arXiv:2009.06962).

Prints, for each grid side n, the median wall time of
- ``mask``: the graph-cut mask (block unaries, data smoothness, int energy, B alpha-beta swap cuts),
- ``cuts``: the B gco calls alone (in-process or in the pool),
- ``transport``: the two greedy transport plans and the block moves,
- ``total``: :func:`sagemix.functional.puzzlemix.puzzle_mix` end to end,

on a random batch with a peaked saliency (CIFAR shape by default)::

    python benchmarks/bench_puzzlemix.py --batch 100 --size 32 --repeats 5 --workers 0 --threads 1
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from sagemix.functional import graphcut as gc
from sagemix.functional.pool import WorkerPool
from sagemix.functional import puzzlemix as pm
from sagemix.mixers.puzzlemix import CIFAR10_MEAN, CIFAR10_STD


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (pool start, caches)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, default=0, help="graph-cut processes (0: in-process)")
    p.add_argument("--grids", type=int, nargs="+", default=[2, 4, 8, 16])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = p.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    b, s = args.batch, args.size
    x = torch.randn(b, 3, s, s, generator=g).to(args.device)
    sal = (torch.rand(b, s, s, generator=g) ** 6).to(args.device)
    index = torch.randperm(b, generator=g).to(args.device)
    mean = torch.tensor(CIFAR10_MEAN, device=args.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, device=args.device).view(1, 3, 1, 1)
    pool = WorkerPool(args.workers) if args.workers > 0 else None
    print(f"B={b} {s}x{s} device={args.device} workers={args.workers} threads={torch.get_num_threads()}")
    print(f"{'n':>3} {'mask ms':>9} {'cuts ms':>9} {'transport ms':>13} {'total ms':>9}")
    try:
        for n in args.grids:
            x01 = x * std + mean

            def mask() -> object:
                return pm.graphcut_mask(x01, sal, index, 0.5, grid_size=n, pool=pool)

            blk = s // n
            s1 = pm.block_unary(sal, (blk, blk))
            dv, dh = pm.boundary_differences(x01, index, n)
            c1, c2, ev, eh = pm.smoothness_terms(s1, s1[index], dv, dh, beta_n=1.2 / (16 * n), gamma=0.5)
            u = pm.label_unary(c1.cpu(), c2.cpu(), torch.full((b,), 0.5, dtype=torch.float64), n_labels=3,
                               eta_n=0.2 / n ** 2)
            terms = pm.quantise_energy(u, ev, eh, grid_size=n)

            def cuts() -> object:
                return gc.cut_grid_batch(*terms, pool=pool)

            z, _ = mask()
            t = pm.largest_divisor_at_most(blk, 4)
            zt = z.repeat_interleave(blk // t, 1).repeat_interleave(blk // t, 2)
            ut = pm.block_unary(sal, (t, t))

            def transport() -> object:
                grid = (zt.shape[1], zt.shape[2])
                a = pm.transport_blocks(x, pm.mask_transport_plan(zt, ut), grid)
                return pm.transport_blocks(x[index], pm.mask_transport_plan(1 - zt, ut[index]), grid), a

            def total() -> object:
                return pm.puzzle_mix(x, sal, index, 0.5, grid_size=n, mean=CIFAR10_MEAN, std=CIFAR10_STD, pool=pool)

            r = args.repeats
            print(f"{n:>3} {_median_ms(mask, r):9.1f} {_median_ms(cuts, r):9.1f} {_median_ms(transport, r):13.1f} "
                  f"{_median_ms(total, r):9.1f}", flush=True)
    finally:
        if pool is not None:
            pool.close()


if __name__ == "__main__":
    main()
