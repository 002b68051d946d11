"""Puzzle Mix's transport: the transport cell, the greedy transport plan and the block moves.

Step 6 of :mod:`sagemix.functional.puzzlemix` (Kim, Choo & Song, ICML 2020,
https://arxiv.org/abs/2009.06962): each image's salient blocks are moved, greedily, towards the
region its mask keeps. The functions are re-exported by :mod:`sagemix.functional.puzzlemix`.

The transport cell is relative to the image (``t_size="auto"``): ``max(4, min(H, W) // 8)`` pixels,
the research code's CIFAR cell of 4 px up to 39 px images and 28 px at 224 px (at most
``max(n, 8)^2`` cells instead of 12,544 with a fixed 4 px cell at grid 16). The authors' ImageNet
code (snu-mllab/PuzzleMix, ``imagenet/mixup.py`` with ``imagenet/train.py``) transports on the
graph-cut block grid itself; ``t_size="block"`` reproduces that.

Nothing here imports from the rest of sagemix.
"""
from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..checks import is_int

__all__ = ["TRANSPORT_RESOLVE", "TRANSPORT_CELLS", "largest_divisor_at_most", "transport_cell",
           "transport_cost_matrix", "greedy_transport_plan", "mask_transport_plan", "transport_blocks"]

#: How a target claimed by several source blocks is resolved in one transport round:
#: ``"cheapest"`` (default): the claimant with the lowest cost wins.
#: ``"research"``: the research code's ``argmin(plan * cost)``, which also counts the non-claimants'
#: zeros, so a target whose claimants all have a positive cost gets no winner that round.
TRANSPORT_RESOLVE = ("cheapest", "research")
#: The named transport cells: ``"auto"`` (relative to the image) and ``"block"`` (the graph-cut block).
TRANSPORT_CELLS = ("auto", "block")


def largest_divisor_at_most(n: int, cap: int) -> int:
    """The largest divisor of ``n`` that is at most ``cap`` (``n, cap >= 1``)."""
    if n < 1 or cap < 1:
        raise ValueError(f"n and cap must be >= 1, got n={n}, cap={cap}")
    for d in range(min(n, cap), 0, -1):
        if n % d == 0:
            return d
    return 1  # pragma: no cover - 1 always divides




