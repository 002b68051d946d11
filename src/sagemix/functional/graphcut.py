"""Multi-label graph cuts on small grids, one per sample, optionally in a reusable process pool.

Puzzle Mix (Kim, Choo & Song, ICML 2020, https://arxiv.org/abs/2009.06962) and Co-Mixup (Kim et
al., ICLR 2021, https://arxiv.org/abs/2102.03065) label each sample's block grid with a graph cut
solved by alpha-beta swap (Boykov, Veksler & Zabih 2001) in the GCO library, wrapped for Python by
``gco-wrapper`` (import name ``gco``). This module holds:

- :func:`import_gco`: the optional import, with an ImportError naming the extra
  (``pip install "sagemix[puzzlemix]"``);
- :func:`cut_grid`: one cut of an integer energy on an ``h x w`` 4-connected grid;
- :func:`cut_grid_batch`: ``B`` independent cuts, in this process or in a
  :class:`sagemix.functional.pool.WorkerPool` (the one process pool of the CPU-bound mixers);
- :func:`grid_energy`: the exact int64 energy of labellings (batched NumPy), for checks.

The energy of a labelling ``l`` of an ``h x w`` grid is::

    E(l) = sum_p unary[p, l_p] + sum_{p~q} w_pq * pairwise[l_p, l_q]

with ``w_pq = cost_v[i, j]`` for the vertical edge ``(i, j)-(i+1, j)`` and ``cost_h[i, j]`` for the
horizontal edge ``(i, j)-(i, j+1)``. All terms are int32, so GCO solves exactly this energy (with
float terms ``gco`` rescales by powers of ten internally, which can overflow int32).

Nothing here imports from the rest of sagemix outside :mod:`sagemix.functional`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .pool import WorkerPool

__all__ = ["import_gco", "cut_grid", "cut_grid_batch", "grid_energy"]

_ALGORITHMS = ("swap", "expansion")


def import_gco(extra: str = "puzzlemix") -> Any:
    """Import and return the ``gco`` module (``gco-wrapper``), the one optional import of the graph cuts.

    Args:
        extra: the sagemix extra named in the error message (``"puzzlemix"`` or ``"comixup"``; both
            install ``gco-wrapper``).

    Raises:
        ImportError: when ``gco-wrapper`` is not installed, naming the extra to install.
    """
    try:
        import gco  # noqa: PLC0415 (optional dependency, imported where used)
    except ImportError as e:  # pragma: no cover - exercised with a monkeypatched sys.modules
        raise ImportError("Puzzle Mix and Co-Mixup need the graph-cut library gco-wrapper (import name "
                          f'`gco`), which is not installed: pip install "sagemix[{extra}]"') from e
    return gco


def _check_int_array(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of integers with shape {shape}, "
                        f"got {type(value).__name__}")
    if value.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers (int32), got dtype {value.dtype}")
    if value.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {value.shape}")
    if value.size and (value.max() > np.iinfo(np.int32).max or value.min() < np.iinfo(np.int32).min):
        raise ValueError(f"{name} must fit in int32, got values in [{value.min()}, {value.max()}]")
    return np.ascontiguousarray(value, dtype=np.int32)


def _check_terms(unary: Any, pairwise: Any, cost_v: Any, cost_h: Any, batched: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if not isinstance(unary, np.ndarray):
        raise TypeError(f"unary must be a numpy.ndarray of int32, got {type(unary).__name__}")
    want = 4 if batched else 3
    if unary.ndim != want:
        lead = "(B, h, w, n_labels)" if batched else "(h, w, n_labels)"
        raise ValueError(f"unary must have shape {lead}, got {unary.shape}")
    lead_shape = unary.shape[:-3]
    h, w, m = unary.shape[-3:]
    if h < 1 or w < 1 or m < 1:
        raise ValueError(f"unary must be non-empty, got shape {unary.shape}")
    unary = _check_int_array(unary, "unary", unary.shape)
    pairwise = _check_int_array(pairwise, "pairwise", (m, m))
    cost_v = _check_int_array(cost_v, "cost_v", (*lead_shape, h - 1, w))
    cost_h = _check_int_array(cost_h, "cost_h", (*lead_shape, h, w - 1))
    return unary, pairwise, cost_v, cost_h


def _check_algorithm(algorithm: Any) -> str:
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"algorithm must be one of {_ALGORITHMS}, got {algorithm!r}")
    return algorithm


def _cut_one(gco: Any, unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray,
             algorithm: str) -> np.ndarray:
    h, w, m = unary.shape
    if m == 1:
        return np.zeros((h, w), dtype=np.int64)
    if h == 1 and w == 1:  # GCO needs at least one edge: a single site takes its cheapest label
        return np.argmin(unary.reshape(1, m), axis=1).reshape(1, 1).astype(np.int64)
    labels = gco.cut_grid_graph(unary, pairwise, cost_v, cost_h, algorithm=algorithm)
    return np.asarray(labels, dtype=np.int64).reshape(h, w)


def cut_grid(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, *,
             algorithm: str = "swap") -> np.ndarray:
    """Minimise one grid energy (see the module docstring) with GCO.

    Args:
        unary: (h, w, m) int32 cost of each label at each site.
        pairwise: (m, m) int32 label distance ``V(l, l')`` (symmetric, zero diagonal for ``swap``).
        cost_v: (h-1, w) int32 weights of the vertical edges ``(i, j)-(i+1, j)``.
        cost_h: (h, w-1) int32 weights of the horizontal edges ``(i, j)-(i, j+1)``.
        algorithm: ``"swap"`` (alpha-beta swap, Puzzle Mix) or ``"expansion"``.

    Returns:
        (h, w) int64 labels in ``[0, m)``.

    Example:
        >>> import numpy as np
        >>> u = np.array([[[0, 9], [9, 0]]], dtype=np.int32)  # 1 x 2 grid, 2 labels
        >>> cut_grid(u, np.array([[0, 1], [1, 0]], np.int32), np.zeros((0, 2), np.int32),
        ...          np.array([[1]], np.int32)).tolist()
        [[0, 1]]
    """
    algorithm = _check_algorithm(algorithm)
    unary, pairwise, cost_v, cost_h = _check_terms(unary, pairwise, cost_v, cost_h, batched=False)
    return _cut_one(import_gco(), unary, pairwise, cost_v, cost_h, algorithm)


def _solve_chunk(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray,
                 algorithm: str) -> np.ndarray:
    """Solve a chunk of cuts (runs in a worker process or in-process)."""
    gco = import_gco()
    out = np.empty(unary.shape[:3], dtype=np.int64)
    for i in range(unary.shape[0]):
        out[i] = _cut_one(gco, unary[i], pairwise, cost_v[i], cost_h[i], algorithm)
    return out


def _solve_task(task: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]) -> np.ndarray:
    """One worker task of :func:`cut_grid_batch`: a contiguous chunk of the batch (picklable)."""
    return _solve_chunk(*task)


def cut_grid_batch(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, *,
                   algorithm: str = "swap", pool: WorkerPool | None = None) -> np.ndarray:
    """Solve ``B`` independent grid cuts that share one label distance.

    With a pool the batch is split into ``pool.num_workers`` contiguous chunks, one task per worker,
    so the inter-process traffic is one message per worker and batch.

    Args:
        unary: (B, h, w, m) int32.
        pairwise: (m, m) int32, shared by all samples.
        cost_v: (B, h-1, w) int32 vertical edge weights.
        cost_h: (B, h, w-1) int32 horizontal edge weights.
        algorithm: ``"swap"`` or ``"expansion"``.
        pool: an optional :class:`sagemix.functional.pool.WorkerPool`; None solves in this process.

    Returns:
        (B, h, w) int64 labels (the same with or without a pool: each cut is deterministic).

    Example:
        >>> import numpy as np
        >>> u = np.zeros((2, 2, 2, 2), np.int32)
        >>> u[..., 1] = 5  # label 1 costs more everywhere
        >>> labels = cut_grid_batch(u, np.array([[0, 1], [1, 0]], np.int32), np.zeros((2, 1, 2), np.int32),
        ...                         np.zeros((2, 2, 1), np.int32))
        >>> labels.shape, int(labels.sum())
        ((2, 2, 2), 0)
    """
    if pool is not None and not isinstance(pool, WorkerPool):
        raise TypeError(f"pool must be a sagemix.functional.pool.WorkerPool or None, got {type(pool).__name__}")
    algorithm = _check_algorithm(algorithm)
    unary, pairwise, cost_v, cost_h = _check_terms(unary, pairwise, cost_v, cost_h, batched=True)
    b = unary.shape[0]
    if pool is None or b == 0:
        return _solve_chunk(unary, pairwise, cost_v, cost_h, algorithm)
    import_gco()  # fail here, with the extra's name, rather than inside a worker
    bounds = np.linspace(0, b, min(pool.num_workers, b) + 1).round().astype(int)
    tasks = [(unary[s:e], pairwise, cost_v[s:e], cost_h[s:e], algorithm)
             for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
    return np.concatenate(pool.map(_solve_task, tasks), axis=0)


def grid_energy(labels: np.ndarray, unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray,
                cost_h: np.ndarray) -> np.ndarray:
    """Exact int64 energy of labellings (batched over any leading dimensions).

    Args:
        labels: (..., h, w) integer labels.
        unary: (..., h, w, m); pairwise: (m, m); cost_v: (..., h-1, w); cost_h: (..., h, w-1).

    Returns:
        (...) int64 energies.
    """
    labels = np.asarray(labels, dtype=np.int64)
    u = np.take_along_axis(np.asarray(unary, np.int64), labels[..., None], axis=-1)[..., 0]
    pw = np.asarray(pairwise, np.int64)
    ev = np.asarray(cost_v, np.int64) * pw[labels[..., :-1, :], labels[..., 1:, :]]
    eh = np.asarray(cost_h, np.int64) * pw[labels[..., :, :-1], labels[..., :, 1:]]
    return u.sum(axis=(-2, -1)) + ev.sum(axis=(-2, -1)) + eh.sum(axis=(-2, -1))

