"""Multi-label graph cuts on small grids, one per sample, optionally in a reusable process pool.

Puzzle Mix (Kim, Choo & Song, ICML 2020, https://arxiv.org/abs/2009.06962) and Co-Mixup (Kim et
al., ICLR 2021, https://arxiv.org/abs/2102.03065) label each sample's block grid with a graph cut
solved by alpha-beta swap (Boykov, Veksler & Zabih 2001) in the GCO library, wrapped for Python by
``gco-wrapper`` (import name ``gco``). This module holds:

- :func:`import_gco`: the optional import, with an ImportError naming the extra
  (``pip install "sagemix[puzzlemix]"``);
- :func:`cut_grid`: one cut of an integer energy on an ``h x w`` 4-connected grid;
- :func:`cut_grid_batch`: ``B`` independent cuts, in this process or in a :class:`GraphCutPool`;
- :class:`GraphCutPool`: a process pool started lazily on first use and reused across batches;
- :func:`grid_energy`: the exact int64 energy of labellings (batched NumPy), for checks.

The energy of a labelling ``l`` of an ``h x w`` grid is::

    E(l) = sum_p unary[p, l_p] + sum_{p~q} w_pq * pairwise[l_p, l_q]

with ``w_pq = cost_v[i, j]`` for the vertical edge ``(i, j)-(i+1, j)`` and ``cost_h[i, j]`` for the
horizontal edge ``(i, j)-(i, j+1)``. All terms are int32, so GCO solves exactly this energy (with
float terms ``gco`` rescales by powers of ten internally, which can overflow int32).

Nothing here imports from the rest of sagemix.
"""
from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np

__all__ = ["import_gco", "cut_grid", "cut_grid_batch", "grid_energy", "GraphCutPool"]

_EXTRA_HINT = 'pip install "sagemix[puzzlemix]"'
_ALGORITHMS = ("swap", "expansion")


def import_gco() -> Any:
    """Import and return the ``gco`` module (``gco-wrapper``).

    Raises:
        ImportError: when ``gco-wrapper`` is not installed, naming the extra to install.
    """
    try:
        import gco  # noqa: PLC0415 (optional dependency, imported where used)
    except ImportError as e:  # pragma: no cover - exercised with a monkeypatched sys.modules
        raise ImportError("Puzzle Mix and Co-Mixup need the graph-cut library gco-wrapper (import name "
                          f"`gco`), which is not installed: {_EXTRA_HINT}") from e
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


class GraphCutPool:
    """A process pool for many independent grid cuts, started lazily and reused.

    Creating processes costs far more than one cut (a few hundred microseconds for a 16 x 16 grid),
    so the pool starts on the first :meth:`solve` and lives until :meth:`close` (or garbage
    collection). Each call splits the batch into ``num_workers`` contiguous chunks, one task per
    worker, so the inter-process traffic is one message per worker and batch.

    Args:
        num_workers: number of worker processes (>= 1).
        start_method: ``multiprocessing`` start method (``"fork"``, ``"spawn"``, ``"forkserver"``);
            None uses the platform default.

    Example:
        >>> import numpy as np
        >>> with GraphCutPool(1) as pool:
        ...     labels = pool.solve(np.zeros((2, 2, 2, 2), np.int32), np.array([[0, 1], [1, 0]], np.int32),
        ...                         np.zeros((2, 1, 2), np.int32), np.zeros((2, 2, 1), np.int32))
        >>> labels.shape
        (2, 2, 2)
    """

    def __init__(self, num_workers: int, *, start_method: str | None = None) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be an int >= 1, got {num_workers!r}")
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in methods:
            raise ValueError(f"start_method must be None or one of {methods}, got {start_method!r}")
        self.num_workers = num_workers
        self.start_method = start_method
        self._pool: Any = None

    @property
    def started(self) -> bool:
        """Whether the worker processes are running."""
        return self._pool is not None

    def _ensure(self) -> Any:
        if self._pool is None:
            import_gco()  # fail here, with the extra's name, rather than inside a worker
            ctx = multiprocessing.get_context(self.start_method)
            self._pool = ctx.Pool(self.num_workers)
        return self._pool

    def solve(self, unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, *,
              algorithm: str = "swap") -> np.ndarray:
        """Solve ``B`` cuts; arguments as :func:`cut_grid_batch`. Returns (B, h, w) int64 labels."""
        algorithm = _check_algorithm(algorithm)
        unary, pairwise, cost_v, cost_h = _check_terms(unary, pairwise, cost_v, cost_h, batched=True)
        b = unary.shape[0]
        if b == 0:
            return np.empty(unary.shape[:3], dtype=np.int64)
        pool = self._ensure()
        bounds = np.linspace(0, b, min(self.num_workers, b) + 1).round().astype(int)
        tasks = [(unary[s:e], pairwise, cost_v[s:e], cost_h[s:e], algorithm)
                 for s, e in zip(bounds[:-1], bounds[1:]) if e > s]
        return np.concatenate(pool.starmap(_solve_chunk, tasks), axis=0)

    def close(self) -> None:
        """Stop the worker processes (idempotent); a later :meth:`solve` starts new ones."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.terminate()
            pool.join()

    def __enter__(self) -> "GraphCutPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __getstate__(self) -> dict[str, Any]:
        # A pool cannot be pickled (copy.deepcopy, spawn-based DataLoader workers): drop it; the
        # copy starts its own on first use.
        state = self.__dict__.copy()
        state["_pool"] = None
        return state


def cut_grid_batch(unary: np.ndarray, pairwise: np.ndarray, cost_v: np.ndarray, cost_h: np.ndarray, *,
                   algorithm: str = "swap", pool: GraphCutPool | None = None) -> np.ndarray:
    """Solve ``B`` independent grid cuts that share one label distance.

    Args:
        unary: (B, h, w, m) int32.
        pairwise: (m, m) int32, shared by all samples.
        cost_v: (B, h-1, w) int32 vertical edge weights.
        cost_h: (B, h, w-1) int32 horizontal edge weights.
        algorithm: ``"swap"`` or ``"expansion"``.
        pool: an optional :class:`GraphCutPool`; None solves in this process.

    Returns:
        (B, h, w) int64 labels (the same with or without a pool: each cut is deterministic).
    """
    if pool is not None:
        if not isinstance(pool, GraphCutPool):
            raise TypeError(f"pool must be a GraphCutPool or None, got {type(pool).__name__}")
        return pool.solve(unary, pairwise, cost_v, cost_h, algorithm=algorithm)
    algorithm = _check_algorithm(algorithm)
    unary, pairwise, cost_v, cost_h = _check_terms(unary, pairwise, cost_v, cost_h, batched=True)
    return _solve_chunk(unary, pairwise, cost_v, cost_h, algorithm)


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

