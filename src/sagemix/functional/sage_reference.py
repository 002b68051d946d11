"""SAGE as slow, plain float64 loops: the readable reference the tests compare the fast code against.

Each function reads docs/SAGE.md literally, one pixel and one candidate at a time, in NumPy
float64: :func:`normalize` (§2), :func:`shift_map` (the zero-fill translation of §3),
:func:`objective` (``J_b(t)`` of §3), :func:`sage_mix_naive` (the search of §3 and the mix of §4)
and :func:`smooth_naive` (the Gaussian smoothing of §1). It is far too slow for training (a
32x32 batch with all 3,969 shifts takes minutes); :mod:`sagemix.functional.sage` and
:mod:`sagemix.functional.sage_objective` compute the same numbers with batched tensor code, and
``tests/test_sage_functional.py`` checks that they agree.

Nothing here imports from the rest of sagemix but the constant ``EPS`` of :mod:`sagemix.checks` (the
``ε = 1e-16`` of docs/SAGE.md §3-§4).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..checks import EPS

__all__ = ["EPS", "normalize", "shift_map", "objective", "sage_mix_naive", "smooth_naive", "to_tensor"]


def normalize(s: np.ndarray) -> np.ndarray:
    """One map divided by its sum; a map whose sum is 0 or not finite becomes uniform (docs/SAGE.md §2).

    Example:
        >>> import numpy as np
        >>> normalize(np.array([[1.0, 3.0]])).tolist(), normalize(np.zeros((1, 2))).tolist()
        ([[0.25, 0.75]], [[0.5, 0.5]])
    """
    total = s.sum()
    if not math.isfinite(total) or total <= 0:
        return np.full_like(s, 1.0 / s.size)
    return s / total


def shift_map(p: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``T_t(p)[..., i, j] = p[..., i - dy, j - dx]``, 0 outside the frame (docs/SAGE.md §3).

    Example:
        >>> import numpy as np
        >>> shift_map(np.array([[1.0, 2.0], [3.0, 4.0]]), 1, 0).tolist()  # content moves down one row
        [[0.0, 0.0], [1.0, 2.0]]
    """
    h, w = p.shape[-2:]
    out = np.zeros_like(p)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if 0 <= si < h and 0 <= sj < w:
                out[..., i, j] = p[..., si, sj]
    return out


def objective(a: np.ndarray, p: np.ndarray, dy: int, dx: int) -> float:
    """``J(t) = sum over the frame of (a^2 + q^2) / max(a + q, eps)`` with ``q = T_t(p)`` (docs/SAGE.md §3).

    Args:
        a: (H, W) own map, normalised and scaled by alpha.
        p: (H, W) partner map, normalised and scaled by 1 - alpha.
        dy, dx: the shift of the partner.

    Example:
        >>> import numpy as np
        >>> a = np.array([[0.5, 0.0], [0.0, 0.0]])
        >>> objective(a, a, 0, 0), objective(a, a, 1, 1)  # overlapping vs apart
        (0.5, 1.0)
    """
    q = shift_map(p, dy, dx)
    h, w = a.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            total += (a[i, j] ** 2 + q[i, j] ** 2) / max(a[i, j] + q[i, j], EPS)
    return float(total)


def sage_mix_naive(images: Any, saliency: Any, perm: Any, prior: float,
                   shifts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """SAGE's rearrangement and mix of a batch, one pair and one candidate at a time (docs/SAGE.md §2-§4).

    Args:
        images: (B, C, H, W) tensor.
        saliency: (B, H, W) non-negative tensor (already smoothed).
        perm: (B,) int64 tensor, the partner of each sample.
        prior: alpha in [0, 1].
        shifts: (K, 2) int64 tensor of candidate shifts (dy, dx).

    Returns:
        ``(mixed, lam, chosen, J)``: (B, C, H, W) float64 mixed images, (B,) float64 label weights,
        (B, 2) int64 chosen shifts and the (B, K) float64 objective of every candidate.

    Example:
        >>> import torch
        >>> x, s = torch.randn(2, 1, 3, 3), torch.rand(2, 3, 3)
        >>> mixed, lam, chosen, J = sage_mix_naive(x, s, torch.tensor([1, 0]), 0.5, torch.tensor([[0, 0], [1, 0]]))
        >>> mixed.shape, J.shape, bool(((lam >= 0) & (lam <= 1)).all())
        ((2, 1, 3, 3), (2, 2), True)
    """
    x = images.double().numpy()
    s = saliency.double().numpy()
    perm = perm.numpy()
    shifts = shifts.numpy()
    b = x.shape[0]
    mixed = np.zeros_like(x)
    lam = np.zeros(b)
    chosen = np.zeros((b, 2), dtype=np.int64)
    objs = np.zeros((b, shifts.shape[0]))
    for n in range(b):
        a = prior * normalize(s[n])
        p = (1 - prior) * normalize(s[perm[n]])
        best, best_k = -np.inf, 0
        for k, (dy, dx) in enumerate(shifts):
            objs[n, k] = objective(a, p, int(dy), int(dx))
            if objs[n, k] > best:  # strict: ties keep the earliest candidate
                best, best_k = objs[n, k], k
        dy, dx = (int(v) for v in shifts[best_k])
        chosen[n] = (dy, dx)
        q = shift_map(p, dy, dx)
        mask = a / np.maximum(a + q, EPS)
        partner = shift_map(x[perm[n]], dy, dx)
        mixed[n] = mask * x[n] + (1 - mask) * partner
        lam[n] = mask.mean()
    return mixed, lam, chosen, objs


def smooth_naive(s: np.ndarray, k: int = 5, sigma: float = 1.0) -> np.ndarray:
    """The k x k Gaussian smoothing of (B, H, W) maps with reflect padding, as a 2-D loop (docs/SAGE.md §1).

    Example:
        >>> import numpy as np
        >>> smooth_naive(np.ones((1, 4, 4)), k=3).round(6).tolist() == np.ones((1, 4, 4)).tolist()
        True
    """
    taps = np.exp(-((np.arange(k) - (k - 1) / 2) ** 2) / (2 * sigma ** 2))
    taps /= taps.sum()
    r = k // 2
    b, h, w = s.shape
    out = np.zeros_like(s)
    padded = np.pad(s, ((0, 0), (r, r), (r, r)), mode="reflect")
    for n in range(b):
        for i in range(h):
            for j in range(w):
                acc = 0.0
                for u in range(k):
                    for v in range(k):
                        acc += taps[u] * taps[v] * padded[n, i + u, j + v]
                out[n, i, j] = acc
    return out


def to_tensor(a: Any) -> torch.Tensor:
    """A NumPy result as a torch tensor (for comparisons with the fast code)."""
    return torch.from_numpy(np.asarray(a))
