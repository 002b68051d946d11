"""Generator-driven draws of the mixers: Beta and Gamma samples, permutations, the apply coin.

Every draw comes from an explicit CPU :class:`torch.Generator` (never NumPy's or Python's global
state), so the same seed gives the same draws.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from ..checks import check_alpha, check_int, check_number, is_number
from ..debug import to_device

__all__ = ["sample_beta", "sample_gamma", "random_permutation", "draw_apply", "draw_lam_perm",
           "sample_dirichlet"]


def sample_beta(alpha: float, beta: float | None = None, size: int = 1, *,
                generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """Draw ``size`` samples of Beta(alpha, beta) (beta defaults to alpha) from torch's RNG.

    Uses the Gamma-ratio construction on :func:`sample_gamma` so the draw honours ``generator``
    (``torch.distributions.Beta`` cannot take one). ``alpha <= 0`` (or ``beta <= 0``) returns 0.5;
    otherwise both must lie in :data:`ALPHA_RANGE`. Where both Gamma draws underflow to 0 (small
    concentrations), the ratio is taken in log space, so a draw is never NaN. The result is float64,
    drawn on CPU and moved to ``device`` without blocking (:func:`sagemix.debug.to_device`).
    """
    beta = alpha if beta is None else beta
    for nm, v in (("alpha", alpha), ("beta", beta)):
        if not is_number(v) or math.isnan(v):
            raise ValueError(f"{nm} must be a number (a Beta concentration), got {v!r}")
    if alpha <= 0 or beta <= 0:
        return to_device(torch.full((size,), 0.5, dtype=torch.float64), device)
    check_alpha(alpha, "alpha")
    check_alpha(beta, "beta")
    ga, log_ga = _sample_gamma(alpha, size, generator)
    gb, log_gb = _sample_gamma(beta, size, generator)
    out = ga / (ga + gb)
    # Both draws underflowed (alpha << 1): the ratio from the logs, exp(la) / (exp(la) + exp(lb)).
    out = torch.where(torch.isfinite(out), out, torch.sigmoid(log_ga - log_gb))
    return to_device(out, device)


def sample_gamma(shape: float, size: int, generator: torch.Generator | None = None) -> Tensor:
    """``size`` draws of Gamma(shape, 1) (Marsaglia-Tsang), driven by ``generator`` (float64, CPU).

    Example:
        >>> x = sample_gamma(2.0, 4, torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype, bool((x > 0).all())
        (torch.Size([4]), torch.float64, True)
    """
    return _sample_gamma(shape, size, generator)[0]


def sample_dirichlet(alpha: float, sizes: Sequence[int], generator: torch.Generator | None = None) -> Tensor:
    """One Dirichlet(alpha 1_m) draw per group of ``m = sizes[i]`` entries, laid end to end (float64, CPU).

    The Gamma-normalisation construction on :func:`sample_gamma` (the draws of ``sum(sizes)`` Gamma
    variables, in order). For small ``alpha`` every Gamma draw of a group may underflow to 0 in float64;
    that group is then normalised from the logs of the draws, so it still sums to 1, and the weights
    below the smallest normal float64 (a Dirichlet weight is never 0) are raised to it.

    Example:
        >>> w = sample_dirichlet(0.001, [3, 2], torch.Generator().manual_seed(0))
        >>> w.shape, bool((w > 0).all()), torch.allclose(w[:3].sum(), torch.tensor(1.0, dtype=torch.float64))
        (torch.Size([5]), True, True)
    """
    check_alpha(alpha, "alpha")
    sizes_t = torch.tensor([check_int(m, "group size", 1) for m in sizes])
    draws, logs = _sample_gamma(alpha, int(sizes_t.sum()), generator)
    groups = torch.repeat_interleave(torch.arange(len(sizes_t)), sizes_t)
    ends = torch.cumsum(sizes_t, 0).tolist()
    sums = torch.stack([draws[e - m:e].sum() for e, m in zip(ends, sizes_t.tolist())])
    out = draws / sums.clamp_min(1e-300)[groups]
    underflow = (sums < torch.finfo(torch.float64).tiny)[groups]
    if bool(underflow.any()):
        top = torch.full((len(sizes_t),), -math.inf, dtype=torch.float64).scatter_reduce(0, groups, logs, "amax")
        rel = torch.exp(logs - top[groups])  # the largest draw of each group is 1
        rel_sums = torch.zeros(len(sizes_t), dtype=torch.float64).index_add_(0, groups, rel)
        out = torch.where(underflow, rel / rel_sums[groups], out)
    return out.clamp_min(torch.finfo(torch.float64).tiny)


def _sample_gamma(shape: float, size: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Marsaglia-Tsang Gamma(shape, 1) draws and their logs (float64, CPU)."""
    check_number(shape, "shape", low=0.0, low_open=True, what="a Gamma shape")
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(size, dtype=torch.float64)
    filled = 0
    while filled < size:
        n = max(2 * (size - filled), 8)
        z = torch.randn(n, dtype=torch.float64, generator=generator)
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        acc = (d * v)[ok][: size - filled]
        out[filled: filled + acc.numel()] = acc
        filled += acc.numel()
    log_out = torch.log(out)
    if boost:
        u = torch.rand(size, dtype=torch.float64, generator=generator).clamp_min(1e-300)
        log_out = log_out + torch.log(u) / shape
        out = out * u ** (1.0 / shape)
    return out, log_out


def random_permutation(n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Tensor:
    """A random permutation of ``range(n)`` (int64), drawn on CPU from ``generator``, moved without blocking."""
    return to_device(torch.randperm(n, generator=generator), device)


def draw_apply(prob: float, generator: torch.Generator | None) -> bool:
    """Bernoulli(prob) coin from ``generator``; no draw is spent when ``prob`` is 0 or 1.

    Example:
        >>> draw_apply(1.0, None), draw_apply(0.0, None)
        (True, False)
    """
    if prob >= 1.0:
        return True
    if prob <= 0.0:
        return False
    return bool(torch.rand((), generator=generator, dtype=torch.float64) < prob)


def draw_lam_perm(alpha: float, batch: int, per_sample: bool, generator: torch.Generator | None
                  ) -> tuple[Tensor, Tensor]:
    """Mixup's draw: ``lam ~ Beta(alpha, alpha)`` (one, or ``batch`` when ``per_sample``; float32),
    then a permutation of ``range(batch)`` (int64), both on the CPU."""
    lam = sample_beta(alpha, size=batch if per_sample else 1, generator=generator).float()
    return lam, random_permutation(batch, generator=generator)
