"""Scale benchmark, mixer half: every mixer at 32, 64 and 224 px, and SAGE's shift searches (CPU).

- :func:`bench_mixers`: for every registered mixer and image side, the wall time of one batch
  (best of ``repeats`` after one warm-up call) and the peak extra resident memory of the first call
  (:class:`sagemix.bench.memory.PeakMemory`: RSS sampled every ms, minus the RSS before the call;
  the pool workers' own memory is not included). Puzzle Mix, Co-Mixup and SaliencyMix run both in
  process and with a worker pool (``num_workers``). The gradient-saliency mixers get a smoothed
  random saliency map (:func:`blob_saliency`); SaliencyMix computes its own with OpenCV.
- :func:`bench_sage_search`: SAGE's rearrangement objective reached per pair, and the time, of the
  paper's 1% random search, the coarse-to-fine search (:mod:`sagemix.functional.sage_search`) and,
  where feasible (``exhaustive_pairs`` pairs at most), the exhaustive optimum.
- :func:`growth_lines`: each mixer's memory and time growth against the pixel count.

The loader half is :func:`sagemix.bench.loader.loader_scale_report`. Both run from
``benchmarks/bench_scale.py`` and ``sagemix bench --scale``.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from ..functional.sage import all_shifts, candidate_shifts, gaussian_smooth, prepare_maps
from ..functional.sage_objective import objective_from_maps
from ..functional.sage_search import coarse_to_fine_search
from ..mixers.registry import create_mixer, list_mixers
from .memory import PeakMemory

__all__ = ["POOLED", "blob_saliency", "bench_mixers", "bench_sage_search", "growth_lines"]

#: The mixers that can run with a worker pool (``num_workers``).
POOLED = ("puzzlemix", "comixup", "saliencymix")
_NUM_CLASSES = 10


def blob_saliency(batch: int, size: int, *, generator: torch.Generator, blobs: int = 3) -> torch.Tensor:
    """(B, size, size) saliency-like maps: a few Gaussian blobs of random place, width and height plus 5%
    noise, smoothed like SAGE's saliency (5x5, sigma 1)."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.rand(batch, blobs, 2, generator=generator) * size
    r = (0.05 + 0.2 * torch.rand(batch, blobs, 1, 1, generator=generator)) * size
    amp = torch.rand(batch, blobs, 1, 1, generator=generator)
    d2 = (yy - c[..., 0, None, None]) ** 2 + (xx - c[..., 1, None, None]) ** 2
    s = (amp * torch.exp(-d2 / (2 * r ** 2))).sum(1)
    return gaussian_smooth(s + 0.05 * torch.rand(batch, size, size, generator=generator))


def _mixer_kwargs(name: str, size: int, workers: int) -> dict[str, Any]:
    kw: dict[str, Any] = {"num_classes": _NUM_CLASSES, "generator": torch.Generator().manual_seed(0)}
    if name in POOLED:
        kw["num_workers"] = workers
    if name == "saliencymix":
        kw["prob"] = 1.0
    if name == "comixup" and size < 32:
        kw["m_block_num"] = 4
    return kw


