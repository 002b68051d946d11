"""SAGE kernels: saliency, translation, candidate shifts and the saliency-guided mix.

SAGE: "Saliency-Guided Mixup with Optimal Rearrangements", Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113. The formulas are those of ``shared/spec/SAGE.md``; section numbers
below refer to it.

Everything here is a pure, batched tensor function: no Python loop over images or over candidate
shifts (the exhaustive search works through the candidates in memory-bounded chunks).

How the objective is computed fast (section 3). With ``a`` the own map scaled by ``alpha`` and
``q = T_t(p)`` the shifted, ``(1 - alpha)``-scaled partner map, the objective
``J(t) = sum (a^2 + q^2) / max(a + q, eps)`` equals, pixel by pixel, ``a + q - 2 a q / (a + q)``.
So ``J(t) = sum(a) + sum(q) - 2 sum a q / (a + q)``: the middle term is the partner's mass left in the
frame (four look-ups in a 2-D cumulative sum), and the last term, computed as
``1 / (1/a + 1/q)`` (one add and one reciprocal per element; 0 wherever either map is 0), is
non-zero only where the two maps overlap. For a few candidates it is evaluated on the gathered
overlapping pixels of each candidate (at most ``B x K x H x W`` work, a quarter of it on average);
for many candidates (the exhaustive search) it is evaluated for every
shift at once, one pair of overlapping image rows at a time, for all horizontal shifts together
(``unfold``), which costs ``B x H^2 x (2W-1) x W`` instead of ``B x (2H-1)(2W-1) x H x W``, and the
wanted candidates are read out of that grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "EPS", "reduce_saliency", "gaussian_kernel1d", "gaussian_smooth", "normalize_saliency", "translate",
    "all_shifts", "candidate_shifts", "sage_objective", "sage_mask", "sage_mix",
]

EPS = 1e-16
# Elements per intermediate tensor of the objective, by device type. On CPU, 8 MiB intermediates are
# about 5x faster than 64 MiB ones for the exhaustive search (large buffers are returned to the OS
# and page-faulted back in on every chunk); on a GPU, larger chunks mean fewer kernel launches.
_CHUNK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 26}


def _chunk(device: torch.device) -> int:
    return _CHUNK_ELEMENTS.get(device.type, 1 << 24)


# ----------------------------------------------------------------------------------------------
# Saliency (section 1)
# ----------------------------------------------------------------------------------------------
def reduce_saliency(grad: Tensor, mode: str = "l2") -> Tensor:
    """Reduce an input gradient over channels.

    Args:
        grad: (B, C, H, W) input gradient.
        mode: ``"l2"`` for ``sqrt(sum_c g^2)`` (paper Eq. 1) or ``"mean_abs"`` for ``mean_c |g|``
            (the reference code).

    Returns:
        (B, H, W) float32 saliency, detached.
    """
    if not isinstance(grad, Tensor) or grad.ndim != 4:
        raise ValueError(f"grad must be a (B, C, H, W) tensor, got {getattr(grad, 'shape', type(grad).__name__)}")
    g = grad.detach().float()
    if mode == "l2":
        return g.pow(2).sum(dim=1).sqrt()
    if mode == "mean_abs":
        return g.abs().mean(dim=1)
    raise ValueError(f"saliency_reduce must be 'l2' or 'mean_abs', got {mode!r}")


def gaussian_kernel1d(kernel_size: int = 5, sigma: float = 1.0, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """Normalised 1-D Gaussian taps ``exp(-k^2 / 2 sigma^2)``, ``k = -(n-1)/2 .. (n-1)/2``."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be a positive odd int, got {kernel_size!r}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"blur_sigma must be a finite number > 0, got {sigma!r}")
    k = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    w = torch.exp(-(k ** 2) / (2.0 * float(sigma) ** 2))
    return (w / w.sum()).to(dtype=dtype, device=device)


