"""The fast batched SAGE objective (docs/SAGE.md §3 and §8): the optimal-rearrangement search.

:mod:`sagemix.functional.sage` holds the plain method (saliency, shifts, mask, mix) and calls
:func:`objective_from_maps` here; :mod:`sagemix.functional.sage_reference` is the slow, readable
loop version that the tests compare this one against.

With ``a`` the own map scaled by ``alpha`` and ``q = T_t(p)`` the shifted, ``(1 - alpha)``-scaled
partner map, the objective ``J(t) = sum (a^2 + q^2) / max(a + q, eps)`` equals, pixel by pixel,
``a + q - 2 a q / (a + q)``. So ``J(t) = sum(a) + sum(q) - 2 sum a q / (a + q)``:

- the middle term is the partner's mass left in the frame, four look-ups in a 2-D cumulative sum
  (:func:`inframe_mass`);
- the last term, computed as ``1 / (1/a + 1/q)`` (one add and one reciprocal per element; 0
  wherever either map is 0), is non-zero only where the two maps overlap. For a few candidates it
  is evaluated on the gathered overlapping pixels of each candidate (:func:`harmonic_gather`: at
  most ``B x K x H x W`` work, a quarter of it on average). For many candidates (the exhaustive
  search) it is evaluated for every shift at once (:func:`harmonic_grid`), one pair of overlapping
  image rows at a time, for all horizontal shifts together (``unfold``), which costs
  ``B x H^2 x (2W-1) x W`` instead of ``B x (2H-1)(2W-1) x H x W``, and the wanted candidates are
  read out of that grid.

Both paths work through memory-bounded chunks (:func:`chunk_elements`). Off the CPU their shapes
depend only on B, H, W and K, never on the data (no ``nonzero`` or boolean-mask gathers), so the
search runs on a device without a host synchronisation; on the CPU, where reading a value costs
no synchronisation, the gather visits only the overlapping pixels (half the time). Nothing here imports from the rest of sagemix but
:mod:`sagemix.debug`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..debug import check_values, to_device

__all__ = ["objective_from_maps", "inframe_mass", "harmonic_gather", "harmonic_grid", "chunk_elements"]

# Elements per intermediate tensor of the objective, by device type. On CPU, 8 MiB intermediates are
# about 5x faster than 64 MiB ones for the exhaustive search (large buffers are returned to the OS
# and page-faulted back in on every chunk); on a GPU, larger chunks mean fewer kernel launches.
_CHUNK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 26}


def chunk_elements(device: torch.device) -> int:
    """Elements per intermediate tensor of the objective on ``device`` (the memory budget of a chunk)."""
    return _CHUNK_ELEMENTS.get(device.type, 1 << 24)


def inframe_mass(p: Tensor, shifts: Tensor) -> Tensor:
    """``sum_frame T_t(p)`` for each shift: the partner mass left in the frame, (B, K) float32.

    Four look-ups per shift in a float64 2-D cumulative sum of ``p`` (the source rectangle).
    """
    b, h, w = p.shape
    c = F.pad(p.double().cumsum(1).cumsum(2), (1, 0, 1, 0)).reshape(b, -1)  # (B, (H+1)(W+1))
    dy, dx = shifts[:, 0], shifts[:, 1]
    r0, r1 = (-dy).clamp_min(0), h - dy.clamp_min(0)  # source rows [r0, r1)
    c0, c1 = (-dx).clamp_min(0), w - dx.clamp_min(0)
    corners = torch.stack([r1 * (w + 1) + c1, r0 * (w + 1) + c1, r1 * (w + 1) + c0, r0 * (w + 1) + c0])
    v = c.index_select(1, corners.reshape(-1)).view(b, 4, -1)
    return (v[:, 0] - v[:, 1] - v[:, 2] + v[:, 3]).float()


def harmonic_gather(ra: Tensor, rp: Tensor, shifts: Tensor, *, static: bool | None = None) -> Tensor:
    """``sum_frame a q / (a + q)`` for K given shifts, (B, K).

    Takes the reciprocals ``ra = 1/a`` and ``rp = 1/p`` (inf where a map is 0), since
    ``a q / (a + q) = 1 / (1/a + 1/q)``: per pixel one gather of each map, one add and one
    reciprocal, and 0 wherever either map is 0. Data are laid out pixel-major, (pixels, B), so that
    every gathered index copies B contiguous values. Two equivalent ways, chunked by candidates:

    - ``static=False`` (the default on CPU): only the pixels where the shifted partner overlaps the
      frame are gathered (``nonzero``; a quarter of the frame on average over random shifts), so
      the work is B times the overlap pixels -- but the chunk shapes depend on the shift values,
      which on a device would mean a host synchronisation per chunk;
    - ``static=True`` (the default elsewhere): every pixel of every candidate is visited and a pixel
      whose partner falls outside the frame reads an extra all-inf row of ``rp``, so adds exactly
      0. Work B x K x H x W, with shapes fixed by B, H, W and K: no host read, and ``meta`` works.

    The two differ only in the order of the float32 sums.
    """
    b, h, w = ra.shape
    dev = ra.device
    static = dev.type != "cpu" if static is None else static
    ra_t = ra.reshape(b, h * w).t().contiguous()  # (HW, B)
    rp_t = rp.reshape(b, h * w).t()
    rp_t = torch.cat([rp_t, rp.new_full((1, b), float("inf"))]) if static else rp_t.contiguous()  # row HW: outside
    i = torch.arange(h, device=dev).view(1, h, 1)
    j = torch.arange(w, device=dev).view(1, 1, w)
    out = []
    step = max(1, chunk_elements(dev) // max(1, b * h * w))
    for k0 in range(0, shifts.shape[0], step):  # memory-bounded chunks of candidates
        s = shifts[k0:k0 + step]
        k = s.shape[0]
        si = (i - s[:, 0].view(-1, 1, 1)).expand(k, h, w)  # the partner pixel under own pixel (i, j)
        sj = (j - s[:, 1].view(-1, 1, 1)).expand(k, h, w)
        overlap = (si >= 0) & (si < h) & (sj >= 0) & (sj < w)  # (k, H, W)
        if static:
            part = torch.where(overlap, si * w + sj, h * w).reshape(-1)  # (k*H*W,)
            out.append(rp_t.index_select(0, part).view(k, h * w, b).add_(ra_t).reciprocal_().sum(dim=1))
        else:
            cand, oi, oj = overlap.nonzero(as_tuple=True)
            part = si[overlap] * w + sj[overlap]
            t = rp_t.index_select(0, part).add_(ra_t.index_select(0, oi * w + oj)).reciprocal_()  # (N, B)
            out.append(torch.zeros(k, b, device=dev, dtype=t.dtype).index_add_(0, cand, t))
    return torch.cat(out, dim=0).t()


def harmonic_grid(ra: Tensor, rp: Tensor) -> Tensor:
    """``sum_frame a q / (a + q)`` for every shift of :func:`all_shifts`, (B, (2H-1)(2W-1)).

    The term is non-zero only where the maps overlap, so it is accumulated over pairs of
    overlapping rows (own row r, partner row r - dy), all 2W-1 horizontal shifts of a row pair at
    once through ``unfold``: work B*H^2*(2W-1)*W instead of B*(2H-1)(2W-1)*H*W.
    """
    b, h, w = ra.shape
    dev = ra.device
    # the overlapping row pairs depend on H alone: found on the host (a boolean mask on a device would
    # read its values back), then copied without blocking
    dy = torch.arange(-(h - 1), h)
    r = torch.arange(h)
    src = r.view(1, -1) - dy.view(-1, 1)  # (2H-1, H) partner row for own row r
    keep = (src >= 0) & (src < h)
    dy_idx = to_device((dy.view(-1, 1) + (h - 1)).expand_as(src)[keep], dev)  # (H^2,)
    own_row = to_device(r.view(1, -1).expand_as(src)[keep], dev)
    part_row = to_device(src[keep], dev)
    rows = F.pad(rp, (w - 1, w - 1), value=float("inf"))  # (B, H, 3W-2)
    harm = torch.zeros(b, 2 * h - 1, 2 * w - 1, device=dev, dtype=torch.float32)
    n = own_row.shape[0]
    step = max(1, chunk_elements(ra.device) // max(1, b * (2 * w - 1) * w))
    for r0 in range(0, n, step):  # memory-bounded chunks of row pairs
        sl = slice(r0, r0 + step)
        av = ra.index_select(1, own_row[sl]).unsqueeze(2)  # (B, r, 1, W)
        q = rows.index_select(1, part_row[sl]).unfold(2, w, 1)  # (B, r, 2W-1, W); window u <-> dx = W-1-u
        harm.index_add_(1, dy_idx[sl], (q + av).reciprocal_().sum(dim=3))
    return harm.flip(2).reshape(b, -1)  # dx ascending, dy-major like all_shifts


def objective_from_maps(a: Tensor, p: Tensor, shifts: Tensor) -> Tensor:
    """``J = sum(a) + inframe(p, t) - 2 sum a q / (a + q)`` for K shifts, (B, K) float32.

    Args:
        a: (B, H, W) float32 own maps, normalised and scaled by alpha.
        p: (B, H, W) float32 partner maps (already permuted), normalised and scaled by 1 - alpha.
        shifts: (K, 2) int64 candidate shifts (dy, dx), each with at least one pixel of overlap.

    The harmonic term is gathered for a few candidates, or read out of the full grid when there are
    so many candidates that the grid is cheaper (it costs about as much as 2*H*W gathered ones).

    Example:
        >>> import torch
        >>> a = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])  # both salient masses at the top-left pixel
        >>> objective_from_maps(a, a.clone(), torch.tensor([[0, 0], [1, 1]])).tolist()  # overlap vs apart
        [[0.5, 1.0]]
    """
    b, h, w = a.shape
    shifts = shifts.to(a.device)
    check_values((shifts[:, 0].abs() < h) & (shifts[:, 1].abs() < w),
                 f"every shift must satisfy |dy| < H={h} and |dx| < W={w} (at least one pixel of overlap)",
                 lambda: f"got {shifts.tolist() if shifts.shape[0] <= 8 else shifts.abs().amax(dim=0).tolist()}")
    ra, rp = a.reciprocal(), p.reciprocal()
    if shifts.shape[0] > 2 * h * w:
        flat = (shifts[:, 0] + h - 1) * (2 * w - 1) + (shifts[:, 1] + w - 1)
        harm = harmonic_grid(ra, rp).index_select(1, flat)
    else:
        harm = harmonic_gather(ra, rp, shifts)
    return a.sum(dim=(1, 2)).unsqueeze(1) + inframe_mass(p, shifts) - 2.0 * harm
