"""Where sagemix checks tensor *values*, and the switch for precise checks on a device.

Shapes, dtypes and options are always checked on the host and raise ``ValueError``/``TypeError``
at once. Checks of tensor values (label range, soft-target rows, finite pixels, permutation range,
non-negative saliency, ...) go through :func:`check_values`, which decides by the tensor's device:

- **CPU tensors**: read on the host (no device is involved, so nothing stalls); a failure raises
  ``ValueError`` with the precise message, including the offending values.
- **Accelerator tensors** (CUDA, ...): ``torch._assert_async`` -- the check is queued on the
  device and the host goes on; a failure surfaces as a ``RuntimeError`` at a later
  synchronisation, with a fixed message that names the argument and what was expected but not the
  values. Run the same batch on CPU, or turn on debug mode, for the precise message.
- **Debug mode** (``SAGEMIX_DEBUG=1`` in the environment, :func:`set_debug` or the
  :func:`debug_checks` context manager): device values are read on the host as on CPU, so every
  check raises the precise ``ValueError`` -- at the price of one synchronisation per check.
- **meta tensors** hold no values: nothing is checked.
- **Under torch.compile tracing**: ``torch._assert_async``, which traces without a graph break.

:func:`to_device` moves the few values a mixer draws on the CPU (from its CPU generator) to the
images' device without blocking the host: through pinned memory and ``non_blocking=True``.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

import torch

from .checks import check_bool
from torch import Tensor

__all__ = ["debug_enabled", "set_debug", "debug_checks", "check_values", "to_device"]

_DEBUG: bool = os.environ.get("SAGEMIX_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def debug_enabled() -> bool:
    """Whether device values are read on the host for precise error messages (debug mode)."""
    return _DEBUG


def set_debug(enabled: bool) -> None:
    """Turn debug mode on or off for this process (the default comes from ``SAGEMIX_DEBUG``)."""
    global _DEBUG
    check_bool(enabled, "enabled")
    _DEBUG = enabled


@contextlib.contextmanager
def debug_checks(enabled: bool = True) -> Iterator[None]:
    """Debug mode inside a ``with`` block (restored on exit).

    Example:
        >>> with debug_checks():
        ...     debug_enabled()
        True
    """
    before = _DEBUG
    set_debug(enabled)
    try:
        yield
    finally:
        set_debug(before)


def check_values(ok: Tensor, expected: str, got: Callable[[], str] | None = None) -> None:
    """Require every element of the boolean tensor ``ok`` to be True, without stalling a device.

    Args:
        ok: a boolean tensor (any shape) computed from the values being checked.
        expected: the argument and what was expected, e.g. ``"targets must lie in [0, 9]"``; the
            whole message on a device (``torch._assert_async``).
        got: a function returning what was found (``"got values in [-1, 3]"``); it reads the
            values, so it is called only on the host path (CPU or debug mode).

    Raises:
        ValueError: on the host path, when some element is False.
        RuntimeError: on a device, later, from ``torch._assert_async``.

    Example:
        >>> check_values(torch.tensor([True, False]), "x must be positive", lambda: "got [1, -1]")
        Traceback (most recent call last):
        ...
        ValueError: x must be positive, got [1, -1]
    """
    if ok.device.type == "meta":
        return
    if torch.compiler.is_compiling():
        torch._assert_async(ok.all(), expected)
        return
    if ok.device.type == "cpu" or _DEBUG:
        if not bool(ok.all()):
            raise ValueError(expected if got is None else f"{expected}, {got()}")
        return
    torch._assert_async(ok.all(), f"{expected} (checked on the device; run on CPU or set SAGEMIX_DEBUG=1 "
                                  "for the offending values)")


def to_device(tensor: Tensor, device: torch.device | str) -> Tensor:
    """Move a CPU tensor to ``device`` without blocking the host (pinned memory, ``non_blocking``).

    On CPU (or for a tensor already on ``device``) the tensor itself is returned; on CUDA it is
    staged in pinned memory and copied asynchronously; other devices get a plain ``.to``.
    """
    device = torch.device(device)
    if tensor.device == device or device.type == "cpu":
        return tensor.to(device)
    if device.type == "cuda" and tensor.device.type == "cpu":
        if not tensor.is_pinned():
            tensor = tensor.pin_memory()
        return tensor.to(device, non_blocking=True)
    return tensor.to(device)