def gaussian_smooth(saliency: Tensor, kernel_size: int = 5, sigma: float = 1.0) -> Tensor:
    """Separable Gaussian smoothing with reflect padding, at the input resolution.

    Args:
        saliency: (B, H, W) map.
        kernel_size: odd kernel side (5 in the paper); 1 disables smoothing.
        sigma: Gaussian standard deviation in pixels (1.0 in the paper).

    Returns:
        (B, H, W) float32 smoothed map. Reflect padding needs a side larger than the half-width of
        the kernel; along a shorter side the edge is replicated instead.
    """
    if not isinstance(saliency, Tensor) or saliency.ndim != 3:
        raise ValueError(f"saliency must be a (B, H, W) tensor, got {getattr(saliency, 'shape', type(saliency).__name__)}")
    taps = gaussian_kernel1d(kernel_size, sigma, device=saliency.device)
    if kernel_size == 1:
        return saliency.float()
    r = kernel_size // 2
    x = saliency.float().unsqueeze(1)  # (B, 1, H, W)
    h, w = x.shape[-2:]
    # Vertical pass then horizontal pass; each pads only its own axis.
    x = F.pad(x, (0, 0, r, r), mode="reflect" if h > r else "replicate")
    x = F.conv2d(x, taps.view(1, 1, -1, 1))
    x = F.pad(x, (r, r, 0, 0), mode="reflect" if w > r else "replicate")
    x = F.conv2d(x, taps.view(1, 1, 1, -1))
    return x.squeeze(1)


def normalize_saliency(saliency: Tensor) -> Tensor:
    """Divide each (H, W) map by its sum; a map whose sum is 0 or not finite becomes uniform.

    Args:
        saliency: (B, H, W) non-negative map.

    Returns:
        (B, H, W) float32 maps, each summing to 1.
    """
    s = saliency.float()
    total = s.sum(dim=(1, 2), keepdim=True)
    ok = torch.isfinite(total) & (total > 0)
    uniform = torch.full_like(s, 1.0 / (s.shape[1] * s.shape[2]))
    return torch.where(ok, s / torch.where(ok, total, torch.ones_like(total)), uniform)


# ----------------------------------------------------------------------------------------------
# Translation and candidate shifts (section 3)
# ----------------------------------------------------------------------------------------------
def _check_shifts(shifts: Tensor, name: str = "shifts") -> Tensor:
    if not isinstance(shifts, Tensor) or shifts.ndim != 2 or shifts.shape[1] != 2:
        raise ValueError(f"{name} must be an int64 tensor of shape (K, 2) holding (dy, dx), "
                         f"got {getattr(shifts, 'shape', type(shifts).__name__)}")
    if shifts.dtype != torch.int64:
        raise TypeError(f"{name} must have dtype torch.int64, got {shifts.dtype}")
    if shifts.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one shift, got K=0")
    return shifts