def bench_mixers(*, sizes: Sequence[int] = (32, 64, 224), batch_size: int = 64, methods: Sequence[str] | None = None,
                 workers: Sequence[int] = (0, 2), repeats: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """Time and peak memory of one batch for every mixer and image side (CPU).

    Args:
        sizes: image sides (square images).
        batch_size: B.
        methods: mixer names (default: every registered mixer).
        workers: pool sizes tried for the pooled mixers (:data:`POOLED`); 0 = in process.
        repeats: timed calls after the first (measured) one; the time is the best of all.
        progress: print each row as it is measured.

    Returns:
        One dict per (method, size, workers): ``method, size, batch, workers, seconds, peak_mib``.
    """
    rows = []
    for name in methods or list_mixers():
        for size in sizes:
            g = torch.Generator().manual_seed(size)
            x = torch.randn(batch_size, 3, size, size, generator=g)
            y = torch.randint(0, _NUM_CLASSES, (batch_size,), generator=g)
            sal = blob_saliency(batch_size, size, generator=g)
            for nw in (workers if name in POOLED else (0,)):
                mixer = create_mixer(name, **_mixer_kwargs(name, size, nw))
                try:
                    if mixer.pool is not None:  # start the pool outside the measurement
                        mixer(x[:2], y[:2], sal[:2] if name != "saliencymix" else None)
                    s = sal if getattr(mixer, "needs_gradient_saliency", False) else None
                    params = mixer.make_params(x, y, s)  # one draw, replayed: every repeat does the same work
                    with PeakMemory(torch.device("cpu")) as mem:
                        t = time.perf_counter()
                        mixer.apply(x, y, params, s)
                        best = time.perf_counter() - t
                    for _ in range(repeats):
                        t = time.perf_counter()
                        mixer.apply(x, y, params, s)
                        best = min(best, time.perf_counter() - t)
                finally:
                    mixer.close()
                row = {"method": name, "size": size, "batch": batch_size, "workers": nw, "seconds": best,
                       "peak_mib": mem.peak / 2 ** 20}
                rows.append(row)
                if progress:
                    print(f"{name:15s} {size:4d} px  workers {nw}  {best:8.3f} s  {row['peak_mib']:8.1f} MiB",
                          flush=True)
    return rows


def bench_sage_search(*, sizes: Sequence[int] = (32, 64, 224), batch_size: int = 64, exhaustive_pairs: int = 16,
                      top_k: int = 4, coarse_size: int = 16, progress: bool = True) -> list[dict[str, Any]]:
    """SAGE's objective reached per pair and time of the random 1%, coarse-to-fine and exhaustive searches.

    Args:
        sizes: image sides.
        batch_size: pairs per size (B, with a random permutation and a random prior in [0.3, 0.6]).
        exhaustive_pairs: the exhaustive optimum is computed on the first this-many pairs (0: none).
        top_k, coarse_size: the coarse-to-fine options.
        progress: print each size's summary.

    Returns:
        One dict per size: times (s) of the three searches (the exhaustive one per pair), the share of
        pairs where coarse-to-fine >= random (``c2f_ge_random``), the shares reaching the optimum
        (``c2f_opt``, ``random_opt``) and the mean objective gaps to the optimum.
    """
    rows = []
    for size in sizes:
        g = torch.Generator().manual_seed(1000 + size)
        sal = blob_saliency(batch_size, size, generator=g)
        perm = torch.randperm(batch_size, generator=g)
        prior = 0.3 + 0.3 * torch.rand(batch_size, generator=g)
        a, p = prepare_maps(sal, perm, prior)
        t = time.perf_counter()
        shifts = candidate_shifts(size, size, rand_pos=0.01, generator=g)
        j_rand = objective_from_maps(a, p, shifts).max(dim=1).values
        t_rand = time.perf_counter() - t
        t = time.perf_counter()
        _, j_c2f = coarse_to_fine_search(a, p, top_k=top_k, coarse_size=coarse_size)
        t_c2f = time.perf_counter() - t
        row: dict[str, Any] = {"size": size, "batch": batch_size, "random_candidates": int(shifts.shape[0]),
                               "random_s": t_rand, "c2f_s": t_c2f, "speedup": t_rand / max(t_c2f, 1e-9),
                               "c2f_ge_random": float((j_c2f >= j_rand - 1e-6).float().mean())}
        k = min(exhaustive_pairs, batch_size)
        if k > 0:
            t = time.perf_counter()
            j_opt = objective_from_maps(a[:k], p[:k], all_shifts(size, size)).max(dim=1).values
            row["exhaustive_s_per_pair"] = (time.perf_counter() - t) / k
            row["exhaustive_pairs"] = k
            row["c2f_opt"] = float((j_c2f[:k] >= j_opt - 1e-6).float().mean())
            row["random_opt"] = float((j_rand[:k] >= j_opt - 1e-6).float().mean())
            row["c2f_gap"] = float((j_opt - j_c2f[:k]).mean())
            row["random_gap"] = float((j_opt - j_rand[:k]).mean())
        rows.append(row)
        if progress:
            extra = (f"; vs exhaustive ({k} pairs, {row['exhaustive_s_per_pair']:.3f} s/pair): optimum reached "
                     f"c2f {row['c2f_opt']:.0%} random {row['random_opt']:.0%}, mean gap c2f {row['c2f_gap']:.2e} "
                     f"random {row['random_gap']:.2e}") if k > 0 else ""
            print(f"SAGE search {size:4d} px B={batch_size}: random 1% ({row['random_candidates']} shifts) "
                  f"{t_rand:.3f} s, coarse-to-fine {t_c2f:.3f} s ({row['speedup']:.1f}x faster); "
                  f"c2f >= random on {row['c2f_ge_random']:.1%} of pairs{extra}", flush=True)
    return rows


def growth_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Per (mixer, pool): memory and time growth from the smallest to the largest size against the pixel
    count, and whether the largest size is within the targets (<= 2 GiB, <= 5 s per batch)."""
    lines = []
    by = {}
    for r in rows:
        by.setdefault((r["method"], r["workers"]), []).append(r)
    for (name, nw), rs in by.items():
        rs = sorted(rs, key=lambda r: r["size"])
        lo, hi = rs[0], rs[-1]
        pixels = (hi["size"] / lo["size"]) ** 2
        mem = hi["peak_mib"] / max(lo["peak_mib"], 1e-3)
        tim = hi["seconds"] / max(lo["seconds"], 1e-9)
        ok = "ok" if hi["peak_mib"] <= 2048 and hi["seconds"] <= 5 else "OVER TARGET"
        lines.append(f"{name:15s} workers {nw}: {lo['size']}->{hi['size']} px: pixels x{pixels:.0f}, memory "
                     f"x{mem:.1f}, time x{tim:.1f}; at {hi['size']} px {hi['seconds']:.2f} s {hi['peak_mib']:.0f} MiB "
                     f"[{ok}]")
    return lines
