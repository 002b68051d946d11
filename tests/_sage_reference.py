"""Naive float64 loop implementations of the SAGE kernels (the spec, read literally)."""
from __future__ import annotations

import math

import numpy as np
import torch

EPS = 1e-16


def normalize(s: np.ndarray) -> np.ndarray:
    total = s.sum()
    if not math.isfinite(total) or total <= 0:
        return np.full_like(s, 1.0 / s.size)
    return s / total


def shift_map(p: np.ndarray, dy: int, dx: int) -> np.ndarray:
    h, w = p.shape[-2:]
    out = np.zeros_like(p)
    for i in range(h):
        for j in range(w):
            si, sj = i - dy, j - dx
            if 0 <= si < h and 0 <= sj < w:
                out[..., i, j] = p[..., si, sj]
    return out


def objective(a: np.ndarray, p: np.ndarray, dy: int, dx: int) -> float:
    q = shift_map(p, dy, dx)
    h, w = a.shape
    total = 0.0
    for i in range(h):
        for j in range(w):
            total += (a[i, j] ** 2 + q[i, j] ** 2) / max(a[i, j] + q[i, j], EPS)
    return total


def sage_mix_naive(images, saliency, perm, prior, shifts):
    """Returns (mixed float64, lam float64, chosen int64, J (B, K) float64)."""
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


def to_tensor(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a))
