"""One process pool for the CPU-bound mixing kernels (graph cuts of Puzzle Mix and Co-Mixup).

:class:`WorkerPool` wraps a :class:`concurrent.futures.ProcessPoolExecutor` whose processes are
started with the ``spawn`` method by default (a forked child of a process that has already run
torch's thread pools can deadlock). The pool is created on the first :meth:`WorkerPool.map`,
reused for every later call and stopped by :meth:`WorkerPool.close` (a mixer's ``close()`` calls
it). The work function must be picklable, i.e. defined at the top level of a module, and so must
its arguments; the results come back in the order of the inputs, so a pooled computation gives
the same result as the serial one whenever each task is deterministic.

Nothing here imports from the rest of sagemix.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

__all__ = ["WorkerPool"]

T = TypeVar("T")
R = TypeVar("R")


class WorkerPool:
    """A lazily started, reusable pool of worker processes.

    Args:
        num_workers: number of worker processes (an int >= 1).
        start_method: ``multiprocessing`` start method; None means ``"spawn"``.

    Example:
        >>> pool = WorkerPool(1)
        >>> pool.started
        False
        >>> pool.close()  # closing a pool that never started is a no-op
        >>> WorkerPool(0)
        Traceback (most recent call last):
        ...
        ValueError: num_workers must be an int >= 1, got 0
    """

    def __init__(self, num_workers: int, *, start_method: str | None = None) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be an int >= 1, got {num_workers!r}")
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and start_method not in methods:
            raise ValueError(f"start_method must be None (spawn) or one of {methods}, got {start_method!r}")
        self.num_workers = num_workers
        self.start_method = start_method or "spawn"
        self._executor: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether the worker processes have been created."""
        return self._executor is not None

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(item) for item in items]``, computed in the worker processes, in input order.

        Args:
            fn: a top-level (picklable) function of one argument.
            items: its arguments (each picklable).

        Returns:
            The list of results.
        """
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.num_workers,
                                                 mp_context=multiprocessing.get_context(self.start_method))
        return list(self._executor.map(fn, items))

    def close(self) -> None:
        """Stop the worker processes (idempotent); a later :meth:`map` starts new ones."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        executor = getattr(self, "_executor", None)
        if executor is not None:
            try:
                executor.shutdown(wait=False, cancel_futures=True)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __getstate__(self) -> dict[str, Any]:
        # Processes cannot be pickled or copied (copy.deepcopy, spawn-based DataLoader workers): the
        # copy starts its own on first use.
        state = self.__dict__.copy()
        state["_executor"] = None
        return state

    def __repr__(self) -> str:
        return f"WorkerPool(num_workers={self.num_workers}, start_method={self.start_method!r})"
