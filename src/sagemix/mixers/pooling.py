"""The pool policy of the CPU-bound mixers: one :class:`sagemix.functional.pool.WorkerPool` per mixer.

Puzzle Mix, Co-Mixup and SaliencyMix solve their graph cuts / run OpenCV per image; with
``num_workers > 0`` they do it in a pool of spawn processes started on first use, reused for every
later batch and stopped by :meth:`PoolMixin.close`. ``num_workers="auto"`` uses 2 workers (none on a
1-core machine), and only for images of at least :data:`AUTO_POOL_PIXELS` pixels.
"""
from __future__ import annotations

import os

from torch import Tensor

from ..checks import check_int
from ..functional.pool import WorkerPool
from .constants import AUTO_POOL_PIXELS

__all__ = ["PoolMixin", "AUTO_POOL_PIXELS"]


class PoolMixin:
    """``init_pool`` / ``pool`` / ``pool_for`` / ``close`` of a mixer that may compute in worker processes."""

    _pool: WorkerPool | None = None

    def init_pool(self, num_workers: int | str, start_method: str | None = None) -> None:
        """Set ``num_workers`` (and ``start_method``) and create the mixer's worker pool.

        ``num_workers = 0`` runs everything in this process. Otherwise the pool is a
        :class:`sagemix.functional.pool.WorkerPool` (spawn by default): its processes start on
        first use, serve every later batch and stop in :meth:`close`. ``"auto"``: 2 workers (none
        on a 1-core machine), used only for images of at least :data:`AUTO_POOL_PIXELS` pixels
        (:meth:`pool_for`).
        """
        self.auto_workers = num_workers == "auto"
        if self.auto_workers:
            num_workers = 2 if (os.cpu_count() or 1) >= 2 else 0
        self.num_workers = check_int(num_workers, "num_workers", 0)
        self.start_method = start_method
        self._pool = WorkerPool(self.num_workers, start_method=start_method) if self.num_workers else None

    @property
    def pool(self) -> WorkerPool | None:
        """The mixer's worker pool, or None when it computes in this process."""
        return self._pool

    def pool_for(self, images: Tensor) -> WorkerPool | None:
        """The pool for this batch: :attr:`pool`, or None for images under :data:`AUTO_POOL_PIXELS`
        pixels when ``num_workers="auto"`` (there a pool's overhead outweighs the work)."""
        if getattr(self, "auto_workers", False) and images.shape[-2] * images.shape[-1] < AUTO_POOL_PIXELS:
            return None
        return getattr(self, "_pool", None)

    def close(self) -> None:
        """Stop the worker processes, if any (a later call starts new ones); a no-op for most mixers."""
        if self._pool is not None:
            self._pool.close()
