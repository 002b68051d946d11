"""Shared pieces of the corruption operations: optional dependencies, randomness and argument checks."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .constants import ALL_CORRUPTIONS, _EXTRA_MSG, _FROST_SOURCES

__all__ = ["corruption_rng", "require_extras"]


def require_extras() -> None:
    """Import what generating corruptions needs (OpenCV, SciPy, Pillow), so a missing extra is refused
    before any work; ImportError naming the extra otherwise."""
    _cv2()
    _ndimage()
    _pil_image()

def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"the corruptions need OpenCV: {_EXTRA_MSG}") from e
    return cv2


def _ndimage() -> Any:
    try:
        import scipy.ndimage as ndimage
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"the corruptions need SciPy: {_EXTRA_MSG}") from e
    return ndimage


def _pil_image() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"the corruptions need Pillow: {_EXTRA_MSG}") from e
    return Image


def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """The generator :func:`generate_corrupted` uses for one (corruption, severity).

    Seeded from ``SeedSequence([seed, k, severity])`` where ``k`` is the index of ``name`` in
    :data:`ALL_CORRUPTIONS`, so each pair has its own independent, reproducible stream and
    regenerating one corruption does not change the others.

    Args:
        seed: the user's non-negative integer seed.
        name: a corruption name from :data:`ALL_CORRUPTIONS`.
        severity: 1..5.

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).
    """
    _check_seed(seed)
    _check_name(name)
    _check_severity(severity)
    return np.random.default_rng(np.random.SeedSequence([int(seed), ALL_CORRUPTIONS.index(name), int(severity)]))


def _as_rng(rng: Any) -> np.random.Generator:
    """Turn the ``rng`` argument into a NumPy Generator (never NumPy's global state)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, torch.Generator):
        # Seed a NumPy generator from one torch draw (the global torch RNG when rng is None).
        device = rng.device if rng is not None else None
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=device).item())
        return np.random.default_rng(seed)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        _check_seed(int(rng))
        return np.random.default_rng(int(rng))
    raise TypeError("rng must be a numpy.random.Generator, a torch.Generator, a non-negative int seed or None, "
                    f"got {type(rng).__name__}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name not in ALL_CORRUPTIONS:
        raise ValueError(f"name must be one of {', '.join(ALL_CORRUPTIONS)}; got {name!r}")


def _check_severity(severity: Any) -> None:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1..5, got {severity!r}")


def _check_frost_source(frost_source: Any) -> None:
    if frost_source not in _FROST_SOURCES:
        raise ValueError(f"frost_source must be one of {_FROST_SOURCES}, got {frost_source!r}")


def _to_uint8(y: np.ndarray) -> np.ndarray:
    """The script's final ``np.uint8`` cast of a result in [0, 255]: it floors, it does not round."""
    return y.astype(np.uint8)


def _clip01_255(y: np.ndarray) -> np.ndarray:
    return np.clip(y, 0, 1) * 255
