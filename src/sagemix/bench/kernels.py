"""The mixing kernels alone on random saliency: SAGE's ``sage_mix`` (reference subset and exhaustive), Puzzle
Mix's and Co-Mixup's mask optimisation (graph cuts) where their kernels are installed."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..checks import check_number
from ..utils import resolve_device
from .args import check_int, parse_input_size, progress_bar
from .clock import Clock
from .report import KernelResult

__all__ = ["bench_kernels"]


def _sage_kernels(images: Tensor, saliency: Tensor, perm: Tensor, g: torch.Generator,
                  rand_pos: float) -> list[tuple[str, str, Callable[[], Any]]]:
    from ..functional import sage as F

    b, _, h, w = images.shape
    every = F.all_shifts(h, w, device=images.device)
    subset = F.candidate_shifts(h, w, rand_pos=rand_pos, generator=g, device=images.device)
    k = subset.shape[0]
    sal = F.gaussian_smooth(saliency)
    return [
        (f"sage_mix (K={k})", f"{k} random shifts of {every.shape[0]} (rand_pos={rand_pos}), objective + mix",
         lambda: F.sage_mix(images, sal, perm, 0.5, subset)),
        (f"sage_mix (exhaustive, K={every.shape[0]})", "every shift with overlap, objective + mix",
         lambda: F.sage_mix(images, sal, perm, 0.5, every)),
    ]


def _puzzlemix_kernels(images: Tensor, saliency: Tensor, perm: Tensor, labels: Tensor, num_classes: int,
                       seed: int) -> list[tuple[str, str, Callable[[], Any]]]:
    from ..functional.puzzlemix import graphcut_mask
    from ..functional.graphcut import import_gco
    from ..mixers import create_mixer

    import_gco()  # a clear ImportError naming the extra when gco-wrapper is missing
    h, w = images.shape[2:]
    images01 = (images - images.amin()) / (images.amax() - images.amin())
    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    for n in (2, 4, 8, 16):
        if h % n or w % n:
            continue
        jobs.append((f"puzzlemix graphcut_mask (n={n})", f"{n}x{n} grid, {images.shape[0]} graph cuts (alpha-beta "
                     "swap, 3 labels), in this process",
                     lambda n=n: graphcut_mask(images01, saliency, perm, 0.5, grid_size=n)))
    mixer = create_mixer("puzzlemix", num_classes=num_classes, generator=torch.Generator().manual_seed(seed))
    fake_grad = saliency[:, None].expand_as(images).contiguous()
    sal = mixer.reduce_saliency(fake_grad)
    params = mixer.make_params(images, labels, sal)  # one draw (its grid side n), replayed by every call
    jobs.append(("puzzlemix mixer", f"mixer.apply of one draw (n={params.grid_size}): cuts, transport, mix; defaults",
                 lambda: mixer.apply(images, labels, params, sal)))
    return jobs


def _comixup_kernels(images: Tensor, saliency: Tensor, labels: Tensor, num_classes: int,
                     seed: int) -> list[tuple[str, str, Callable[[], Any]]]:
    from ..functional.comixup import (block_saliency, compatibility_from_peaks, initial_labels,
                                     pooled_saliency_peaks, solve_labelling)
    from ..mixers import create_mixer

    mixer = create_mixer("comixup", num_classes=num_classes, generator=torch.Generator().manual_seed(seed))
    fake_grad = saliency[:, None].expand_as(images).contiguous()
    sal = mixer.reduce_saliency(fake_grad)
    m_part, n = int(mixer.m_part), int(mixer.m_block_num)
    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    m = min(m_part, images.shape[0])
    if m >= 2 and min(images.shape[2:]) >= n:
        part = sal[:m].float()
        cost = (-block_saliency(part, n)).cpu().numpy()
        compat = compatibility_from_peaks(pooled_saliency_peaks(part, int(mixer.pool_size)).cpu(), mixer.omega).numpy()
        prior = torch.full((m,), 1.0 / m, dtype=torch.float64).numpy()
        init = initial_labels(m, m, n, torch.Generator().manual_seed(seed))[0].numpy()
        jobs.append((f"comixup solve_labelling (1 partition of {m})",
                     f"the mask optimisation of one partition: {mixer.niter} sweeps of graph cuts over {m} outputs "
                     f"on a {n}x{n} grid", lambda: solve_labelling(cost, compat, prior, init)))
    parts = -(-images.shape[0] // m_part)
    params = mixer.make_params(images, labels, sal)  # one draw, replayed by every call
    jobs.append(("comixup mixer", f"mixer.apply of one draw: {parts} partition labellings and the mix; defaults",
                 lambda: mixer.apply(images, labels, params, sal)))
    return jobs


def bench_kernels(*, input_size: Any = 32, batch_size: int = 100, device: Any = "cpu", repeats: int = 5,
                  warmup: int = 1, seed: int = 0, num_classes: int = 10, rand_pos: float = 0.01,
                  include: Sequence[str] = ("sage", "puzzlemix", "comixup"),
                  progress: bool = True) -> list[KernelResult]:
    """Time the mixing kernels alone on a random batch and a random (smooth, positive) saliency.

    Args:
        input_size: ``H`` or ``(H, W)``.
        batch_size: B.
        device: where to run (Puzzle Mix's and Co-Mixup's graph cuts run on the CPU regardless).
        repeats: timed calls per kernel (the median is reported).
        warmup: untimed calls first.
        seed: seeds the batch, the saliency and the random draws.
        num_classes: K for the labels the mixers receive.
        rand_pos: SAGE's fraction of shifts tried (0.01 gives K = 39 at 32x32).
        include: which kernels: ``"sage"``, ``"puzzlemix"``, ``"comixup"``.
        progress: show a tqdm progress bar.

    Returns:
        One :class:`KernelResult` per kernel; a kernel whose module or extra is missing has ``error`` set.
    """
    h, w = parse_input_size(input_size)
    batch_size = check_int(batch_size, "batch_size", 1)
    repeats = check_int(repeats, "repeats", 1)
    warmup = check_int(warmup, "warmup", 0)
    dev = resolve_device(device)
    check_number(rand_pos, "rand_pos", low=0.0, high=1.0, low_open=True)
    known = ("sage", "puzzlemix", "comixup")
    for k in include:
        if k not in known:
            raise ValueError(f"unknown kernel {k!r} in include; expected some of {list(known)}")
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, h, w, generator=g).to(dev)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g).to(dev)
    # A smooth positive saliency: a few random blobs per image.
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    centres = torch.rand(batch_size, 3, 2, generator=g) * torch.tensor([h, w])
    sal = sum(torch.exp(-((yy - centres[:, j, 0, None, None]) ** 2 + (xx - centres[:, j, 1, None, None]) ** 2)
                        / (2 * (0.15 * max(h, w)) ** 2)) for j in range(3))
    sal = (sal + 1e-3 * torch.rand(batch_size, h, w, generator=g)).to(dev)
    perm = torch.randperm(batch_size, generator=g).to(dev)

    jobs: list[tuple[str, str, Callable[[], Any]] | KernelResult] = []
    for k in include:
        try:
            if k == "sage":
                jobs += _sage_kernels(images, sal, perm, g, rand_pos)
            elif k == "puzzlemix":
                jobs += _puzzlemix_kernels(images, sal, perm, labels, num_classes, seed)
            else:
                jobs += _comixup_kernels(images, sal, labels, num_classes, seed)
        except (ImportError, ValueError, AttributeError) as e:
            jobs.append(KernelResult(k, error=f"{type(e).__name__}: {e}"))
    out: list[KernelResult] = []
    clock = Clock(dev)
    n_jobs = sum(1 for j in jobs if not isinstance(j, KernelResult))
    with progress_bar(n_jobs * (warmup + repeats), "kernels", progress) as bar, torch.no_grad():
        for job in jobs:
            if isinstance(job, KernelResult):
                out.append(job)
                continue
            name, detail, fn = job
            bar.set_postfix_str(name)
            try:
                for _ in range(warmup):
                    fn()
                    bar.update(1)
                for _ in range(repeats):
                    clock.time(name, fn)
                    bar.update(1)
                out.append(KernelResult(name, clock.median(name), detail))
            except (ImportError, ValueError, TypeError, RuntimeError) as e:
                out.append(KernelResult(name, detail=detail, error=f"{type(e).__name__}: {e}"))
    return out
