"""Argument checks and the progress bar shared by the benchmarks."""
from __future__ import annotations

from typing import Any

from ..checks import check_int, is_int

__all__ = ["parse_input_size", "check_int", "progress_bar"]


def parse_input_size(value: Any) -> tuple[int, int]:
    """``32``, ``"32"``, ``"32x48"``, ``(32, 48)`` -> ``(H, W)``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"input_size must be an int or (H, W), got {value!r}")
    if isinstance(value, int):
        hw: tuple[Any, ...] = (value, value)
    elif isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        try:
            hw = tuple(int(p) for p in parts)
        except ValueError:
            raise ValueError(f"input_size must look like 32 or 32x48, got {value!r}") from None
        if len(hw) == 1:
            hw = (hw[0], hw[0])
    elif isinstance(value, (tuple, list)):
        hw = tuple(value)
    else:
        raise ValueError(f"input_size must be an int or (H, W), got {value!r}")
    if len(hw) != 2 or not all(is_int(v) and v >= 1 for v in hw):
        raise ValueError(f"input_size must be one or two positive ints (H, W), got {value!r}")
    return int(hw[0]), int(hw[1])




def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm bar of ``total`` steps (disabled when ``enabled`` is False)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)