def transport_cell(height: int, width: int, block: tuple[int, int], t_size: int | str = "auto"
                   ) -> tuple[int, int]:
    """The transport cell ``(th, tw)`` in pixels for a ``height x width`` image and a graph-cut block.

    Args:
        height, width: image size.
        block: (block height, block width) of the graph-cut grid.
        t_size: the cell side in pixels (an int >= 1), ``"auto"`` (``max(4, min(H, W) // 8)`` px: 4 px
            up to 39 px images, 28 px at 224) or ``"block"`` (the graph-cut block, as the authors'
            ImageNet code).

    Returns:
        Each side is the largest divisor of the block side that is at most the requested side.

    Example:
        >>> transport_cell(32, 32, (2, 2)), transport_cell(224, 224, (14, 14)), transport_cell(224, 224, (56, 56))
        ((2, 2), (14, 14), (28, 28))
    """
    if t_size == "block":
        return block
    if t_size == "auto":
        side = max(4, min(height, width) // 8)
    elif not is_int(t_size) or t_size < 1:
        raise ValueError(f"t_size must be an int >= 1 or one of {TRANSPORT_CELLS}, got {t_size!r}")
    else:
        side = t_size
    return largest_divisor_at_most(block[0], side), largest_divisor_at_most(block[1], side)


# -- 6. transport ----------------------------------------------------------------------------------
def transport_cost_matrix(grid_h: int, grid_w: int | None = None, *, device: torch.device | str | None = None,
                          dtype: torch.dtype = torch.float32) -> Tensor:
    """Squared grid distances between all cells, normalised by ``(N-1)^2`` (``N = max(h, w)``).

    Cells are numbered row-major (``u = i * grid_w + j``); any grid side works.

    Returns:
        (h*w, h*w) tensor; all zero for a single cell.
    """
    grid_w = grid_h if grid_w is None else grid_w
    ii, jj = torch.meshgrid(torch.arange(grid_h, device=device), torch.arange(grid_w, device=device),
                            indexing="ij")
    ii, jj = ii.reshape(-1).to(dtype), jj.reshape(-1).to(dtype)
    c = (ii[:, None] - ii[None, :]) ** 2 + (jj[:, None] - jj[None, :]) ** 2
    side = max(grid_h, grid_w)
    return c / (side - 1) ** 2 if side > 1 else c


@functools.lru_cache(maxsize=32)
def _cached_cost_matrix(grid_h: int, grid_w: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    # Built once per grid, device and dtype (read-only: callers never modify it).
    return transport_cost_matrix(grid_h, grid_w, device=device, dtype=dtype)


def greedy_transport_plan(cost: Tensor, n_iter: int, *, resolve: str = "cheapest") -> Tensor:
    """The greedy transport plan (batched): ``n_iter`` rounds of claims and conflict resolution.

    Each round every source ``u`` claims its cheapest target ``argmin_v cost[u, v]`` (ties: lowest
    ``v``); of the claimants of a target the cheapest wins (ties: lowest ``u``) and every loser gets
    ``+1`` on the entry it claimed. The last round's winners form the plan.

    Only the losers' rows change between rounds, so after the first round only their claims are
    recomputed (the dense ``(B, N, N)`` work is one ``argmin``, not one per round).

    Args:
        cost: (B, N, N) cost of moving source block ``u`` (row) to target ``v`` (column).
        n_iter: number of rounds (>= 1).
        resolve: ``"cheapest"`` (default) or ``"research"`` (see :data:`TRANSPORT_RESOLVE`).

    Returns:
        (B, N, N) 0/1 plan in ``cost.dtype``: at most one 1 per row and per column.
    """
    if resolve not in TRANSPORT_RESOLVE:
        raise ValueError(f"resolve must be one of {TRANSPORT_RESOLVE}, got {resolve!r}")
    n_iter = max(int(n_iter), 1)
    if resolve == "research":
        return _greedy_transport_research(cost, n_iter)
    b, n, _ = cost.shape
    cost = cost.clone()
    rows = torch.arange(n, device=cost.device).expand(b, n)
    best = cost.argmin(dim=-1)                                                  # (B, N) claims
    wins = torch.ones(b, n, dtype=torch.bool, device=cost.device)
    for it in range(n_iter):
        claim_cost = cost.gather(-1, best.unsqueeze(-1)).squeeze(-1)             # (B, N)
        col_min = torch.full_like(claim_cost, float("inf")).scatter_reduce(
            -1, best, claim_cost, reduce="amin", include_self=True)
        cand = torch.where(claim_cost == col_min.gather(-1, best), rows, n)     # cheapest claimants
        col_row = torch.full_like(best, n).scatter_reduce(-1, best, cand, reduce="amin", include_self=True)
        wins = col_row.gather(-1, best) == rows                                 # lowest index among them
        if it == n_iter - 1:
            break
        bi, ui = (~wins).nonzero(as_tuple=True)
        if bi.numel() == 0:  # no conflict left: later rounds repeat this one
            break
        cost[bi, ui, best[bi, ui]] += 1.0
        best[bi, ui] = cost[bi, ui].argmin(dim=-1)
    return torch.zeros_like(cost).scatter_(-1, best.unsqueeze(-1), wins.unsqueeze(-1).to(cost.dtype))


def _greedy_transport_research(cost: Tensor, n_iter: int) -> Tensor:
    """The research code's rounds: a column's winner is ``argmin_u (claim * cost)[u, v]``."""
    cost = cost.clone()
    win = torch.zeros_like(cost)
    for _ in range(n_iter):
        claim = torch.zeros_like(cost).scatter_(-1, cost.argmin(dim=-1, keepdim=True), 1.0)
        fight = (claim * cost).transpose(1, 2).contiguous()                     # (B, target, source)
        win = torch.zeros_like(cost).scatter_(-2, fight.argmin(dim=-1).unsqueeze(-2), 1.0) * claim
        cost += claim - win
    return win


def mask_transport_plan(mask: Tensor, unary: Tensor, *, t_eps: float = 0.8, resolve: str = "cheapest") -> Tensor:
    """Plan moving an image's blocks towards the cells its mask keeps.

    ``K[u, v] = t_eps * C[u, v] - unary[u] * 1[mask_v > 0]`` on the mask's grid, ``N = max(h, w)``
    greedy rounds.

    Args:
        mask: (B, h, w) the image's share of each cell (``z`` for image 1, ``1 - z`` for image 2).
        unary: (B, h, w) its normalised saliency at the same resolution.
        t_eps: weight of the transport distance.
        resolve: conflict rule (:data:`TRANSPORT_RESOLVE`).

    Returns:
        (B, h*w, h*w) plan (source row, target column).
    """
    b, gh, gw = mask.shape
    c = _cached_cost_matrix(gh, gw, unary.device, unary.dtype)
    keep = (mask > 0).to(unary.dtype).reshape(b, 1, gh * gw)
    cost = t_eps * c - unary.reshape(b, gh * gw, 1) * keep
    return greedy_transport_plan(cost, max(gh, gw), resolve=resolve)


def transport_blocks(images: Tensor, plan: Tensor, grid: tuple[int, int]) -> Tensor:
    """Move blocks with one batched matmul: target ``v`` receives ``sum_u plan[u, v] * block_u``.

    Args:
        images: (B, C, H, W).
        plan: (B, N, N) with ``N = grid[0] * grid[1]``.
        grid: (Th, Tw) cells (must divide H, W).

    Returns:
        (B, C, H, W); a target no block moves to becomes 0.
    """
    b, c, h, w = images.shape
    th_n, tw_n = grid
    th, tw = h // th_n, w // tw_n
    patches = images.reshape(b, c, th_n, th, tw_n, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, th_n * tw_n, -1)
    moved = torch.bmm(plan.transpose(1, 2).to(patches.dtype), patches)
    return moved.reshape(b, th_n, tw_n, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
