"""The argument checks of the whole package: one rule and one message per kind of value.

Every public function and constructor validates its options with these, so the same mistake gets
the same one-line error everywhere: a ``ValueError`` (or ``TypeError`` for a value of the wrong
kind) naming the argument, the value and what was expected. A bool is never accepted as a number
(``True`` is an ``int`` to Python, but ``alpha=True`` is a mistake).

Example:
    >>> check_int(3, "n_labels", 2)
    3
    >>> check_probability(0.5, "prob")
    0.5
    >>> check_int(True, "steps", 1)
    Traceback (most recent call last):
    ...
    ValueError: steps must be an int >= 1, got True
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from torch import Tensor

__all__ = ["EPS", "ALPHA_RANGE", "is_int", "is_number", "check_int", "check_bool", "check_number",
           "check_probability", "check_positive", "check_nonnegative", "check_alpha", "check_channel_stats",
           "check_mean_std"]

#: The guard added to denominators of saliency normalisations (``s / (s.sum() + EPS)``): small enough
#: never to change a non-zero sum in float32, large enough that an all-zero map gives 0, not NaN.
EPS: float = 1e-16

#: The accepted range of Beta/Gamma/Dirichlet concentrations (``alpha``): below 1e-3 the draws are 0
#: or 1 up to float64 round-off, above 1e3 they are 0.5 within 2 %; outside it nothing is gained and
#: the samplers lose precision (at 1e-300 or 1e+308 they would return NaN or a constant).
ALPHA_RANGE: tuple[float, float] = (1e-3, 1e3)


def is_int(value: Any) -> bool:
    """``value`` is a Python int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """``value`` is a Python int or float and not a bool (NaN and inf included)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(value: Any, name: str, minimum: int) -> int:
    """An int (not a bool) >= ``minimum``.

    Example:
        >>> check_int(1, "n_labels", 2)
        Traceback (most recent call last):
        ...
        ValueError: n_labels must be an int >= 2, got 1
    """
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """A real bool (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_number(value: Any, name: str, *, low: float = -math.inf, high: float = math.inf,
                 low_open: bool = False, what: str = "") -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` when ``low_open``), returned as a float.

    ``what`` is appended to the message in parentheses (what the number means).

    Example:
        >>> check_number(2, "sigma", low=0, low_open=True)
        2.0
        >>> check_number(float("nan"), "value")
        Traceback (most recent call last):
        ...
        ValueError: value must be a finite number, got nan
    """
    ok = is_number(value) and math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        if low == -math.inf and high == math.inf:
            rule = ""
        elif high == math.inf:
            rule = f" {'>' if low_open else '>='} {low:g}"
        else:
            rule = f" in {'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be a finite number{rule}{f' ({what})' if what else ''}, got {value!r}")
    return float(value)


def check_probability(value: Any, name: str) -> float:
    """A number in [0, 1], as a float."""
    if not is_number(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0, as a float."""
    return check_number(value, name, low=0.0, low_open=True)


def check_nonnegative(value: Any, name: str) -> float:
    """A finite number >= 0, as a float."""
    return check_number(value, name, low=0.0)


def check_alpha(value: Any, name: str = "alpha") -> float:
    """A Beta/Gamma/Dirichlet concentration: a finite number in :data:`ALPHA_RANGE` ([1e-3, 1e3]).

    Example:
        >>> check_alpha(0.2)
        0.2
        >>> check_alpha(1e-300)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be a finite number in [0.001, 1000] (a Beta concentration), got 1e-300
    """
    lo, hi = ALPHA_RANGE
    return check_number(value, name, low=lo, high=hi, what="a Beta concentration")


def check_channel_stats(value: Any, name: str, *, positive: bool) -> tuple[float, ...]:
    """A non-empty sequence (or tensor) of finite per-channel numbers, > 0 when ``positive``.

    Example:
        >>> check_channel_stats([0.5, 0.25], "std", positive=True)
        (0.5, 0.25)
    """
    if isinstance(value, Tensor):
        value = value.flatten().tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) == 0:
        raise TypeError(f"{name} must be a non-empty sequence of floats (one per channel), got {value!r}")
    if not all(is_number(v) and math.isfinite(v) and (not positive or v > 0) for v in value):
        raise ValueError(f"{name} must hold finite numbers{' > 0' if positive else ''}, got {value!r}")
    return tuple(float(v) for v in value)


def check_mean_std(mean: Any, std: Any, channels: int | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel normalisation constants (0-1 scale): finite means, std > 0, one value per channel.

    Without ``channels`` the two must have the same length; with it, each must have 1 or ``channels``
    values (one value is repeated for every channel).

    Example:
        >>> check_mean_std([0.5], (0.25, 0.25, 0.25), channels=3)
        ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    """
    m = check_channel_stats(mean, "mean", positive=False)
    s = check_channel_stats(std, "std", positive=True)
    if channels is None:
        if len(m) != len(s):
            raise ValueError(f"mean and std must have the same length, got {len(m)} and {len(s)}")
        return m, s
    for name, vals in (("mean", m), ("std", s)):
        if len(vals) not in (1, channels):
            raise ValueError(f"{name} must have 1 or {channels} values (one per channel), got {len(vals)}: {vals}")
    return (m * channels if len(m) == 1 else m), (s * channels if len(s) == 1 else s)
