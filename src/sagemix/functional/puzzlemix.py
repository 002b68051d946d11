"""Puzzle Mix kernels: saliency unaries, data smoothness, the graph-cut mask, greedy transport, the mix.

Puzzle Mix: Exploiting Saliency and Local Statistics for Optimal Mixup (Kim, Choo & Song, ICML 2020),
https://arxiv.org/abs/2009.06962. This module follows the paper and its research code (the steps
below); everything except the per-sample graph cut is batched tensor code.

For a batch ``x`` (B, C, H, W) with partners ``index`` (image 1 = ``x``, image 2 = ``x[index]``)
and an ``n x n`` block grid (blocks of ``H/n x W/n`` pixels):

1. :func:`block_unary`: the saliency average-pooled to the grid, each map normalised to sum 1
   (``s1``; ``s2 = s1[index]``).
2. :func:`boundary_differences`: mean absolute differences across every boundary between 4-adjacent
   blocks of the de-normalised images, average-pooled with ``neigh = min(neigh_size, block)``, for
   the 4 choices of sources (own/own, own/partner, partner/own, partner/partner).
3. :func:`smoothness_terms`: those 2x2 tables, scaled by ``beta' * gamma`` (``beta' = beta/(16 n)``),
   become unary corrections (half-sums to both ends) and one symmetric edge weight
   ``beta' + (d12 + d21 - d11 - d22)/2`` per edge.
4. :func:`label_unary` and :func:`quantise_energy`: the unary of mask level ``z = 1 - l/(m-1)`` is
   ``z*cost1 + (1-z)*cost2 - eta' log(P(z) + 1e-8)`` with ``P`` the Binomial(m-1, lam) prior over
   units of image 1 and ``eta' = eta/n^2``; pairwise ``edge * (l_p - l_q)^2/(m-1)^2``. Everything is
   scaled by ``1000 n^2`` and truncated to int32; the whole energy is then multiplied by ``(m-1)^2``
   so that the label distance ``(l_p - l_q)^2`` is an integer too (the same minimiser as the research
   code's, whose float label distance makes ``gco`` rescale by 1e5 and can overflow int32).
5. :func:`graphcut_mask`: one alpha-beta swap cut per sample (:mod:`sagemix.functional.graphcut`).
6. :func:`mask_transport_plan` / :func:`greedy_transport_plan` / :func:`transport_blocks` (in
   :mod:`sagemix.functional.puzzlemix_transport`, re-exported here): the greedy transport of each
   image's blocks towards the region its mask keeps, moved with one batched matmul.
7. :func:`puzzle_mix`: everything together; ``rho = mean(z)`` weights the own label.

Conventions beyond the paper (documented, they do not change the default CIFAR behaviour):

- Non-square images use an ``n x n`` grid of rectangular blocks; ``n`` must divide ``H`` and ``W``.
- The transport cell is relative to the image (``t_size="auto"``, the default): ``max(4, min(H, W) // 8)``
  pixels, i.e. the research code's CIFAR cell of 4 px up to 39 px images (so CIFAR is unchanged) and
  an 8 x 8 transport grid (or the block grid, when finer) beyond, e.g. 28 px cells at 224 px: at most
  ``max(n, 8)^2`` cells (256 at ``n = 16``) instead of 12,544 with a fixed 4 px cell. The authors'
  ImageNet code (snu-mllab/PuzzleMix, ``imagenet/mixup.py`` with ``imagenet/train.py``) transports
  on the graph-cut block grid itself (``block_num = 2**randint(1, 5)``, ``t_eps = 0.8``; it also
  caps ``neigh_size`` at 2 and transports in chunks of 16 images); ``t_size="block"`` reproduces that
  cell, an int keeps a fixed cell in pixels.
- ``neigh`` (and the transport cell ``t``) is the largest divisor of the block side that is at most
  ``neigh_size`` (``t_size``): equal to ``min(neigh_size, block)`` whenever that divides the block, as
  for every power-of-two size.
- A rectangular transport grid ``Th x Tw`` normalises squared distances by ``(max(Th, Tw) - 1)^2``
  and runs ``max(Th, Tw)`` rounds (``(N-1)^2`` and ``N`` on square grids, as in the research code).
- An all-zero saliency map normalises to the uniform map (the research code divides by zero).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_int
from .graphcut import cut_grid_batch
from .pool import WorkerPool
from .puzzlemix_transport import (TRANSPORT_CELLS, TRANSPORT_RESOLVE, greedy_transport_plan, largest_divisor_at_most,
                                  mask_transport_plan, transport_blocks, transport_cell, transport_cost_matrix)

__all__ = ["largest_divisor_at_most", "block_unary", "boundary_differences", "smoothness_terms",
           "label_prior", "label_unary", "quantise_energy", "graphcut_mask", "transport_cost_matrix",
           "greedy_transport_plan", "mask_transport_plan", "transport_blocks", "fgsm_draws", "fgsm_noise",
           "PuzzleMixResult", "puzzle_mix", "TRANSPORT_RESOLVE", "TRANSPORT_CELLS", "transport_cell"]


# -- helpers ---------------------------------------------------------------------------------------
def _host(t: Tensor) -> Tensor:
    """``t`` on the CPU, without a call (or a copy) when it already is."""
    return t if t.device.type == "cpu" else t.cpu()


def _grid_blocks(h: int, w: int, grid_size: int) -> tuple[int, int]:
    check_int(grid_size, "grid_size", 1)
    if h % grid_size or w % grid_size:
        raise ValueError(f"grid_size={grid_size} must divide the image size, got H={h}, W={w}")
    return h // grid_size, w // grid_size


def _channel_vector(value: Sequence[float] | Tensor, c: int, name: str, x: Tensor) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float32).flatten()
    if t.numel() == 1:
        t = t.expand(c)
    if t.numel() != c:
        raise ValueError(f"{name} must have one value per channel ({c}), got {t.numel()} values")
    return t.to(device=x.device).reshape(1, c, 1, 1)


def _check_index(index: Tensor, b: int) -> Tensor:
    if not isinstance(index, Tensor) or index.dtype not in (torch.int64, torch.int32) or index.shape != (b,):
        raise ValueError(f"index must be an int64 tensor of shape ({b},), got "
                         f"{getattr(index, 'dtype', type(index).__name__)} {tuple(getattr(index, 'shape', ()))}")
    return index.long()


# -- 1. unary saliency -----------------------------------------------------------------------------
def block_unary(saliency: Tensor, cell: tuple[int, int]) -> Tensor:
    """Average-pool a saliency map over ``cell``-sized blocks and normalise each map to sum 1.

    Args:
        saliency: (B, H, W) non-negative saliency.
        cell: (block height, block width); must divide (H, W).

    Returns:
        (B, H/ch, W/cw) float maps, each summing to 1 (uniform where a map is all zero).
    """
    pooled = F.avg_pool2d(saliency.unsqueeze(1), cell).squeeze(1)
    total = pooled.sum(dim=(1, 2), keepdim=True)
    uniform = torch.full_like(pooled, 1.0 / (pooled.shape[1] * pooled.shape[2]))
    return torch.where(total > 0, pooled / total.clamp_min(torch.finfo(pooled.dtype).tiny), uniform)


# -- 2-3. data smoothness --------------------------------------------------------------------------
def boundary_differences(images01: Tensor, index: Tensor, grid_size: int, neigh_size: int = 4
                         ) -> tuple[Tensor, Tensor]:
    """Mean absolute differences across block boundaries for the 4 source combinations.

    The images are average-pooled with ``neigh x neigh`` cells (``neigh`` per side: the largest
    divisor of the block side not above ``neigh_size``). Across the boundary between block rows
    ``i`` and ``i+1`` the last cell row of the upper block (source ``a``) is compared with the first
    cell row of the lower block (source ``b``): ``|P_a - P_b|`` averaged over channels and over the
    block's cells along the boundary. Likewise for the boundary between block columns.

    Args:
        images01: (B, C, H, W) de-normalised images (0-1 scale).
        index: (B,) partners; source 0 is the image itself, source 1 is ``images01[index]``.
        grid_size: n, the grid side (must divide H and W).
        neigh_size: the pooling cell side before taking differences.

    Returns:
        ``(dv, dh)``: ``dv`` (B, 2, 2, n-1, n) with ``dv[:, a, b, i, j]`` between block ``(i, j)``
        from source ``a`` and block ``(i+1, j)`` from source ``b``; ``dh`` (B, 2, 2, n, n-1) between
        ``(i, j)`` from ``a`` and ``(i, j+1)`` from ``b``.
    """
    b, _, h, w = images01.shape
    bh, bw = _grid_blocks(h, w, grid_size)
    nh, nw = largest_divisor_at_most(bh, neigh_size), largest_divisor_at_most(bw, neigh_size)
    kh, kw = bh // nh, bw // nw
    pooled = F.avg_pool2d(images01, (nh, nw))                            # (B, C, Hp, Wp)
    src = torch.stack([pooled, pooled[index]], dim=1)                    # (B, 2, C, Hp, Wp)
    hp, wp = pooled.shape[-2:]
    n = grid_size
    top, bottom = src[..., kh - 1:hp - 1:kh, :], src[..., kh:hp:kh, :]  # (B, 2, C, n-1, Wp)
    dv = (top[:, :, None] - bottom[:, None]).abs().mean(dim=3)          # (B, 2, 2, n-1, Wp)
    dv = dv.reshape(b, 2, 2, n - 1, n, kw).mean(dim=-1)
    left, right = src[..., :, kw - 1:wp - 1:kw], src[..., :, kw:wp:kw]  # (B, 2, C, Hp, n-1)
    dh = (left[:, :, None] - right[:, None]).abs().mean(dim=3)          # (B, 2, 2, Hp, n-1)
    dh = dh.reshape(b, 2, 2, n, kh, n - 1).mean(dim=-2)
    return dv, dh


def smoothness_terms(s1: Tensor, s2: Tensor, dv: Tensor, dh: Tensor, *, beta_n: float, gamma: float
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fold the 2x2 boundary tables into unary corrections and one edge weight per edge.

    A pairwise table ``d[a, b]`` (source of the first block, source of the second; 0 = image 1,
    1 = image 2), scaled by ``beta_n * gamma``, equals (up to a constant) the unary
    ``(d[a, 0] + d[a, 1])/2`` on the first block, ``(d[0, b] + d[1, b])/2`` on the second block, and
    ``w = (d[0, 1] + d[1, 0] - d[0, 0] - d[1, 1])/2`` when the sources differ.

    Args:
        s1: (B, n, n) normalised saliency of image 1; s2: that of image 2.
        dv, dh: from :func:`boundary_differences`.
        beta_n: ``beta' = beta / (16 n)``; gamma: the data-smoothness weight.

    Returns:
        ``(cost1, cost2, edge_v, edge_h)``: ``cost1`` (B, n, n) the cost of a block showing image 1
        (``s2`` lost plus its corrections), ``cost2`` that of showing image 2; ``edge_v``
        (B, n-1, n) and ``edge_h`` (B, n, n-1) the weights ``beta' + w``.
    """
    dv = dv * (beta_n * gamma)
    dh = dh * (beta_n * gamma)

    def fold(first: Tensor, second: Tensor, dim: int) -> Tensor:
        # first: contributions to the first block of each edge, second: to the second block.
        pad_first = (0, 1) if dim == -1 else (0, 0, 0, 1)
        pad_second = (1, 0) if dim == -1 else (0, 0, 1, 0)
        return F.pad(first, pad_first) + F.pad(second, pad_second)

    cost1 = (s2 + fold((dv[:, 0, 0] + dv[:, 0, 1]) / 2, (dv[:, 0, 0] + dv[:, 1, 0]) / 2, -2)
             + fold((dh[:, 0, 0] + dh[:, 0, 1]) / 2, (dh[:, 0, 0] + dh[:, 1, 0]) / 2, -1))
    cost2 = (s1 + fold((dv[:, 1, 1] + dv[:, 1, 0]) / 2, (dv[:, 1, 1] + dv[:, 0, 1]) / 2, -2)
             + fold((dh[:, 1, 1] + dh[:, 1, 0]) / 2, (dh[:, 1, 1] + dh[:, 0, 1]) / 2, -1))
    edge_v = beta_n + (dv[:, 0, 1] + dv[:, 1, 0] - dv[:, 0, 0] - dv[:, 1, 1]) / 2
    edge_h = beta_n + (dh[:, 0, 1] + dh[:, 1, 0] - dh[:, 0, 0] - dh[:, 1, 1]) / 2
    return cost1, cost2, edge_v, edge_h


