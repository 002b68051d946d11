"""Co-Mixup's joint labelling solver: block-coordinate descent with one multi-label graph cut per output.

The objective and the algorithm are described in :mod:`sagemix.functional.comixup` (the partition, the
labels, the modular approximation of the diversity term and the two ``variant`` choices); this module is
the solver for one partition, in NumPy float64 on the CPU (graph cuts are CPU-only). Its random draws (the
initial labelling) come from a ``torch.Generator``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int
from .graphcut import import_gco

__all__ = ["LabellingResult", "comixup_objective", "solve_labelling", "modular_penalty", "most_used", "VARIANTS",
           "HALF_BIAS"]

#: ``"paper"`` (default) or ``"research"``: the authors' capped usage term and top-3 tie-breaking.
VARIANTS = ("paper", "research")
#: The research code's bonus for half-half labels (subtracted from their unary cost).
HALF_BIAS = 5e-4
# Integer resolution of the graph-cut energies: the largest energy term maps to this many units.
_INT_SCALE = 1_000_000
# Smooth costs are integers in gco: 4 units = distance 1, 1 unit = the half-half distance 1/4.
_SMOOTH_UNITS = 4


# ---------------------------------------------------------------------------------------------
# The labelling solver (NumPy float64, CPU)
# ---------------------------------------------------------------------------------------------
@dataclass
class LabellingResult:
    """What :func:`solve_labelling` returns for one partition.

    Attributes:
        masks: (m_out, n, n, m) float64; ``masks[j, p, q, i]`` is the share of input ``i`` in block
            ``(p, q)`` of output ``j`` (1, or 1/2 for the two parents of a half-half block).
        objective: the objective (:func:`comixup_objective`) after the random initialisation and
            after each outer iteration that ran.
        iterations: the number of outer iterations that ran (fewer than ``niter`` on early stop).
    """

    masks: np.ndarray
    objective: list[float] = field(default_factory=list)
    iterations: int = 0


def _grid_edges(n: int) -> np.ndarray:
    idx = np.arange(n * n).reshape(n, n)
    vert = np.stack([idx[:-1, :].ravel(), idx[1:, :].ravel()], 1)
    horiz = np.stack([idx[:, :-1].ravel(), idx[:, 1:].ravel()], 1)
    return np.concatenate([vert, horiz], 0).astype(np.int32)


def _label_distance(vec_a: np.ndarray, vec_b: np.ndarray) -> np.ndarray:
    """Potts distance between soft label vectors (..., m): 0 equal, 1/4 half-parent, else 1."""
    equal = np.all(vec_a == vec_b, axis=-1)
    dot = np.sum(vec_a * vec_b, axis=-1)
    pure_a = vec_a.max(-1) == 1.0
    pure_b = vec_b.max(-1) == 1.0
    half_parent = (dot == 0.5) & (pure_a != pure_b)
    return np.where(equal, 0.0, np.where(half_parent, 0.25, 1.0))


def comixup_objective(masks: np.ndarray | Tensor, unary: np.ndarray | Tensor, compat: np.ndarray | Tensor, *,
                      beta: float, gamma: float) -> float:
    """The Co-Mixup objective of a labelling (module docstring), as a Python float.

    Args:
        masks: (m_out, n, n, m) soft labelling (see :class:`LabellingResult`).
        unary: (m, n, n) cost including the prior, ``-s_i(p) - eta/N log w_i``.
        compat: (m, m) compatibility matrix ``A``.
        beta: smoothness weight (divided by N here).
        gamma: diversity weight (divided by N here).
    """
    z = np.asarray(masks, dtype=np.float64)
    u = np.asarray(unary, dtype=np.float64)
    a = np.asarray(compat, dtype=np.float64)
    n_out, n, _, m = z.shape
    big_n = n * n
    data = float(np.einsum("jpqi,ipq->", z, u))
    smooth = float(_label_distance(z[:, 1:], z[:, :-1]).sum() + _label_distance(z[:, :, 1:], z[:, :, :-1]).sum())
    counts = z.reshape(n_out, big_n, m).sum(1)
    total = counts.sum(0)
    div = float(total @ a @ total - np.einsum("ji,ik,jk->", counts, a, counts))
    return data + beta / big_n * smooth + gamma / big_n * div


def _cut(gco: Any, unary: np.ndarray, dist: np.ndarray, edges: np.ndarray, edge_weight: float,
         init: np.ndarray | None) -> np.ndarray:
    """Alpha-beta swap on integer energies; ``unary`` (N, L) float, ``dist`` (L, L) in {0, 1/4, 1}."""
    n_sites, n_labels = unary.shape
    shifted = unary - unary.min(1, keepdims=True)  # a per-site constant does not change the labelling
    if n_labels == 1:
        return np.zeros(n_sites, dtype=np.int64)
    if edges.shape[0] == 0 or edge_weight <= 0:
        return shifted.argmin(1)
    largest = max(float(shifted.max()), edge_weight, 1e-300)
    scale = _INT_SCALE / largest
    # gco hands raw buffers to C: every array must be C-contiguous (a transposed view would be read
    # as the wrong sites).
    u_int = np.ascontiguousarray(np.rint(shifted * scale), dtype=np.int32)
    w_int = max(int(round(edge_weight * scale / _SMOOTH_UNITS)), 0)
    pair = np.ascontiguousarray(np.rint(dist * _SMOOTH_UNITS), dtype=np.int32)
    weights = np.full(edges.shape[0], w_int, dtype=np.int32)
    labels = gco.cut_general_graph(edges, weights, u_int, pair, algorithm="swap",
                                   init_labels=None if init is None else np.ascontiguousarray(init, dtype=np.int32),
                                   down_weight_factor=1)
    return np.asarray(labels, dtype=np.int64)


def _resolve_sets(counts: np.ndarray) -> np.ndarray:
    """Unit costs that split outputs using exactly the same set (of >= 2 inputs) of inputs.

    For each pair ``j1 < j2`` with identical sets, ``j1`` pays on the first input of the set and
    ``j2`` on the second (inputs in index order).
    """
    used = counts > 0
    same = np.all(used[:, None, :] == used[None, :, :], axis=-1)
    same = np.triu(same, 1) & (used.sum(1) >= 2)[:, None]
    add = np.zeros_like(counts)
    rows = np.arange(counts.shape[0])
    first = used.argmax(1)
    second = (np.cumsum(used, 1) == 2).argmax(1)  # the second used input
    as_first, as_second = same.any(1), same.any(0)
    add[rows[as_first], first[as_first]] = 1.0
    add[rows[as_second], second[as_second]] = 1.0
    return add


def modular_penalty(compat: np.ndarray, others: np.ndarray, thr: float, variant: str = "paper") -> np.ndarray:
    """The capped usage term ``r`` of one output given the other outputs' block counts ``others``.

    ``"paper"``: ``r = A others`` kept where ``r_i > thr``; ``"research"``: ``(1[r > thr] * A) @ others``
    (the authors' operator precedence: the mask scales A's columns).

    Example:
        >>> A = np.array([[1.0, 0.5], [0.5, 1.0]]); o = np.array([4.0, 1.0])
        >>> modular_penalty(A, o, 3.0).tolist(), modular_penalty(A, o, 3.0, "research").tolist()
        ([4.5, 0.0], [4.0, 2.0])
    """
    r = compat @ others
    if variant == "research":
        return (compat * (r > thr)) @ others
    return np.where(r > thr, r, 0.0)


def most_used(counts: np.ndarray, k: int = 3, variant: str = "paper") -> np.ndarray:
    """Indices (ascending) of the ``k`` most-used inputs: ties to the lowest index (``"paper"``) or as
    ``torch.topk`` on float32 counts breaks them (``"research"``, the authors' call)."""
    if variant == "research":
        top = torch.topk(torch.from_numpy(np.asarray(counts, dtype=np.float32)), k).indices.numpy()
    else:
        top = np.argsort(-counts, kind="stable")[:k]
    return np.sort(top)


def solve_labelling(cost: np.ndarray | Tensor, compat: np.ndarray | Tensor, prior: np.ndarray | Tensor,
                    init: np.ndarray | Tensor, *, beta: float = 0.32, gamma: float = 1.0, eta: float = 0.05,
                    thres: float = 0.83, niter: int = 4, set_resolve: bool = True, warm_start: bool = False,
                    half_bias: float = HALF_BIAS, tol: float = 1e-6,
                    stop_before_resolve: bool = False, variant: str = "paper") -> LabellingResult:
    """Co-Mixup's block-coordinate descent for one partition (see the module docstring).

    Args:
        cost: (m, n, n) ``-s_i(p)``, the negative normalised block saliency.
        compat: (m, m) compatibility matrix ``A``.
        prior: (m,) Dirichlet weights ``w`` (positive, summing to 1).
        init: (m_out, n, n) int initial labels in ``[0, m)`` (random in Co-Mixup).
        beta: smoothness weight (the cut's edge weight is ``beta / N``).
        gamma: diversity weight.
        eta: prior weight.
        thres: ``tau``; the modular penalty of input ``i`` is kept only where ``r_i > tau N`` (hard).
        niter: outer iterations (sweeps over all outputs).
        set_resolve: at iteration ``niter - 2``, give pairs of outputs that use the same input set a
            unit cost (times ``gamma / N``) on one input each, used by the remaining iterations.
        warm_start: start each swap from the output's current labelling (off in the research code,
            which starts every cut from label 0); with it a cut never raises its block energy.
        half_bias: bonus subtracted from the half-half labels' unary (research code: 5e-4).
        tol: stop when the relative change of the objective is below ``tol``. The test is skipped
            after the sweep that introduced non-zero set-resolution costs, so that they are used.
        stop_before_resolve: option, off by default: the research code's order, where the
            convergence test may stop right after the set resolution, before its costs act.
        variant: ``"paper"`` or ``"research"`` (the authors' capped usage term and top-3 ties; see
            the module docstring and :func:`modular_penalty`, :func:`most_used`).

    Returns:
        LabellingResult with (m_out, n, n, m) masks and the objective history.
    """
    gco = import_gco("comixup")
    cost = np.asarray(cost.cpu() if isinstance(cost, Tensor) else cost, dtype=np.float64)
    compat = np.asarray(compat.cpu() if isinstance(compat, Tensor) else compat, dtype=np.float64)
    prior = np.asarray(prior.cpu() if isinstance(prior, Tensor) else prior, dtype=np.float64)
    init = np.asarray(init.cpu() if isinstance(init, Tensor) else init)
    if cost.ndim != 3 or cost.shape[1] != cost.shape[2] or cost.shape[0] < 1:
        raise ValueError(f"cost must have shape (m, n, n), got {cost.shape}")
    m, n, _ = cost.shape
    if compat.shape != (m, m):
        raise ValueError(f"compat must have shape ({m}, {m}) for m={m} inputs, got {compat.shape}")
    if prior.shape != (m,):
        raise ValueError(f"prior must be ({m},) positive Dirichlet weights, got shape {prior.shape}")
    if not np.all(prior > 0):
        raise ValueError(f"prior must be positive Dirichlet weights, got minimum {prior.min()!r} "
                         f"(weights that underflow to 0: see sagemix.mixers.sampling.sample_dirichlet)")
    if init.ndim != 3 or init.shape[1:] != (n, n) or not np.issubdtype(init.dtype, np.integer):
        raise ValueError(f"init must be (m_out, {n}, {n}) integer labels, got shape {init.shape} dtype {init.dtype}")
    if init.size and (init.min() < 0 or init.max() >= m):
        raise ValueError(f"init labels must lie in [0, {m - 1}], got values in [{init.min()}, {init.max()}]")
    for name, value in (("beta", beta), ("gamma", gamma), ("eta", eta), ("thres", thres), ("half_bias", half_bias)):
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    check_int(niter, "niter", 1)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    init = init.astype(np.int64)
    n_out = init.shape[0]
    big_n = n * n
    beta_n, gamma_n, eta_n, thr = beta / big_n, gamma / big_n, eta / big_n, thres * big_n

    unary_img = cost - eta_n * np.log(prior + 1e-8).reshape(m, 1, 1)  # (m, n, n), prior included
    unary = np.ascontiguousarray(unary_img.reshape(m, big_n).T)  # (N, m)
    edges = _grid_edges(n)
    eye = np.eye(m)
    masks = eye[init.reshape(n_out, big_n)]  # (m_out, N, m)
    counts = masks.sum(1)  # (m_out, m)
    total = counts.sum(0)
    history = [comixup_objective(masks.reshape(n_out, n, n, m), unary_img, compat, beta=beta, gamma=gamma)]
    add_cost: np.ndarray | None = None
    iterations = 0

    for it in range(niter):
        for j in range(n_out):
            own = counts[j]
            r = modular_penalty(compat, total - own, thr, variant)
            u = unary + 2.0 * gamma_n * r[None, :]
            if add_cost is not None:
                u = u + gamma_n * add_cost[j][None, :]
            # Half-half labels from the second iteration on, built from the inputs output j uses.
            pairs: list[tuple[int, int]] = []
            if it > 0:
                used = np.flatnonzero(own > 0)
                if used.size == 2:
                    pairs = [(int(used[0]), int(used[1]))]
                elif used.size >= 3:
                    top = most_used(own, 3, variant)
                    pairs = [(int(top[0]), int(top[1])), (int(top[0]), int(top[2])), (int(top[1]), int(top[2]))]
            vectors = eye
            dist = 1.0 - eye
            if pairs:
                a_idx = np.array([p[0] for p in pairs])
                b_idx = np.array([p[1] for p in pairs])
                u = np.concatenate([u, 0.5 * (u[:, a_idx] + u[:, b_idx]) - half_bias], 1)
                halves = 0.5 * (eye[a_idx] + eye[b_idx])
                vectors = np.concatenate([eye, halves], 0)
                dist = _label_distance(vectors[:, None, :], vectors[None, :, :])
            start = None
            if warm_start:
                start = _match_labels(masks[j], vectors, u)
            labels = _cut(gco, u, dist, edges, beta_n, start)
            masks[j] = vectors[labels]
            new = masks[j].sum(0)
            total = total - own + new
            counts[j] = new
        resolving = False
        if set_resolve and it == niter - 2:
            add_cost = _resolve_sets(counts)
            resolving = bool(add_cost.any()) and not stop_before_resolve
        iterations = it + 1
        history.append(comixup_objective(masks.reshape(n_out, n, n, m), unary_img, compat, beta=beta, gamma=gamma))
        # A fresh set resolution changes the problem: give it its sweep before testing convergence.
        if not resolving and abs(history[-2] - history[-1]) / max(abs(history[-1]), 1e-300) < tol:
            break
    return LabellingResult(masks.reshape(n_out, n, n, m), history, iterations)


def _match_labels(current: np.ndarray, vectors: np.ndarray, unary: np.ndarray) -> np.ndarray:
    """Label (row of ``vectors``) of each site's current soft vector; a half-half block whose pair
    is not in the new label set falls back to the cheaper parent."""
    match = np.all(current[:, None, :] == vectors[None, :, :], axis=-1)  # (N, L)
    found = match.any(1)
    labels = match.argmax(1)
    if not found.all():
        m = current.shape[1]
        parent_cost = np.where(current[:, :] > 0, unary[:, :m], np.inf)
        labels = np.where(found, labels, parent_cost.argmin(1))
    return labels
