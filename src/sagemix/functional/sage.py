"""SAGE, the plain method: saliency, translation, candidate shifts, the mask and the mix.

SAGE: "Saliency-Guided Mixup with Optimal Rearrangements", Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113. The method as this project implements it is written down in
docs/SAGE.md, whose sections the docstrings cite as "docs/SAGE.md §N". Read in this order: :func:`reduce_saliency` and
:func:`gaussian_smooth` (docs/SAGE.md §1), :func:`normalize_saliency` and the priors (docs/SAGE.md §2),
:func:`translate` and :func:`candidate_shifts` (docs/SAGE.md §3), :func:`sage_mix` (docs/SAGE.md §3-§4).

The rearrangement objective is computed fast, without loops, in
:mod:`sagemix.functional.sage_objective` (re-exported here as :func:`sage_objective`);
:mod:`sagemix.functional.sage_reference` is the same method as slow, plain float64 loops.

Everything here is a pure, batched tensor function: no Python loop over images or over candidate
shifts, no data-dependent shapes and no host read of a device value: value checks go through
:func:`sagemix.debug.check_values` (precise on CPU, asynchronous on a device).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import EPS, check_positive, is_int, is_number
from ..debug import check_values, to_device
from .mixup import check_perm
from .sage_objective import objective_from_maps
from .sage_search import coarse_to_fine_search

__all__ = [
    "EPS", "reduce_saliency", "gaussian_kernel1d", "gaussian_smooth", "normalize_saliency", "translate",
    "all_shifts", "check_rand_pos", "candidate_shifts", "prepare_maps", "sage_objective", "sage_mask",
    "best_shifts", "sage_blend", "sage_mix",
]

# ----------------------------------------------------------------------------------------------
# Saliency (docs/SAGE.md §1)
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
    if not is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be a positive odd int, got {kernel_size!r}")
    check_positive(sigma, "blur_sigma")
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
# Translation and candidate shifts (docs/SAGE.md §3)
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


def check_rand_pos(rand_pos: Any) -> float | None:
    """SAGE's ``rand_pos``: a number in [0, 1] (0: the zero shift only) or None (every shift), as a float."""
    if rand_pos is not None and (not is_number(rand_pos) or not 0 <= float(rand_pos) <= 1):
        raise ValueError(f"rand_pos must be a number in [0, 1] (0: the zero shift only) or None (exhaustive "
                         f"search), got {rand_pos!r}")
    return None if rand_pos is None else float(rand_pos)