# -- 4. the labelling energy -----------------------------------------------------------------------
def label_prior(lam: Tensor, n_labels: int) -> Tensor:
    """Binomial(m-1, lam) probability of each label's number of image-1 units.

    Label ``l`` has mask value ``z = 1 - l/(m-1)``, i.e. ``k = m-1-l`` units of image 1, so
    ``P(l) = C(m-1, k) lam^k (1-lam)^(m-1-k)`` (for m = 3: lam^2, 2 lam(1-lam), (1-lam)^2).

    Args:
        lam: (B,) float64 prior weight of image 1.
        n_labels: m >= 2.

    Returns:
        (B, m) float64.
    """
    m1 = n_labels - 1
    k = torch.arange(m1, -1, -1, dtype=torch.float64, device=lam.device)             # units of image 1
    comb = torch.tensor([math.comb(m1, int(v)) for v in k.tolist()], dtype=torch.float64, device=lam.device)
    lam = lam.to(torch.float64).reshape(-1, 1)
    return comb * lam ** k * (1.0 - lam) ** (m1 - k)


def label_unary(cost1: Tensor, cost2: Tensor, lam: Tensor, *, n_labels: int, eta_n: float,
                eps: float = 1e-8) -> Tensor:
    """Unary of every mask level: ``z*cost1 + (1-z)*cost2 - eta_n * log(P(z) + eps)``.

    Args:
        cost1, cost2: (B, n, n) from :func:`smoothness_terms`.
        lam: (B,) prior weight of image 1.
        n_labels: m; eta_n: ``eta' = eta / n^2``.

    Returns:
        (B, n, n, m) float64, label ``l`` meaning ``z = 1 - l/(m-1)``.
    """
    z = 1.0 - torch.arange(n_labels, dtype=torch.float64, device=cost1.device) / (n_labels - 1)
    prior = -eta_n * torch.log(label_prior(lam.to(cost1.device), n_labels) + eps)    # (B, m)
    return (z * cost1.double()[..., None] + (1.0 - z) * cost2.double()[..., None]
            + prior[:, None, None, :])


