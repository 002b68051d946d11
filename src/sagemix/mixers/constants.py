"""Constants the mixers share."""
from __future__ import annotations

__all__ = ["CIFAR10_MEAN", "CIFAR10_STD", "AUTO_POOL_PIXELS"]

#: CIFAR-10 normalisation on the 0-1 scale (docs/SAGE.md §7), the default ``mean``/``std`` of the
#: mixers with ``needs_normalization``.
CIFAR10_MEAN: tuple[float, float, float] = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD: tuple[float, float, float] = (63.0 / 255, 62.1 / 255, 66.7 / 255)
#: ``num_workers="auto"`` uses the mixer's pool for images of at least this many pixels (64 x 64):
#: measured in benchmarks/bench_scale.py, the pooled mixers gain from 64 px on (see the README).
AUTO_POOL_PIXELS = 64 * 64