def translate(x: Tensor, shifts: Tensor) -> Tensor:
    """Zero-fill translation ``T_t(x)[..., i, j] = x[..., i - dy, j - dx]`` (0 outside the frame).

    Args:
        x: (B, H, W) or (B, C, H, W) tensor.
        shifts: (B, 2) int64 per-sample (dy, dx): content moves down by dy and right by dx.

    Returns:
        Tensor of the shape and dtype of ``x``.
    """
    if not isinstance(x, Tensor) or x.ndim not in (3, 4):
        raise ValueError(f"x must be a (B, H, W) or (B, C, H, W) tensor, got {getattr(x, 'shape', type(x).__name__)}")
    shifts = _check_shifts(shifts)
    if shifts.shape[0] != x.shape[0]:
        raise ValueError(f"shifts must have one (dy, dx) per sample: x has B={x.shape[0]}, shifts has {shifts.shape[0]}")
    squeeze = x.ndim == 3
    x4 = x.unsqueeze(1) if squeeze else x
    b, c, h, w = x4.shape
    shifts = shifts.to(x.device)
    rows = torch.arange(h, device=x.device).unsqueeze(0) - shifts[:, :1]  # (B, H) source rows
    cols = torch.arange(w, device=x.device).unsqueeze(0) - shifts[:, 1:]  # (B, W) source cols
    valid = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)  # (B, H, W)
    flat = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)  # (B, H, W)
    out = torch.gather(x4.reshape(b, c, h * w), 2, flat.reshape(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    out = out * valid.unsqueeze(1).to(out.dtype)
    return out.squeeze(1) if squeeze else out


def all_shifts(height: int, width: int, *, device: torch.device | str | None = None) -> Tensor:
    """All (2H-1)(2W-1) shifts with at least one pixel of overlap, dy-major, as (K, 2) int64 (dy, dx)."""
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    dy = torch.arange(-(height - 1), height, device=device)
    dx = torch.arange(-(width - 1), width, device=device)
    return torch.cartesian_prod(dy, dx).reshape(-1, 2)


def candidate_shifts(height: int, width: int, *, rand_pos: float | None = 0.01, force_zero_shift: bool = False,
                     generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Candidate shifts for one batch (section 3).

    Args:
        height, width: image size.
        rand_pos: the fraction of all ``|T| = (2H-1)(2W-1)`` shifts to draw, ``K = max(1, floor(|T| rand_pos))``,
            without replacement and in random order; ``None`` (or 1.0) for the exhaustive search over all
            shifts in :func:`all_shifts` order.
        force_zero_shift: make the zero shift the first candidate (replacing the last random draw when it was
            not drawn), so K is unchanged.
        generator: source of randomness.

    Returns:
        (K, 2) int64 shifts (dy, dx).
    """
    grid = all_shifts(height, width)
    total = grid.shape[0]
    if rand_pos is not None:
        if isinstance(rand_pos, bool) or not isinstance(rand_pos, (int, float)) or not 0 < float(rand_pos) <= 1:
            raise ValueError(f"rand_pos must be a number in (0, 1] or None (exhaustive), got {rand_pos!r}")
    if rand_pos is None or float(rand_pos) >= 1.0:
        out = grid
    else:
        k = max(1, int(math.floor(total * float(rand_pos))))
        out = grid[torch.randperm(total, generator=generator)[:k]]
    if force_zero_shift:
        is_zero = (out == 0).all(dim=1)
        rest = out[~is_zero]
        if rest.shape[0] == out.shape[0]:  # the zero shift was not drawn: it replaces the last draw
            rest = rest[:-1]
        out = torch.cat([torch.zeros(1, 2, dtype=torch.int64), rest])
    return out.to(device)


# ----------------------------------------------------------------------------------------------
# The objective and the mix (sections 2-4)
# ----------------------------------------------------------------------------------------------
def _check_prior(prior: float | Tensor, b: int, device: torch.device) -> Tensor:
    if isinstance(prior, Tensor):
        if prior.numel() not in (1, b):
            raise ValueError(f"prior must be a float or a tensor of 1 or B={b} values, got shape {tuple(prior.shape)}")
        p = prior.detach().to(device=device, dtype=torch.float32).reshape(-1)
    elif isinstance(prior, (int, float)) and not isinstance(prior, bool):
        p = torch.tensor([float(prior)], device=device)
    else:
        raise TypeError(f"prior must be a float in [0, 1], got {type(prior).__name__}")
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise ValueError(f"prior must lie in [0, 1], got {p.tolist() if p.numel() < 8 else p}")
    return p.expand(b) if p.numel() == 1 else p


def _prepare(saliency: Tensor, perm: Tensor, prior: float | Tensor) -> tuple[Tensor, Tensor]:
    """Validate and return the scaled maps ``a`` (own) and ``p`` (partner), (B, H, W) float32."""
    if not isinstance(saliency, Tensor) or saliency.ndim != 3:
        raise ValueError(f"saliency must be a (B, H, W) tensor, got {getattr(saliency, 'shape', type(saliency).__name__)}")
    b = saliency.shape[0]
    if not isinstance(perm, Tensor) or perm.shape != (b,) or perm.dtype != torch.int64:
        raise ValueError(f"perm must be an int64 tensor of shape ({b},), got "
                         f"{getattr(perm, 'dtype', type(perm).__name__)} {tuple(getattr(perm, 'shape', ()))}")
    perm = perm.to(saliency.device)
    if b and (int(perm.min()) < 0 or int(perm.max()) >= b):
        raise ValueError(f"perm values must lie in [0, {b - 1}], got [{int(perm.min())}, {int(perm.max())}]")
    s = saliency.detach().float()
    if bool((s < 0).any()):
        raise ValueError("saliency must be non-negative (a reduced, smoothed gradient magnitude)")
    alpha = _check_prior(prior, b, s.device).view(b, 1, 1)
    s = normalize_saliency(torch.nan_to_num(s, nan=float("inf")))  # a NaN map becomes uniform
    a = alpha * s
    p = (1.0 - alpha) * s[perm]
    return a, p


def _inframe_mass(p: Tensor, shifts: Tensor) -> Tensor:
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


def _harmonic_gather(ra: Tensor, rp: Tensor, shifts: Tensor) -> Tensor:
    """``sum_frame a q / (a + q)`` for K given shifts, (B, K). Work B * (overlap pixels of the K shifts).

    Takes the reciprocals ``ra = 1/a`` and ``rp = 1/p`` (inf where a map is 0), since
    ``a q / (a + q) = 1 / (1/a + 1/q)``: per overlapping pixel one gather of each map, one add and
    one reciprocal, and 0 wherever either map is 0. Only pixels where the shifted partner overlaps
    the frame are visited (a quarter of the frame on average over random shifts), in a pixel-major
    (pixels, B) layout so that every gathered index copies B contiguous values.
    """
    b, h, w = ra.shape
    dev = ra.device
    ra_t = ra.reshape(b, h * w).t().contiguous()  # (HW, B)
    rp_t = rp.reshape(b, h * w).t().contiguous()
    i = torch.arange(h, device=dev).view(1, h, 1)
    j = torch.arange(w, device=dev).view(1, 1, w)
    out = []
    step = max(1, _chunk(dev) // max(1, b * h * w))
    for k0 in range(0, shifts.shape[0], step):  # memory-bounded chunks of candidates
        s = shifts[k0:k0 + step]
        k = s.shape[0]
        si = (i - s[:, 0].view(-1, 1, 1)).expand(k, h, w)  # the partner pixel under own pixel (i, j)
        sj = (j - s[:, 1].view(-1, 1, 1)).expand(k, h, w)
        overlap = (si >= 0) & (si < h) & (sj >= 0) & (sj < w)  # (k, H, W)
        cand, oi, oj = overlap.nonzero(as_tuple=True)
        part = si[overlap] * w + sj[overlap]
        t = rp_t.index_select(0, part).add_(ra_t.index_select(0, oi * w + oj)).reciprocal_()  # (N, B)
        out.append(torch.zeros(k, b, device=dev, dtype=t.dtype).index_add_(0, cand, t))
    return torch.cat(out, dim=0).t()


def _harmonic_grid(ra: Tensor, rp: Tensor) -> Tensor:
    """``sum_frame a q / (a + q)`` for every shift of :func:`all_shifts`, (B, (2H-1)(2W-1)).

    The term is non-zero only where the maps overlap, so it is accumulated over pairs of
    overlapping rows (own row r, partner row r - dy), all 2W-1 horizontal shifts of a row pair at
    once through ``unfold``: work B*H^2*(2W-1)*W instead of B*(2H-1)(2W-1)*H*W.
    """
    b, h, w = ra.shape
    dev = ra.device
    dy = torch.arange(-(h - 1), h, device=dev)
    r = torch.arange(h, device=dev)
    src = r.view(1, -1) - dy.view(-1, 1)  # (2H-1, H) partner row for own row r
    keep = (src >= 0) & (src < h)
    dy_idx = (dy.view(-1, 1) + (h - 1)).expand_as(src)[keep]  # (H^2,)
    own_row = r.view(1, -1).expand_as(src)[keep]
    part_row = src[keep]
    rows = F.pad(rp, (w - 1, w - 1), value=float("inf"))  # (B, H, 3W-2)
    harm = torch.zeros(b, 2 * h - 1, 2 * w - 1, device=dev, dtype=torch.float32)
    n = own_row.shape[0]
    step = max(1, _chunk(ra.device) // max(1, b * (2 * w - 1) * w))
    for r0 in range(0, n, step):  # memory-bounded chunks of row pairs
        sl = slice(r0, r0 + step)
        av = ra.index_select(1, own_row[sl]).unsqueeze(2)  # (B, r, 1, W)
        q = rows.index_select(1, part_row[sl]).unfold(2, w, 1)  # (B, r, 2W-1, W); window u <-> dx = W-1-u
        harm.index_add_(1, dy_idx[sl], (q + av).reciprocal_().sum(dim=3))
    return harm.flip(2).reshape(b, -1)  # dx ascending, dy-major like all_shifts


def sage_objective(saliency: Tensor, perm: Tensor, prior: float | Tensor, shifts: Tensor) -> Tensor:
    """The rearrangement objective ``J_b(t)`` of every pair for every candidate (section 3).

    Args:
        saliency: (B, H, W) non-negative smoothed saliency.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1] (a float, or a tensor of 1 or B values).
        shifts: (K, 2) int64 candidate shifts (dy, dx).

    Returns:
        (B, K) float32 objective values.
    """
    a, p = _prepare(saliency, perm, prior)
    return _objective(a, p, _check_shifts(shifts))


def _objective(a: Tensor, p: Tensor, shifts: Tensor) -> Tensor:
    """``J = sum(a) + inframe(p, t) - 2 sum a q / (a + q)`` for K shifts, (B, K) float32.

    The harmonic term is gathered for a few candidates, or read out of the full grid when there are
    so many candidates that the grid is cheaper (it costs about as much as 2*H*W gathered ones).
    """
    b, h, w = a.shape
    shifts = shifts.to(a.device)
    if bool(((shifts[:, 0].abs() >= h) | (shifts[:, 1].abs() >= w)).any()):
        raise ValueError(f"every shift must satisfy |dy| < H={h} and |dx| < W={w} (at least one pixel of overlap)")
    ra, rp = a.reciprocal(), p.reciprocal()
    if shifts.shape[0] > 2 * h * w:
        flat = (shifts[:, 0] + h - 1) * (2 * w - 1) + (shifts[:, 1] + w - 1)
        harm = _harmonic_grid(ra, rp).index_select(1, flat)
    else:
        harm = _harmonic_gather(ra, rp, shifts)
    return a.sum(dim=(1, 2)).unsqueeze(1) + _inframe_mass(p, shifts) - 2.0 * harm


def sage_mask(saliency: Tensor, perm: Tensor, prior: float | Tensor, chosen: Tensor) -> Tensor:
    """The mixing mask ``M_b = a_b / max(a_b + T_t*(p_b), eps)`` (section 4), (B, H, W) float32 in [0, 1]."""
    a, p = _prepare(saliency, perm, prior)
    q = translate(p, chosen.to(p.device))
    return a / (a + q).clamp_min(EPS)


def sage_mix(images: Tensor, saliency: Tensor, perm: Tensor, prior: float | Tensor,
             shifts: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Saliency-guided mixup with the optimal rearrangement (sections 2-4).

    Each pair ``(b, perm[b])`` keeps image ``b`` in place and shifts its partner by the candidate
    that maximises the saliency of the mix (ties: the earliest candidate), then blends the two pixel
    by pixel with the mask ``M = a / (a + T(p))``.

    Args:
        images: (B, C, H, W) float images (any float dtype; the mask is computed in float32).
        saliency: (B, H, W) non-negative smoothed saliency of ``images``.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1]: the own map is scaled by alpha, the partner's by 1 - alpha.
        shifts: (K, 2) int64 candidate shifts (dy, dx), content moving down by dy and right by dx.

    Returns:
        ``(mixed, lam, chosen)``: (B, C, H, W) mixed images in the images' dtype, (B,) float32 label
        weight of each sample's own class (the mean of the mask), (B, 2) int64 chosen shifts.

    Example:
        >>> import torch
        >>> x, s = torch.randn(4, 3, 8, 8), torch.rand(4, 8, 8)
        >>> mixed, lam, chosen = sage_mix(x, s, torch.tensor([1, 0, 3, 2]), 0.5, all_shifts(8, 8))
        >>> mixed.shape, lam.shape, chosen.shape
        (torch.Size([4, 3, 8, 8]), torch.Size([4]), torch.Size([4, 2]))
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a floating (B, C, H, W) tensor, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if not isinstance(saliency, Tensor) or saliency.shape != (images.shape[0],) + tuple(images.shape[2:]):
        raise ValueError(f"saliency must have shape (B, H, W) = {(images.shape[0],) + tuple(images.shape[2:])} "
                         f"to match images, got {tuple(getattr(saliency, 'shape', ()))}")
    shifts = _check_shifts(shifts)
    a, p = _prepare(saliency, perm, prior)
    best = _objective(a, p, shifts).argmax(dim=1)  # the first maximum: ties go to the earliest candidate
    chosen = shifts.to(images.device)[best]
    q = translate(p, chosen)
    mask = a / (a + q).clamp_min(EPS)  # (B, H, W); 0 where both maps are 0
    x = images.detach().float()
    partner = translate(x[perm.to(images.device)], chosen)
    m = mask.unsqueeze(1)
    mixed = (m * x + (1.0 - m) * partner).to(images.dtype)
    lam = mask.mean(dim=(1, 2))
    return mixed, lam, chosen