def quantise_energy(unary: Tensor, edge_v: Tensor, edge_h: Tensor, *, grid_size: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scale by ``1000 n^2``, truncate to int32 and make the label distance integral.

    The float energy ``sum U[p, l_p] + sum edge_pq (l_p - l_q)^2/(m-1)^2`` becomes the int energy
    ``sum (m-1)^2 trunc(S U[p, l_p]) + sum trunc(S edge_pq) (l_p - l_q)^2`` with ``S = 1000 n^2``,
    which is ``(m-1)^2`` times the research code's quantised energy.

    Returns:
        ``(unary_int (B, n, n, m), pairwise (m, m), cost_v (B, n-1, n), cost_h (B, n, n-1))``,
        int32 NumPy arrays for :func:`sagemix.functional.graphcut.cut_grid_batch`.
    """
    m = unary.shape[-1]
    scale = 1000.0 * grid_size ** 2
    u = _host(torch.trunc(unary.double() * scale)).numpy().astype(np.int64) * (m - 1) ** 2
    ev = _host(torch.trunc(edge_v.double() * scale)).numpy().astype(np.int64)
    eh = _host(torch.trunc(edge_h.double() * scale)).numpy().astype(np.int64)
    lim = np.iinfo(np.int32).max
    for name, arr in (("unary", u), ("edge_v", ev), ("edge_h", eh)):
        if arr.size and np.abs(arr).max() > lim:
            raise ValueError(f"the quantised {name} overflows int32 (max |value| {np.abs(arr).max()}); "
                             "the saliency or the options beta/gamma/eta are too large")
    labels = np.arange(m)
    pairwise = (labels[:, None] - labels[None, :]) ** 2
    return u.astype(np.int32), pairwise.astype(np.int32), ev.astype(np.int32), eh.astype(np.int32)


# -- 5. the mask -----------------------------------------------------------------------------------
def graphcut_mask(images01: Tensor, saliency: Tensor, index: Tensor, lam: float | Tensor, *, grid_size: int,
                  n_labels: int = 3, beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2,
                  neigh_size: int = 4, pool: WorkerPool | None = None) -> tuple[Tensor, Tensor]:
    """The Puzzle Mix mask of every sample on the ``n x n`` grid (steps 1-5).

    Args:
        images01: (B, C, H, W) de-normalised images (0-1 scale).
        saliency: (B, H, W) non-negative saliency.
        index: (B,) partners.
        lam: prior weight of image 1, a float or (B,) tensor in [0, 1].
        grid_size: n (must divide H and W).
        n_labels, beta, gamma, eta, neigh_size: the Puzzle Mix options.
        pool: an optional :class:`sagemix.functional.pool.WorkerPool` for the per-sample cuts.

    Returns:
        ``(z, s1)``: ``z`` (B, n, n) float32 mask values in ``{1 - l/(m-1)}`` (1 = image 1) on the
        images' device, ``s1`` (B, n, n) the normalised block saliency of image 1.
    """
    b = images01.shape[0]
    n = grid_size
    bh, bw = _grid_blocks(images01.shape[2], images01.shape[3], n)
    lam_t = torch.as_tensor(lam, dtype=torch.float64).reshape(-1).expand(b) if not isinstance(lam, Tensor) \
        else lam.to(torch.float64).reshape(-1).expand(b)
    s1 = block_unary(saliency.float(), (bh, bw))
    s2 = s1[index]
    dv, dh = boundary_differences(images01.float(), index, n, neigh_size)
    beta_n = beta / (n * 16)
    cost1, cost2, ev, eh = smoothness_terms(s1, s2, dv, dh, beta_n=beta_n, gamma=gamma)
    # One device-to-host transfer for the whole batch: the four terms packed into one tensor.
    sizes = [cost1[0].numel(), cost2[0].numel(), ev[0].numel(), eh[0].numel()]
    packed = torch.cat([t.reshape(b, -1).float() for t in (cost1, cost2, ev, eh)], dim=1).cpu()
    c1, c2, ev_h, eh_h = packed.split(sizes, dim=1)
    unary = label_unary(c1.reshape(cost1.shape), c2.reshape(cost2.shape), _host(lam_t), n_labels=n_labels,
                        eta_n=eta / n ** 2)
    u, pw, cv, ch = quantise_energy(unary, ev_h.reshape(ev.shape), eh_h.reshape(eh.shape), grid_size=n)
    labels = cut_grid_batch(u, pw, cv, ch, algorithm="swap", pool=pool)
    z = 1.0 - torch.from_numpy(labels).float() / (n_labels - 1)
    return z.to(images01.device), s1


# -- 8. adversarial noise --------------------------------------------------------------------------
def fgsm_draws(shape: Sequence[int], eps: float, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The random draws of :func:`fgsm_noise`, on the CPU: the start ``U(-eps/2, eps/2)`` of ``shape``
    (float32) and the 0-d factor ``c ~ U(0, 1)``."""
    start = (torch.rand(tuple(shape), generator=generator) - 0.5) * eps
    return start, torch.rand((), generator=generator)


def fgsm_noise(images01: Tensor, grad_sign: Tensor, eps: float, *, generator: torch.Generator | None = None,
               draws: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """FGSM-style noise with a random start, on the 0-1 pixel scale (Puzzle Mix's adversarial option).

    ``delta0 ~ U(-eps/2, eps/2)`` (clipped so ``x + delta0`` stays in [0, 1]); then
    ``delta = c * clamp(delta0 + 1.5 eps sign(g), -eps, eps)`` with one ``c ~ U(0, 1)`` per batch.

    Args:
        images01: (B, C, H, W) images on the 0-1 scale.
        grad_sign: (B, C, H, W) sign of the loss gradient w.r.t. the input.
        eps: the noise bound.
        generator: the torch generator for the random start and ``c`` (drawn on CPU).
        draws: the ``(start, c)`` of :func:`fgsm_draws`, drawn before (then ``generator`` is unused).

    Returns:
        (B, C, H, W) float32 noise on the images' device.
    """
    start, coef = fgsm_draws(images01.shape, eps, generator) if draws is None else draws
    start = start.to(images01.device)
    start = (images01.float() + start).clamp(0.0, 1.0) - images01.float()
    delta = (start + 1.5 * eps * grad_sign.float()).clamp(-eps, eps)
    return coef.to(images01.device) * delta


# -- 7. everything together ------------------------------------------------------------------------
class PuzzleMixResult(NamedTuple):
    """What :func:`puzzle_mix` returns.

    Attributes:
        images: (B, C, H, W) mixed images in the input dtype.
        lam: (B,) ``rho = mean(z)``, the weight of each sample's own label.
        mask: (B, n, n) the graph-cut mask ``z`` on the block grid (1 = the sample itself).
        pixel_mask: (B, H, W) ``z`` nearest-upsampled to the image.
    """

    images: Tensor
    lam: Tensor
    mask: Tensor
    pixel_mask: Tensor


def puzzle_mix(images: Tensor, saliency: Tensor, index: Tensor, lam: float | Tensor, *, grid_size: int,
               mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, n_labels: int = 3,
               beta: float = 1.2, gamma: float = 0.5, eta: float = 0.2, neigh_size: int = 4,
               transport: bool = True, t_eps: float = 0.8, t_size: int | str = "auto",
               transport_resolve: str = "cheapest", noise1: Tensor | None = None, noise2: Tensor | None = None,
               pool: WorkerPool | None = None) -> PuzzleMixResult:
    """Puzzle Mix of a batch with its partners (steps 3-7 of the module docstring).

    Args:
        images: (B, C, H, W) normalised images.
        saliency: (B, H, W) non-negative saliency of ``images``.
        index: (B,) int64 partners.
        lam: the Binomial prior's weight of image 1 (float or (B,) tensor in [0, 1]).
        grid_size: n (must divide H and W).
        mean, std: per-channel normalisation (0-1 scale) used to de-normalise.
        n_labels, beta, gamma, eta, neigh_size: the labelling options.
        transport, t_eps, t_size, transport_resolve: the transport options.
        noise1, noise2: optional (B, C, H, W) 0-1-scale noise added (then clipped to [0, 1]) to image 1
            and image 2 after the cut, before transport (the adversarial option).
        pool: optional :class:`sagemix.functional.pool.WorkerPool`.

    Returns:
        :class:`PuzzleMixResult`.

    Example:
        >>> import torch
        >>> x, s = torch.rand(4, 3, 8, 8), torch.rand(4, 8, 8)
        >>> out = puzzle_mix(x, s, torch.tensor([1, 0, 3, 2]), 0.5, grid_size=2, mean=[0.0] * 3, std=[1.0] * 3)
        >>> out.images.shape, bool(((out.lam >= 0) & (out.lam <= 1)).all())
        (torch.Size([4, 3, 8, 8]), True)
    """
    b, c, h, w = images.shape
    bh, bw = _grid_blocks(h, w, grid_size)
    saliency = saliency.to(images.device)  # the saliency may come from another device
    if saliency.shape != (b, h, w):
        raise ValueError(f"saliency must have shape {(b, h, w)} to match the images, got {tuple(saliency.shape)}")
    index = _check_index(index, b)
    x = images.float()
    mean_t, std_t = _channel_vector(mean, c, "mean", x), _channel_vector(std, c, "std", x)
    x01 = x * std_t + mean_t
    z, s1 = graphcut_mask(x01, saliency, index, lam, grid_size=grid_size, n_labels=n_labels, beta=beta,
                          gamma=gamma, eta=eta, neigh_size=neigh_size, pool=pool)
    x1, x2 = x, x[index]
    if noise1 is not None:
        x1 = ((x01 + noise1.float()).clamp(0.0, 1.0) - mean_t) / std_t
    if noise2 is not None:
        x2 = ((x01[index] + noise2.float()).clamp(0.0, 1.0) - mean_t) / std_t
    if transport:
        th, tw = transport_cell(h, w, (bh, bw), t_size)
        if (th, tw) == (bh, bw):
            zt, u1 = z, s1
        else:
            zt = z.repeat_interleave(bh // th, dim=1).repeat_interleave(bw // tw, dim=2)
            u1 = block_unary(saliency.float(), (th, tw))
        grid = (zt.shape[1], zt.shape[2])
        plan1 = mask_transport_plan(zt, u1, t_eps=t_eps, resolve=transport_resolve)
        plan2 = mask_transport_plan(1.0 - zt, u1[index], t_eps=t_eps, resolve=transport_resolve)
        x1 = transport_blocks(x1, plan1, grid)
        x2 = transport_blocks(x2, plan2, grid)
    zp = z.repeat_interleave(bh, dim=1).repeat_interleave(bw, dim=2)           # nearest upsampling
    zc = zp.unsqueeze(1)
    mixed = zc * x1 + (1.0 - zc) * x2
    rho = zp.mean(dim=(1, 2))
    if c > 1 and images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous():
        mixed = mixed.contiguous(memory_format=torch.channels_last)  # keep the caller's layout
    return PuzzleMixResult(mixed.to(images.dtype), rho, z, zp)
