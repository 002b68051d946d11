"""Folders of generated JPEG files, for tests and loader benchmarks.

:func:`make_jpeg_folder` writes ``n`` JPEGs of one size in torchvision's ImageFolder layout
(``root/class_000/000000.jpg`` ...), in one process or several (``processes``): the package's one
JPEG-folder writer (the loader benchmark, :mod:`sagemix.bench.loader`, calls it too). The pixels are smooth random colour gradients plus a little
noise (so the files compress and decode like photographs rather than like white noise), drawn
from a seeded generator: the same arguments give the same files.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..checks import check_int
from .decode import pil

__all__ = ["make_jpeg_folder"]


def make_jpeg_folder(root: str | os.PathLike, n: int, size: int | tuple[int, int] = 64, classes: int = 10,
                     seed: int = 0, quality: int = 90, start: int = 0, processes: int = 1) -> Path:
    """Write ``n`` JPEG files of ``size`` (H, W) spread round-robin over ``classes`` class folders.

    Files are numbered from ``start`` (``class_<(start + i) % classes>/<start + i>.jpg``). With
    ``processes`` p > 1, process k writes the files ``[k * n / p, (k + 1) * n / p)`` with seed
    ``seed + k``, so the folder depends on ``p`` (the same arguments still give the same files).

    Args:
        root: the folder to create (may exist; existing files of the same names are overwritten).
        n: number of images (>= 1).
        size: (H, W) or int.
        classes: number of class folders ``class_000``, ``class_001``, ... (1 <= classes <= n).
        seed: seed of the pixels.
        quality: JPEG quality (1-95).
        start: number of the first file (>= 0).
        processes: writer processes (>= 1).

    Returns:
        ``root`` as a Path.
    """
    for arg, val, lo in (("n", n, 1), ("classes", classes, 1), ("quality", quality, 1), ("processes", processes, 1),
                         ("start", start, 0)):
        check_int(val, arg, lo)
    if classes > n + start:
        raise ValueError(f"classes must be <= n={n} (every class folder holds an image), got {classes}")
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    root = Path(root)
    if processes > 1:
        bounds = [n * k // processes for k in range(processes + 1)]
        with ProcessPoolExecutor(processes) as pool:
            jobs = [pool.submit(make_jpeg_folder, root, bounds[k + 1] - bounds[k], size, classes, seed + k, quality,
                                start + bounds[k]) for k in range(processes) if bounds[k + 1] > bounds[k]]
            for job in jobs:
                job.result()
        return root
    image_mod = pil()
    dirs = [root / f"class_{c:03d}" for c in range(classes)]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    for i in range(start, start + n):
        a, b, c = rng.uniform(0, 255, (3, 1, 1, 3)).astype(np.float32)
        img = a + (b - a) * yy + (c - a) * xx * (1 - yy) + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
        arr = np.clip(img, 0, 255).astype(np.uint8)
        image_mod.fromarray(arr, "RGB").save(dirs[i % classes] / f"{i:06d}.jpg", quality=quality)
    return root
