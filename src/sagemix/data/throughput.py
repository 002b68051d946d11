"""Throughput measurements of the streaming loader, for ``benchmarks/bench_scale.py``.

:func:`measure_decode_limit` times decoding and transforming images in one process (the work one
worker does per image), from which the limit of ``w`` workers is ``w`` times that rate;
:func:`measure_loader` times the whole streaming loader (workers, collation, transfer and
normalisation). Their ratio says how close the loader comes to the decode limit.
"""
from __future__ import annotations

import os
import time
from typing import Any

import torch

from .stream_loader import make_stream_loader, open_image_folder

__all__ = ["measure_loader", "measure_decode_limit"]


def measure_decode_limit(folder: str | os.PathLike, n: int = 200, *, image_size: int = 224, train: bool = True,
                         seed: int = 0) -> dict[str, Any]:
    """Images per second that one process decodes and transforms (``n`` files of ``folder``).

    Returns:
        ``{"images": n, "seconds": s, "images_per_s": r}`` (one process; a loader with ``w``
        workers is limited to about ``w * r`` on ``w`` free cores).
    """
    ds = open_image_folder(folder, train=train, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    n = min(int(n), len(ds))
    ds[0]  # warm up (imports, first file open)
    t0 = time.perf_counter()
    for i in range(n):
        ds[(i, seed + i)]
    dt = time.perf_counter() - t0
    return {"images": n, "seconds": dt, "images_per_s": n / dt}


def measure_loader(folder: str | os.PathLike, workers: int = 4, batch_size: int = 64, steps: int = 20, *,
                   image_size: int = 224, device: str = "cpu", warmup: int = 2) -> dict[str, Any]:
    """Images per second served by :func:`make_stream_loader` on ``folder`` (after ``warmup`` batches).

    Returns:
        ``{"workers", "batch_size", "steps", "images", "seconds", "images_per_s"}``.
    """
    ds = open_image_folder(folder, train=True, image_size=image_size, mean=(0.5,) * 3, std=(0.25,) * 3)
    loader = make_stream_loader(ds, batch_size=batch_size, train=True, device=device, workers=workers)
    dev = torch.device(device)

    def now() -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter()

    done, images, t0 = 0, 0, now()
    while done < warmup + steps:  # as many epochs as it takes
        for x, _ in loader:
            done += 1
            if done <= warmup:
                t0 = now()
                continue
            images += x.shape[0]
            if done == warmup + steps:
                break
    dt = now() - t0
    return {"workers": workers, "batch_size": batch_size, "steps": steps, "images": images, "seconds": dt,
            "images_per_s": images / dt if dt > 0 else float("nan")}
