"""SAGE's shift search at large image sizes: a coarse-to-fine (pyramid) search of the rearrangement.

The paper's search evaluates a random 1% of the ``(2H-1)(2W-1)`` shifts: 39 of 3,969 at 32x32, but
1,998 at 224x224 (each costing up to ``H x W`` work per pair). :func:`coarse_to_fine_search` finds
the shift on a pyramid of the two scaled maps of docs/SAGE.md §2 instead:

1. the maps are sum-pooled by 2 (zero-padded to an even side) until the smaller side is at most
   ``coarse_size`` (16 by default: 14x14 at 224 px); pooling keeps each map's mass, so the
   objective on a pooled pair is the objective of a coarse version of the same pair;
2. at the coarsest level every shift is evaluated, exactly and fast
   (:func:`sagemix.functional.sage_objective.objective_from_maps`);
3. at each finer level, the ``top_k`` best shifts ``u`` of the level below (``fine_k`` for the
   full-resolution level) give the candidates ``2u + d`` with ``d`` in ``{-1, 0, 1}^2`` (a shift
   ``u`` of a pooled map is the shift ``2u`` of the finer one), each evaluated per pair with the
   objective itself (:func:`objective_per_pair`);
4. at full resolution the best candidate is chosen (ties: the earliest, i.e. the best-ranked parent).

Work per pair at 224 px: the 14x14 exhaustive grid (about 75 k element operations), ``9 top_k``
candidates at each intermediate level and ``9 fine_k`` at full resolution, each candidate's 3x3
neighbourhood read from one window of the partner's map (:func:`objective_around`), against
1,998 x (overlap) for the 1% random search. Measured by ``benchmarks/bench_scale.py`` (B = 64, CPU,
one thread, the quiet 2-core machine, 2026-11-30; smooth blob maps; the optimum on 16 pairs, 6 at
224 px):

========  ================  ================  =========================  =====================
side      random 1%         coarse-to-fine    c2f >= random (pairs)      optimum reached (c2f)
========  ================  ================  =========================  =====================
32 px     0.006 s (39)      0.023 s           100%                       100% (random: 0%)
64 px     0.031 s (161)     0.034 s           100%                       100% (random: 0%)
128 px    0.415 s (650)     0.079 s (5.2x)    100%                       100% (random: 0%)
224 px    4.44 s (1,998)    0.156 s (28.5x)   100%                       100% (random: 0%)
========  ================  ================  =========================  =====================

A second run at 224 px (``sagemix bench --scale --scale-parts search``, 16 pairs checked): random
5.95 s, coarse-to-fine 0.29 s (20.5x), the optimum on 15 of 16 pairs, >= the random search on all.
These are smooth maps; on noise-like maps the coarse levels say little about the full-resolution
objective and the search can end below the random search's best candidate
(``benchmarks/sage_search_noise.py``: 36 of 128 uniform-noise pairs at 96 px, 5 of 128 after SAGE's
5x5 smoothing).
(Before the window reads, gathering an index per shift and pixel, the search took 0.71 s at 224 px
with ``fine_k = top_k = 4``: 8.4x faster than the random search in that run.) The result is
deterministic (no random draw).

Nothing here imports from the rest of sagemix outside :mod:`sagemix.functional.sage_objective` and
:func:`sagemix.debug.to_device` (host-made constants copied without blocking).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from ..debug import to_device
from .sage_objective import chunk_elements, objective_from_maps

__all__ = ["SEARCHES", "pool2", "objective_per_pair", "objective_around", "coarse_to_fine_search", "resolve_search"]

#: The shift searches of :class:`sagemix.mixers.sage.SAGE`: ``"random"`` (the paper's ``rand_pos``
#: fraction), ``"exhaustive"`` (every shift), ``"coarse_to_fine"`` (this module) and ``"auto"``, the
#: default (``"coarse_to_fine"`` for images whose smaller side exceeds :data:`AUTO_MIN_SIDE`, else
#: ``"random"``, the paper's search).
SEARCHES = ("random", "exhaustive", "coarse_to_fine", "auto")
#: ``search="auto"`` uses the coarse-to-fine search above this smaller image side (measured in
#: benchmarks/bench_scale.py: on smooth blob maps it reaches the optimum on every measured pair up to
#: 128 px and on 15 of 16 pairs at 224 px, and at least the random search's objective on each of them
#: (not on noise-like maps: benchmarks/sage_search_noise.py, 36 of 128 uniform-noise pairs at 96 px and
#: 5 of 128 after SAGE's smoothing fall below the random search's best candidate); at 128 px
#: it takes 1/5 of the random search's time, at 224 px 1/28, but at 64 px about the same and at 32 px
#: 4x as long, so up to 64 px the paper's search is kept).
AUTO_MIN_SIDE = 64


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
    inframe = _inframe_per_pair(p, shifts)
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


def _inframe_per_pair(p: Tensor, shifts: Tensor) -> Tensor:
    """(B, K) float32 in-frame mass of each pair's shifted partner: four look-ups per shift in a float64
    cumulative sum (the source rectangle ``[r0, r1) x [c0, c1)``)."""
    b, h, w = p.shape
    c = F.pad(p.double().cumsum(1).cumsum(2), (1, 0, 1, 0)).reshape(b, -1)
    dy, dx = shifts[..., 0], shifts[..., 1]
    r0, r1 = (-dy).clamp_min(0), h - dy.clamp_min(0)
    c0, c1 = (-dx).clamp_min(0), w - dx.clamp_min(0)
    corners = torch.cat([r1 * (w + 1) + c1, r0 * (w + 1) + c1, r1 * (w + 1) + c0, r0 * (w + 1) + c0], dim=1)
    v = c.gather(1, corners).view(b, 4, -1)
    return (v[:, 0] - v[:, 1] - v[:, 2] + v[:, 3]).float()


#: The offsets ``d`` of a shift's 3x3 neighbourhood, in the order of :func:`objective_around`'s output.
_NEIGHBOURS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def objective_around(a: Tensor, p: Tensor, centres: Tensor) -> Tensor:
    """:func:`objective_per_pair` at the 9 shifts ``c + d``, ``d`` in ``{-1, 0, 1}^2``, of each centre ``c``.

    The harmonic term reads one ``(H + 2) x (W + 2)`` window of the partner's reciprocal map per centre
    (one gather) and takes the 9 shifted ``H x W`` views of it, instead of gathering ``9 H W``
    elements through an index per shift (at 224 px that index was most of the search's time).

    Args:
        a, p: (B, H, W) own and partner maps (as :func:`objective_per_pair`).
        centres: (B, C, 2) int64 centre shifts, ``|cy| <= H``, ``|cx| <= W``.

    Returns:
        (B, 9 C) float32: the objective at ``centres[:, i] + d`` in column ``9 i + 3 (dy + 1) + (dx + 1)``;
        ``-inf`` for a shift out of range (``|dy| >= H`` or ``|dx| >= W``).
    """
    b, h, w = a.shape
    n = centres.shape[1]
    dev = a.device
    d = to_device(torch.tensor(_NEIGHBOURS), dev)
    shifts = (centres.to(dev).unsqueeze(2) + d.view(1, 1, 9, 2)).reshape(b, -1, 2)
    valid = (shifts[..., 0].abs() < h) & (shifts[..., 1].abs() < w)
    inframe = _inframe_per_pair(p, torch.where(valid.unsqueeze(-1), shifts, torch.zeros_like(shifts)))
    ra = a.float().reciprocal().unsqueeze(1)  # (B, 1, H, W)
    rp = F.pad(p.float().reciprocal(), (w + 1, w + 1, h + 1, h + 1), value=float("inf")).reshape(b, -1)
    wp = 3 * w + 2
    # window of centre c: padded rows h - cy .. h - cy + h + 1, columns w - cx .. w - cx + w + 1
    base = (torch.arange(h + 2, device=dev).view(-1, 1) + h) * wp + torch.arange(w + 2, device=dev).view(1, -1) + w
    harm = torch.empty(b, n, 9, device=dev)
    step = max(1, chunk_elements(dev) // max(1, b * (h + 2) * (w + 2)))
    for c0 in range(0, n, step):  # memory-bounded chunks of centres
        c = centres[:, c0:c0 + step].to(dev)
        off = (c[..., 0] * wp + c[..., 1]).unsqueeze(-1)  # (B, c, 1)
        win = rp.gather(1, (base.reshape(1, 1, -1) - off).reshape(b, -1)).view(b, -1, h + 2, w + 2)
        for j, (dy, dx) in enumerate(_NEIGHBOURS):  # shift c + d reads window[1 - dy + i, 1 - dx + j]
            view = win[:, :, 1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
            harm[:, c0:c0 + step, j] = (view + ra).reciprocal_().sum(dim=(2, 3))
    values = a.float().sum(dim=(1, 2)).unsqueeze(1) + inframe - 2.0 * harm.reshape(b, -1)
    return values.masked_fill(~valid, float("-inf"))


def _all_shifts(h: int, w: int, device: torch.device) -> Tensor:
    dy = torch.arange(-(h - 1), h, device=device)
    dx = torch.arange(-(w - 1), w, device=device)
    return torch.cartesian_prod(dy, dx).reshape(-1, 2)


def coarse_to_fine_search(a: Tensor, p: Tensor, *, coarse_size: int = 16, top_k: int = 4, fine_k: int = 2
                          ) -> tuple[Tensor, Tensor]:
    """The best shift of each pair found on a pyramid of the maps (see the module docstring).

    Args:
        a: (B, H, W) float own maps, normalised and scaled by alpha.
        p: (B, H, W) float partner maps (already permuted), scaled by 1 - alpha.
        coarse_size: the coarsest level is the first whose smaller side is at most this (>= 2);
            images already that small are searched exhaustively.
        top_k: shifts kept per pair at each level (>= 1).
        fine_k: shifts of the next-to-finest level refined at full resolution (>= 1; at most
            ``top_k`` are used). The full-resolution level costs 4x the one below per candidate, and
            a shift ranked there on maps pooled only once rarely changes rank, so fewer suffice.

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
    for name, value, low in (("coarse_size", coarse_size, 2), ("top_k", top_k, 1), ("fine_k", fine_k, 1)):
        check_int(value, name, low)
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
    d = to_device(torch.tensor(_NEIGHBOURS), a.device)
    for level, (la, lp) in reversed(list(enumerate(pyramid[:-1]))):
        keep = min(top_k, fine_k) if level == 0 else top_k  # level 0: full resolution
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :keep]
        parents = cand.gather(1, order.unsqueeze(-1).expand(-1, -1, 2))  # (B, k, 2)
        cand = (2 * parents.unsqueeze(2) + d.view(1, 1, 9, 2)).reshape(b, -1, 2)  # (B, 9k, 2)
        values = objective_around(la, lp, 2 * parents)  # out of range: -inf
    best = values.argmax(dim=1)  # the first maximum: the best-ranked parent's child wins ties
    chosen = cand.gather(1, best.view(b, 1, 1).expand(-1, 1, 2)).squeeze(1)
    return chosen, values.gather(1, best.unsqueeze(1)).squeeze(1)
