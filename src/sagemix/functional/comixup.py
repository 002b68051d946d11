"""Co-Mixup kernels: block saliency, compatibility, the joint labelling solver and the mix.

Co-Mixup: Kim, Choo, Jeong & Song, "Co-Mixup: Saliency Guided Joint Mixup with Supermodular
Diversity", ICLR 2021, https://arxiv.org/abs/2102.03065.

A batch is cut into partitions of ``m`` inputs; each partition is solved on its own and yields
``m`` outputs. Output ``j`` has a label map ``z_j`` over an ``n x n`` block grid; each block copies
the same location of one input (or, from the second outer iteration on, blends two inputs half and
half). With ``N = n^2`` blocks and ``c_i(p) = -s_i(p)`` (normalised block saliency) the labelling
minimises (:func:`comixup_objective`)::

    sum_j sum_p c_{z_j(p)}(p) - eta/N sum_j sum_p log w_{z_j(p)}
      + beta/N sum_j sum_{p~q} d(z_j(p), z_j(q)) + gamma/N sum_{j != j'} o_j^T A o_j'

with ``w ~ Dirichlet(alpha 1_m)``, ``o_j`` the block counts of each input in output ``j`` (a half
block counts 1/2 for each parent), ``A`` the compatibility matrix (:func:`compatibility_matrix`)
and ``d`` the Potts distance the graph cuts use: 0 for equal labels, 1/4 between a half-half label
and either of its parents, 1 otherwise. A half block's cost and prior are the mean of its parents'.

The solver (:func:`solve_labelling`) is block-coordinate descent over outputs: for output ``j`` the
diversity term is linear in ``o_j`` given the other outputs; it is replaced by its thresholded
modular approximation (``r = A sum_{j' != j} o_j'``, ``r_i <- r_i 1[r_i > tau N]``, ``2 gamma/N r_i``
added to input ``i``'s unary) and one multi-label graph cut (alpha-beta swap, ``gco-wrapper``)
labels the output. With ``thres = 0``, ``set_resolve = False``, ``half_bias = 0`` and
``warm_start = True`` every cut solves the exact block subproblem starting from the current
labelling, so the objective never increases; the defaults follow the paper and its code.

Two differences from the authors' code (snu-mllab/Co-Mixup, ``match.py``), both documented and
reproduced by ``variant="research"`` (:data:`VARIANTS`; the default ``"paper"`` follows the paper):

- the capped usage term: the paper keeps ``1[r_i > tau N] r_i``; their expression
  ``(A @ p > thres).float() * A @ p`` evaluates, by Python's left-to-right precedence of ``*`` and
  ``@``, as ``(mask * A) @ p``, i.e. ``r_i = sum_k A_ik 1[r_k > tau N] p_k`` (the mask broadcast
  over A's columns, thresholding the *other* inputs' usage);
- the three most-used inputs of an output (its half-half labels): sagemix takes them with a stable
  sort (ties: the lowest index); their ``torch.topk`` breaks ties among equal counts its own way.
  Replaying their random draws, 101 of 517 masks matched the paper variant and 491 of 517 matched
  with these two changed (the rest: near-ties in the rounding of the graph-cut energy).

The solver runs in NumPy float64 on the CPU (graph cuts are CPU-only); every random draw (the
initial labelling; the Dirichlet prior is drawn by the caller) comes from a ``torch.Generator``.
Nothing here imports from the rest of sagemix outside :mod:`sagemix.functional`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int, check_probability
from .graphcut import import_gco
from .comixup_solver import (HALF_BIAS, VARIANTS, LabellingResult, comixup_objective, modular_penalty,
                             most_used, solve_labelling)
from .pool import WorkerPool

__all__ = [
    "initial_labels",
    "block_index",
    "block_saliency",
    "pooled_saliency_peaks",
    "compatibility_from_peaks",
    "compatibility_matrix",
    "comixup_objective",
    "solve_labelling",
    "LabellingResult",
    "partition_bounds",
    "comixup",
    "ComixupResult",
    "HALF_BIAS",
    "VARIANTS",
    "modular_penalty",
    "most_used",
]

# ---------------------------------------------------------------------------------------------
# Saliency and compatibility
# ---------------------------------------------------------------------------------------------
def block_index(size: int, n: int, device: torch.device | str = "cpu") -> Tensor:
    """Block row (or column) of each of ``size`` pixels on an ``n``-block axis: ``floor(y n / size)``.

    This is nearest upsampling computed exactly in integers; it equals average pooling blocks when
    ``size`` is a multiple of ``n`` and splits the remainder evenly otherwise.
    """
    return torch.arange(size, device=device) * n // size


def _check_saliency(saliency: Any, name: str = "saliency") -> Tensor:
    if not isinstance(saliency, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, H, W), got {type(saliency).__name__}")
    if saliency.ndim == 4 and saliency.shape[1] == 1:
        saliency = saliency[:, 0]
    if saliency.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W) or (B, 1, H, W), got {tuple(saliency.shape)}")
    if not saliency.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {saliency.dtype}")
    if saliency.numel() and not bool(torch.isfinite(saliency).all()):
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    if saliency.numel() and float(saliency.min()) < 0:
        raise ValueError(f"{name} must be non-negative (e.g. sqrt(mean_c grad^2)), got min {float(saliency.min())}")
    return saliency


def _check_grid(block_num: Any, height: int, width: int) -> int:
    check_int(block_num, "block_num", 1)
    if block_num > height or block_num > width:
        raise ValueError(f"block_num={block_num} needs images of at least {block_num}x{block_num} pixels, "
                         f"got {height}x{width}")
    return block_num


def block_saliency(saliency: Tensor, block_num: int) -> Tensor:
    """Average the saliency over an ``n x n`` block grid and normalise each image's map to sum 1.

    Args:
        saliency: (B, H, W) (or (B, 1, H, W)) non-negative saliency.
        block_num: n, the grid side; ``H, W >= n``.

    Returns:
        (B, n, n) float64; each map sums to 1 (uniform where an image's saliency is all zero).
    """
    saliency = _check_saliency(saliency)
    b, h, w = saliency.shape
    n = _check_grid(block_num, h, w)
    dev = saliency.device
    rows = F.one_hot(block_index(h, n, dev), n).to(torch.float64)  # (H, n)
    cols = F.one_hot(block_index(w, n, dev), n).to(torch.float64)  # (W, n)
    sums = torch.einsum("hp,bhw,wq->bpq", rows, saliency.to(torch.float64), cols)
    area = rows.sum(0)[:, None] * cols.sum(0)[None, :]
    pooled = sums / area
    total = pooled.flatten(1).sum(1).reshape(b, 1, 1)
    uniform = torch.full_like(pooled, 1.0 / (n * n))
    return torch.where(total > 0, pooled / total.clamp_min(1e-300), uniform)


def pooled_saliency_peaks(saliency: Tensor, pool_size: int = 8) -> Tensor:
    """(row, col) of each image's saliency maximum after a ``pool_size`` stride-1 average pool.

    The pool is clipped to the image (``min(pool_size, H)`` by ``min(pool_size, W)``); ties go to
    the first maximum in row-major order.

    Returns:
        (B, 2) int64 locations on the pooled map.
    """
    saliency = _check_saliency(saliency)
    check_int(pool_size, "pool_size", 1)
    b, h, w = saliency.shape
    kernel = (min(pool_size, h), min(pool_size, w))
    pooled = F.avg_pool2d(saliency[:, None].float(), kernel, stride=1)[:, 0]
    flat = pooled.flatten(1).argmax(1)
    width = pooled.shape[-1]
    return torch.stack([flat // width, flat % width], 1)


def compatibility_from_peaks(peaks: Tensor, omega: float) -> Tensor:
    """``A = (1 - omega) I + omega A^`` from the peak locations of one partition.

    ``A^[i, i']`` is the L1 distance between the peaks of inputs ``i`` and ``i'``, rescaled so that
    ``sum(A^) = m``; when all peaks coincide (or ``m = 1``) ``A^ = 0``.

    Args:
        peaks: (m, 2) integer locations (see :func:`pooled_saliency_peaks`).
        omega: weight of the distance term, in [0, 1].

    Returns:
        (m, m) float64 symmetric matrix.
    """
    if not isinstance(peaks, Tensor) or peaks.ndim != 2 or peaks.shape[1] != 2:
        raise ValueError(f"peaks must be an (m, 2) tensor, got {getattr(peaks, 'shape', type(peaks).__name__)}")
    check_probability(omega, "omega")
    m = peaks.shape[0]
    p = peaks.to(torch.float64)
    dist = (p[:, None, :] - p[None, :, :]).abs().sum(-1)
    total = dist.sum()
    a_hat = dist * (m / total) if float(total) > 0 else torch.zeros_like(dist)
    eye = torch.eye(m, dtype=torch.float64, device=peaks.device)
    return (1.0 - float(omega)) * eye + float(omega) * a_hat


def compatibility_matrix(saliency: Tensor, *, omega: float, pool_size: int = 8) -> Tensor:
    """Compatibility matrix of one partition from its (B=m, H, W) saliency (see :func:`compatibility_from_peaks`)."""
    return compatibility_from_peaks(pooled_saliency_peaks(saliency, pool_size), omega)


# ---------------------------------------------------------------------------------------------
# The whole batch
# ---------------------------------------------------------------------------------------------
def partition_bounds(batch: int, m_part: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, end)`` slices of ``m_part`` inputs; the last may be shorter."""
    check_int(m_part, "m_part", 1)
    return [(s, min(s + m_part, batch)) for s in range(0, batch, m_part)]


@dataclass
class ComixupResult:
    """What :func:`comixup` returns.

    Attributes:
        images: (B, C, H, W) mixed images in the input dtype.
        targets: (B, K) soft labels, area-weighted and normalised.
        weights: (B, B) float32; ``weights[j, i]`` is the realised pixel share of input ``i`` in output
            ``j`` (block diagonal over partitions, rows sum to 1).
        masks: one (m, n, n, m) float tensor per partition (see :class:`LabellingResult`).
        objectives: the objective history of each partition.
        partitions: the ``[start, end)`` slice of each partition.
    """

    images: Tensor
    targets: Tensor
    weights: Tensor
    masks: list[Tensor]
    objectives: list[list[float]]
    partitions: list[tuple[int, int]]


def _solve_job(job: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]) -> LabellingResult:
    cost, compat, prior, init, options = job
    return solve_labelling(cost, compat, prior, init, **options)


def initial_labels(batch: int, m_part: int, block_num: int, generator: torch.Generator | None = None
                   ) -> list[Tensor]:
    """The random initial labelling of :func:`comixup`: per partition of ``m_part`` inputs (``m`` of them),
    an (m, n, n) int64 tensor of labels in [0, m), drawn in partition order from ``generator`` (on its
    device)."""
    n = check_int(block_num, "block_num", 1)
    gdev = generator.device if generator is not None else torch.device("cpu")
    return [torch.randint(0, e - s, (e - s, n, n), generator=generator, device=gdev)
            for s, e in partition_bounds(batch, m_part)]


def comixup(images: Tensor, targets: Tensor, saliency: Tensor, prior: Tensor, *, m_part: int = 20,
            block_num: int = 4, beta: float = 0.32, gamma: float = 1.0, eta: float = 0.05, omega: float = 0.001,
            thres: float = 0.83, niter: int = 4, set_resolve: bool = True, warm_start: bool = False,
            half_bias: float = HALF_BIAS, stop_before_resolve: bool = False, variant: str = "paper",
            pool_size: int = 8, generator: torch.Generator | None = None,
            init: Sequence[Tensor] | None = None, pool: WorkerPool | None = None) -> ComixupResult:
    """Co-Mixup of a whole batch: partition, solve each partition's labelling, mix.

    Args:
        images: (B, C, H, W) float images (any float dtype; mixed in float32 and cast back).
        targets: (B, K) float soft labels.
        saliency: (B, H, W) non-negative saliency.
        prior: (B,) Dirichlet weights, one draw per partition laid end to end (each slice
            ``prior[start:end]`` positive and summing to 1).
        m_part: inputs per partition; the last partition holds ``B mod m_part`` inputs when that is
            not 0 (a batch of 1 is one partition of 1, returned unmixed).
        block_num: n, the label grid side.
        beta, gamma, eta, thres, niter, set_resolve, warm_start, half_bias, stop_before_resolve,
            variant: see :func:`solve_labelling`.
        omega: compatibility weight (:func:`compatibility_from_peaks`).
        pool_size: the average pool before the saliency peaks are located (8 in Co-Mixup).
        generator: draws the random initial labelling (when ``init`` is None).
        init: the initial labelling drawn before, :func:`initial_labels` (then ``generator`` is unused).
        pool: an optional :class:`sagemix.functional.pool.WorkerPool` that solves the partitions in
            parallel (the result does not depend on it: all random draws happen here).

    Returns:
        ComixupResult.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a floating (B, C, H, W) tensor, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    b, c, h, w = images.shape
    saliency = _check_saliency(saliency)
    if tuple(saliency.shape) != (b, h, w):
        raise ValueError(f"saliency must have shape {(b, h, w)} to match images {tuple(images.shape)}, "
                         f"got {tuple(saliency.shape)}")
    if not isinstance(targets, Tensor) or targets.ndim != 2 or targets.shape[0] != b or not targets.is_floating_point():
        raise ValueError(f"targets must be a ({b}, K) float tensor of soft labels, got "
                         f"{getattr(targets, 'shape', type(targets).__name__)} {getattr(targets, 'dtype', '')}")
    if not isinstance(prior, Tensor) or prior.shape != (b,):
        raise ValueError(f"prior must be a ({b},) tensor of Dirichlet weights, got {getattr(prior, 'shape', type(prior).__name__)}")
    check_int(niter, "niter", 1)
    n = _check_grid(block_num, h, w)
    bounds = partition_bounds(b, m_part)
    dev = images.device

    # One device-to-host transfer: block costs, saliency peaks and the prior packed together.
    packed = torch.cat([-block_saliency(saliency, n).double().reshape(b, -1),
                        pooled_saliency_peaks(saliency, pool_size).double(),
                        prior.detach().double().reshape(b, 1).to(saliency.device)], dim=1).cpu()
    cost = packed[:, :n * n].reshape(b, n, n).numpy()
    peaks = packed[:, n * n:n * n + 2].long()
    prior_np = packed[:, -1].numpy()
    options = dict(beta=beta, gamma=gamma, eta=eta, thres=thres, niter=niter, set_resolve=set_resolve,
                   warm_start=warm_start, half_bias=half_bias, stop_before_resolve=stop_before_resolve,
                   variant=variant)
    if init is None:
        init = initial_labels(b, m_part, n, generator)
    elif len(init) != len(bounds) or any(not isinstance(t, Tensor) or tuple(t.shape) != (e - s, n, n)
                                         for t, (s, e) in zip(init, bounds)):
        raise ValueError(f"init must hold one (m, {n}, {n}) tensor of labels per partition of {m_part} "
                         f"(from initial_labels({b}, {m_part}, {n})), got {len(init)} tensors")
    jobs = []
    for (s, e), labels in zip(bounds, init):  # one job per partition (a handful per batch)
        compat = compatibility_from_peaks(peaks[s:e], omega).numpy()
        labels = labels if labels.device.type == "cpu" else labels.cpu()  # a CPU generator needs no copy
        jobs.append((cost[s:e], compat, prior_np[s:e], labels.numpy(), options))
    if pool is not None and len(jobs) > 1:
        results = pool.map(_solve_job, jobs)
    else:
        results = [_solve_job(job) for job in jobs]

    # Global block maps: for every output block its (up to) two sources and their shares.
    big_n = n * n
    src1 = torch.empty(b, big_n, dtype=torch.long)
    src2 = torch.empty(b, big_n, dtype=torch.long)
    share1 = torch.empty(b, big_n, dtype=torch.float64)
    for (s, e), res in zip(bounds, results):
        local = torch.from_numpy(res.masks).reshape(e - s, big_n, e - s)
        top = local.topk(min(2, e - s), dim=-1)
        src1[s:e] = top.indices[..., 0] + s
        share1[s:e] = top.values[..., 0]
        src2[s:e] = (top.indices[..., 1] if e - s > 1 else top.indices[..., 0]) + s
    back = torch.stack([share1, src1.double(), src2.double()]).to(dev)  # one host-to-device transfer
    share1, src1, src2 = back[0], back[1].long(), back[2].long()

    rows = block_index(h, n, dev)
    cols = block_index(w, n, dev)
    pix_block = (rows[:, None] * n + cols[None, :]).reshape(-1)  # (H*W,) block of every pixel
    s1 = src1[:, pix_block]  # (B, H*W)
    s2 = src2[:, pix_block]
    w1 = share1[:, pix_block].to(torch.float32)
    flat = images.reshape(b, c, h * w).to(torch.float32)
    pix = torch.arange(h * w, device=dev)
    g1 = flat[s1, :, pix[None, :]]  # (B, H*W, C)
    g2 = flat[s2, :, pix[None, :]]
    mixed = w1[..., None] * g1 + (1.0 - w1)[..., None] * g2
    mixed = mixed.permute(0, 2, 1).reshape(b, c, h, w).to(images.dtype)

    # Realised pixel shares: block areas in pixels, split between the two sources.
    area = (torch.bincount(pix_block, minlength=big_n).to(torch.float64) / (h * w))[None, :]
    weights = torch.zeros(b, b, dtype=torch.float64, device=dev)
    weights.scatter_add_(1, src1, share1 * area)
    weights.scatter_add_(1, src2, (1.0 - share1) * area)
    soft = weights.to(targets.dtype) @ targets
    soft = soft / soft.sum(1, keepdim=True).clamp_min(1e-12)
    return ComixupResult(mixed, soft, weights.to(torch.float32),
                         [torch.from_numpy(r.masks).to(torch.float32) for r in results],
                         [r.objective for r in results], bounds)