def candidate_shifts(height: int, width: int, *, rand_pos: float | None = 0.01, force_zero_shift: bool = False,
                     generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
    """Candidate shifts for one batch (docs/SAGE.md §3).

    Args:
        height, width: image size.
        rand_pos: the fraction of all ``|T| = (2H-1)(2W-1)`` shifts to draw, ``K = max(1, floor(|T| rand_pos))``,
            without replacement and in random order; ``None`` (or 1.0) for the exhaustive search over all
            shifts in :func:`all_shifts` order; ``0`` for the zero shift only (no rearrangement: the
            "no rearrangement" ablation, the partner stays in place and only the saliency blend remains).
        force_zero_shift: make the zero shift the first candidate (replacing the last random draw when it was
            not drawn), so K is unchanged.
        generator: source of randomness.

    Returns:
        (K, 2) int64 shifts (dy, dx).
    """
    grid = all_shifts(height, width)
    total = grid.shape[0]
    rand_pos = check_rand_pos(rand_pos)
    if rand_pos is not None and float(rand_pos) == 0.0:
        out = torch.zeros(1, 2, dtype=torch.int64)
    elif rand_pos is None or float(rand_pos) >= 1.0:
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
# The objective and the mix (docs/SAGE.md §2-§4)
# ----------------------------------------------------------------------------------------------
def _check_prior(prior: float | Tensor, b: int, device: torch.device) -> Tensor:
    if isinstance(prior, Tensor):
        if prior.numel() not in (1, b):
            raise ValueError(f"prior must be a float or a tensor of 1 or B={b} values, got shape {tuple(prior.shape)}")
        p = prior.detach().to(device=device, dtype=torch.float32).reshape(-1)
        check_values((p >= 0) & (p <= 1), "prior must lie in [0, 1]",
                     lambda: f"got {p.tolist() if p.numel() < 8 else p}")
    elif is_number(prior):
        if not 0.0 <= float(prior) <= 1.0:
            raise ValueError(f"prior must lie in [0, 1], got {prior!r}")
        p = to_device(torch.tensor([float(prior)]), device)  # float32, made on the host, copied without blocking
    else:
        raise TypeError(f"prior must be a float in [0, 1], got {type(prior).__name__}")
    return p.expand(b) if p.numel() == 1 else p


def prepare_maps(saliency: Tensor, perm: Tensor, prior: float | Tensor) -> tuple[Tensor, Tensor]:
    """The scaled maps of docs/SAGE.md §2: ``a`` (own, times alpha) and ``p`` (partner, times 1 - alpha).

    Args:
        saliency: (B, H, W) non-negative saliency (a NaN map counts as uniform).
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1], a float or a tensor of 1 or B values.

    Returns:
        ``(a, p)``, two (B, H, W) float32 tensors; each map sums to alpha (resp. 1 - alpha).
    """
    if not isinstance(saliency, Tensor) or saliency.ndim != 3:
        raise ValueError(f"saliency must be a (B, H, W) tensor, got {getattr(saliency, 'shape', type(saliency).__name__)}")
    b = saliency.shape[0]
    if not isinstance(perm, Tensor) or perm.shape != (b,) or perm.dtype != torch.int64:
        raise ValueError(f"perm must be an int64 tensor of shape ({b},), got "
                         f"{getattr(perm, 'dtype', type(perm).__name__)} {tuple(getattr(perm, 'shape', ()))}")
    perm = check_perm(perm.to(saliency.device), b)
    s = saliency.detach().float()
    check_values(~(s < 0), "saliency must be non-negative (a reduced, smoothed gradient magnitude)",
                 lambda: f"got minimum {float(s.min()):g}")
    alpha = _check_prior(prior, b, s.device).view(b, 1, 1)
    s = normalize_saliency(torch.nan_to_num(s, nan=float("inf")))  # a NaN map becomes uniform
    a = alpha * s
    p = (1.0 - alpha) * s[perm]
    return a, p


def sage_objective(saliency: Tensor, perm: Tensor, prior: float | Tensor, shifts: Tensor) -> Tensor:
    """The rearrangement objective ``J_b(t)`` of every pair for every candidate (docs/SAGE.md §3).

    Args:
        saliency: (B, H, W) non-negative smoothed saliency.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1] (a float, or a tensor of 1 or B values).
        shifts: (K, 2) int64 candidate shifts (dy, dx).

    Returns:
        (B, K) float32 objective values.
    """
    a, p = prepare_maps(saliency, perm, prior)
    return objective_from_maps(a, p, _check_shifts(shifts))


def sage_mask(saliency: Tensor, perm: Tensor, prior: float | Tensor, chosen: Tensor) -> Tensor:
    """The mixing mask ``M_b = a_b / max(a_b + T_t*(p_b), eps)`` (docs/SAGE.md §4), (B, H, W) float32 in [0, 1]."""
    a, p = prepare_maps(saliency, perm, prior)
    return _mask_from_maps(a, p, chosen)


def _mask_from_maps(a: Tensor, p: Tensor, chosen: Tensor) -> Tensor:
    q = translate(p, chosen.to(p.device))
    return a / (a + q).clamp_min(EPS)  # (B, H, W); 0 where both maps are 0


def _search_maps(a: Tensor, p: Tensor, shifts: Tensor | str) -> Tensor:
    """The chosen (B, 2) shift of every pair from the scaled maps (the search of :func:`best_shifts`)."""
    if isinstance(shifts, str) and shifts == "coarse_to_fine":
        return coarse_to_fine_search(a, p)[0]
    shifts = _check_shifts(shifts)
    best = objective_from_maps(a, p, shifts).argmax(dim=1)  # the first maximum: ties go to the earliest candidate
    return shifts.to(a.device)[best]


def _blend_maps(images: Tensor, a: Tensor, p: Tensor, perm: Tensor, chosen: Tensor) -> tuple[Tensor, Tensor]:
    """The mix of :func:`sage_blend` from the scaled maps: ``(mixed, lam)``."""
    mask = _mask_from_maps(a, p, chosen)
    x = images.detach().float()
    partner = translate(x[perm.to(images.device)], chosen.to(images.device))
    m = mask.unsqueeze(1)
    mixed = (m * x + (1.0 - m) * partner).to(images.dtype)
    return mixed, mask.mean(dim=(1, 2))


def _check_images_saliency(images: Tensor, saliency: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"images must be a floating (B, C, H, W) tensor, got "
                         f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    if not isinstance(saliency, Tensor) or saliency.shape != (images.shape[0],) + tuple(images.shape[2:]):
        raise ValueError(f"saliency must have shape (B, H, W) = {(images.shape[0],) + tuple(images.shape[2:])} "
                         f"to match images, got {tuple(getattr(saliency, 'shape', ()))}")


def best_shifts(saliency: Tensor, perm: Tensor, prior: float | Tensor, shifts: Tensor | str) -> Tensor:
    """The rearrangement search of SAGE (docs/SAGE.md §3): each pair's shift that maximises the
    saliency of the mix among ``shifts`` (ties: the earliest candidate).

    Args:
        saliency: (B, H, W) non-negative smoothed saliency.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1] (a float, or a tensor of 1 or B values).
        shifts: (K, 2) int64 candidate shifts (dy, dx), or ``"coarse_to_fine"`` for
            :func:`sagemix.functional.sage_search.coarse_to_fine_search`.

    Returns:
        (B, 2) int64 chosen shifts, on the saliency's device.
    """
    a, p = prepare_maps(saliency, perm, prior)
    return _search_maps(a, p, shifts)


def sage_blend(images: Tensor, saliency: Tensor, perm: Tensor, prior: float | Tensor,
               chosen: Tensor) -> tuple[Tensor, Tensor]:
    """The mix of SAGE (docs/SAGE.md §4) with the partners shifted by ``chosen``: each pixel blends
    the image and its shifted partner by the mask ``M = a / (a + T(p))``.

    Args:
        images: (B, C, H, W) float images (any float dtype; the mask is computed in float32).
        saliency: (B, H, W) non-negative smoothed saliency of ``images``.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1].
        chosen: (B, 2) int64 shift of each partner (from :func:`best_shifts`).

    Returns:
        ``(mixed, lam)``: (B, C, H, W) mixed images in the images' dtype and the (B,) float32 label
        weight of each sample's own class (the mean of the mask).
    """
    _check_images_saliency(images, saliency)
    a, p = prepare_maps(saliency, perm, prior)
    return _blend_maps(images, a, p, perm, chosen)


def sage_mix(images: Tensor, saliency: Tensor, perm: Tensor, prior: float | Tensor,
             shifts: Tensor | str) -> tuple[Tensor, Tensor, Tensor]:
    """Saliency-guided mixup with the optimal rearrangement (docs/SAGE.md §2-§4): :func:`best_shifts`,
    then :func:`sage_blend` (the scaled maps computed once for both).

    Each pair ``(b, perm[b])`` keeps image ``b`` in place and shifts its partner by the candidate
    that maximises the saliency of the mix (ties: the earliest candidate), then blends the two pixel
    by pixel with the mask ``M = a / (a + T(p))``.

    Args:
        images: (B, C, H, W) float images (any float dtype; the mask is computed in float32).
        saliency: (B, H, W) non-negative smoothed saliency of ``images``.
        perm: (B,) int64 partner of each sample.
        prior: alpha in [0, 1]: the own map is scaled by alpha, the partner's by 1 - alpha.
        shifts: (K, 2) int64 candidate shifts (dy, dx), content moving down by dy and right by dx,
            or ``"coarse_to_fine"`` for :func:`sagemix.functional.sage_search.coarse_to_fine_search`.

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
    _check_images_saliency(images, saliency)
    a, p = prepare_maps(saliency, perm, prior)
    chosen = _search_maps(a, p, shifts)
    mixed, lam = _blend_maps(images, a, p, perm, chosen)
    return mixed, lam, chosen
