"""SAGE's shift search at large image sizes: a coarse-to-fine (pyramid) search of the rearrangement.

The paper's search evaluates a random 1% of the ``(2H-1)(2W-1)`` shifts: 39 of 3,969 at 32x32, but
1,998 at 224x224 (each costing up to ``H x W`` work per pair). :func:`coarse_to_fine_search` finds
the shift on a pyramid of the two scaled maps of docs/SAGE.md §2 instead:

1. the maps are sum-pooled by 2 (zero-padded to an even side) until the smaller side is at most
   ``coarse_size`` (16 by default: 14x14 at 224 px); pooling keeps each map's mass, so the
   objective on a pooled pair is the objective of a coarse version of the same pair;
2. at the coarsest level every shift is evaluated, exactly and fast
   (:func:`sagemix.functional.sage_objective.objective_from_maps`);
3. at each finer level, the ``top_k`` best shifts ``u`` of the level below give the candidates
   ``2u + d`` with ``d`` in ``{-1, 0, 1}^2`` (a shift ``u`` of a pooled map is the shift ``2u`` of
   the finer one), each evaluated per pair with the objective itself (:func:`objective_per_pair`);
4. at full resolution the best candidate is chosen (ties: the earliest, i.e. the best-ranked parent).

Work per pair at 224 px: the 14x14 exhaustive grid (about 75 k element operations) and
``9 top_k`` candidates per level, against 1,998 x (overlap) for the 1% random search. Measured by
``benchmarks/bench_scale.py`` (B = 64, CPU, one thread, a loaded 2-core machine; smooth blob maps):

========  ================  ==============  =========================  =====================
side      random 1%         coarse-to-fine  c2f >= random (pairs)      optimum reached (c2f)
========  ================  ==============  =========================  =====================
32 px     0.04 s (39)       0.21 s          100%                       100% (random: 0%)
64 px     0.16 s (161)      0.72 s          100%                       100% (random: 0%)
224 px    48.0 s (1,998)    5.0 s (9.6x)    100%                       100% (random: 0%)
========  ================  ==============  =========================  =====================

(At 224 px, B = 32, in another run: 15x faster with ``top_k = 4``, 28x with 2, 44x with 1, each
>= the random search on every pair.) The result is deterministic (no random draw).

Nothing here imports from the rest of sagemix outside :mod:`sagemix.functional.sage_objective`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .sage_objective import chunk_elements, objective_from_maps

__all__ = ["SEARCHES", "pool2", "objective_per_pair", "coarse_to_fine_search", "resolve_search"]

#: The shift searches of :class:`sagemix.mixers.sage.SAGE`: ``"random"`` (the paper's ``rand_pos``
#: fraction, the default), ``"exhaustive"`` (every shift), ``"coarse_to_fine"`` (this module) and
#: ``"auto"`` (``"coarse_to_fine"`` for images whose smaller side exceeds :data:`AUTO_MIN_SIDE`,
#: else ``"random"``, the paper's search).
SEARCHES = ("random", "exhaustive", "coarse_to_fine", "auto")
#: ``search="auto"`` uses the coarse-to-fine search above this smaller image side (measured in
#: benchmarks/bench_scale.py: at 224 px it reaches at least the random search's objective on every
#: measured pair in 1/18-1/30 of its time; at 64 px it reaches the optimum but takes 2-3x the random
#: search's time, so up to 64 px the paper's search is kept).
AUTO_MIN_SIDE = 64
_EPS = 1e-16


def resolve_search(search: str, height: int, width: int) -> str:
    """The search used for ``height x width`` images: ``search`` itself unless it is ``"auto"``."""
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    if search == "auto":
        return "coarse_to_fine" if min(height, width) > AUTO_MIN_SIDE else "random"
    return search


def pool2(x: Tensor) -> Tensor:
    """Sum-pool (B, H, W) maps by 2 on each axis (zero padding to even sides): (B, ceil(H/2), ceil(W/2))."""
    h, w = x.shape[-2:]
    x = F.pad(x, (0, w % 2, 0, h % 2))
    return 4.0 * F.avg_pool2d(x.unsqueeze(1), 2).squeeze(1)


def objective_per_pair(a: Tensor, p: Tensor, shifts: Tensor) -> Tensor:
    """``J_b(t) = sum (a^2 + q^2) / max(a + q, eps)`` with ``q = T_t(p)``, for per-pair shifts.

    Computed as in :mod:`sagemix.functional.sage_objective`, ``sum(a) + inframe(p, t) - 2 sum a q / (a + q)``:
    the in-frame mass from four look-ups in a cumulative sum, the harmonic term as
    ``1 / (1/a + 1/q)`` over the frame (one gather, one add, one reciprocal and one sum per pixel; 0
    where either map is 0 or the partner is out of the frame).

    Args:
        a: (B, H, W) own maps (scaled by alpha).
        p: (B, H, W) partner maps (already permuted, scaled by 1 - alpha).
        shifts: (B, K, 2) int64 shifts (dy, dx) of each pair, ``|dy| < H`` and ``|dx| < W``.

    Returns:
        (B, K) float32 objective values (evaluated in memory-bounded chunks of candidates).
    """
    b, h, w = a.shape
    k = shifts.shape[1]
    dev = a.device
    shifts = shifts.to(dev)
    # in-frame mass of the shifted partner: the source rectangle [r0, r1) x [c0, c1) of each shift
    c = F.pad(p.double().cumsum(1).cumsum(2), (1, 0, 1, 0)).reshape(b, -1)
    dy, dx = shifts[..., 0], shifts[..., 1]
    r0, r1 = (-dy).clamp_min(0), h - dy.clamp_min(0)
    c0, c1 = (-dx).clamp_min(0), w - dx.clamp_min(0)
    corners = torch.cat([r1 * (w + 1) + c1, r0 * (w + 1) + c1, r1 * (w + 1) + c0, r0 * (w + 1) + c0], dim=1)
    v = c.gather(1, corners).view(b, 4, k)
    inframe = (v[:, 0] - v[:, 1] - v[:, 2] + v[:, 3]).float()
    # harmonic term: reciprocal maps, the partner's padded with inf (out of the frame: contributes 0)
    ra = a.float().reciprocal().reshape(b, 1, h * w)
    rp = F.pad(p.float().reciprocal(), (w, w, h, h), value=float("inf")).reshape(b, -1)
    wp = 3 * w
    base = (torch.arange(h, device=dev).view(h, 1) + h) * wp + torch.arange(w, device=dev).view(1, w) + w
    harm = []
    step = max(1, chunk_elements(dev) // max(1, b * h * w))
    for k0 in range(0, k, step):  # memory-bounded chunks of candidates
        s = shifts[:, k0:k0 + step]
        off = (s[..., 0] * wp + s[..., 1]).unsqueeze(-1)  # (B, k, 1): flat offset of the source pixel
        idx = (base.reshape(1, 1, -1) - off).reshape(b, -1)
        t = rp.gather(1, idx).view(b, -1, h * w).add_(ra).reciprocal_()
        harm.append(t.sum(dim=2))
    return a.float().sum(dim=(1, 2)).unsqueeze(1) + inframe - 2.0 * torch.cat(harm, dim=1)


def _all_shifts(h: int, w: int, device: torch.device) -> Tensor:
    dy = torch.arange(-(h - 1), h, device=device)
    dx = torch.arange(-(w - 1), w, device=device)
    return torch.cartesian_prod(dy, dx).reshape(-1, 2)


def coarse_to_fine_search(a: Tensor, p: Tensor, *, coarse_size: int = 16, top_k: int = 4
                          ) -> tuple[Tensor, Tensor]:
    """The best shift of each pair found on a pyramid of the maps (see the module docstring).

    Args:
        a: (B, H, W) float own maps, normalised and scaled by alpha.
        p: (B, H, W) float partner maps (already permuted), scaled by 1 - alpha.
        coarse_size: the coarsest level is the first whose smaller side is at most this (>= 2);
            images already that small are searched exhaustively.
        top_k: shifts kept per pair at each level (>= 1).

    Returns:
        ``(chosen, objective)``: (B, 2) int64 shifts and (B,) float32 objective values at full
        resolution (the naive objective of docs/SAGE.md §3 at the chosen shift).

    Example:
        >>> import torch
        >>> a = torch.zeros(1, 64, 64); a[0, 10, 10] = 0.5
        >>> p = torch.zeros(1, 64, 64); p[0, 10, 10] = 0.5
        >>> chosen, value = coarse_to_fine_search(a, p)
        >>> bool(chosen.abs().sum() > 0), round(float(value), 4)  # moved apart: both masses kept
        (True, 1.0)
    """
    if not isinstance(a, Tensor) or a.ndim != 3 or not isinstance(p, Tensor) or p.shape != a.shape:
        raise ValueError(f"a and p must be (B, H, W) tensors of one shape, got "
                         f"{tuple(getattr(a, 'shape', ()))} and {tuple(getattr(p, 'shape', ()))}")
    for name, value, low in (("coarse_size", coarse_size, 2), ("top_k", top_k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    a, p = a.float(), p.float()
    pyramid = [(a, p)]
    while min(pyramid[-1][0].shape[-2:]) > coarse_size:
        pa, pp = pyramid[-1]
        pyramid.append((pool2(pa), pool2(pp)))
    b = a.shape[0]
    ca, cp = pyramid[-1]
    grid = _all_shifts(ca.shape[1], ca.shape[2], a.device)
    values = objective_from_maps(ca, cp, grid)  # (B, K) every shift of the coarsest level
    if len(pyramid) == 1:
        best = values.argmax(dim=1)
        return grid[best], values.gather(1, best.unsqueeze(1)).squeeze(1)
    cand = grid.unsqueeze(0).expand(b, -1, -1)
    d = torch.cartesian_prod(torch.arange(-1, 2, device=a.device), torch.arange(-1, 2, device=a.device))
    for la, lp in reversed(pyramid[:-1]):
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :top_k]
        parents = cand.gather(1, order.unsqueeze(-1).expand(-1, -1, 2))  # (B, k, 2)
        cand = (2 * parents.unsqueeze(2) + d.view(1, 1, 9, 2)).reshape(b, -1, 2)  # (B, 9k, 2)
        h, w = la.shape[1:]
        valid = (cand[..., 0].abs() < h) & (cand[..., 1].abs() < w)
        cand = torch.where(valid.unsqueeze(-1), cand, torch.zeros_like(cand))  # out of range: scored -inf
        values = objective_per_pair(la, lp, cand).masked_fill(~valid, float("-inf"))
    best = values.argmax(dim=1)  # the first maximum: the best-ranked parent's child wins ties
    chosen = cand.gather(1, best.view(b, 1, 1).expand(-1, 1, 2)).squeeze(1)
    return chosen, values.gather(1, best.unsqueeze(1)).squeeze(1)
