"""Timing of callables: CUDA events on CUDA (read after one synchronise), :class:`sagemix.utils.Stopwatch` on CPU.

On CUDA the events are recorded on the current stream *of the benchmarked device* and the clock
synchronises that device, not whichever device happens to be current (``--device cuda:1`` while
``cuda:0`` is current would otherwise time nothing).
"""
from __future__ import annotations

import platform
import statistics
from typing import Any, Callable

import torch

from ..utils import Stopwatch

__all__ = ["Clock", "device_name", "timing_method"]


class Clock:
    """Times callables: CUDA events on CUDA (read after one synchronise), perf_counter on CPU.

    Args:
        device: the device whose work is timed.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self._pending: list[tuple[str, Any, Any]] = []
        self.times: dict[str, list[float]] = {}

    def time(self, key: str, fn: Callable[[], Any]) -> Any:
        if self.cuda:
            with torch.cuda.device(self.device):  # events and stream of the benchmarked device
                stream = torch.cuda.current_stream(self.device)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record(stream)
                out = fn()
                end.record(torch.cuda.current_stream(self.device))
            self._pending.append((key, start, end))
            return out
        with Stopwatch() as watch:
            out = fn()
        self.times.setdefault(key, []).append(watch.wall_s * 1e3)
        self.times.setdefault(key + ":cpu", []).append(watch.cpu_s * 1e3)
        return out

    def flush(self) -> None:
        if self.cuda and self._pending:
            torch.cuda.synchronize(self.device)
            for key, start, end in self._pending:
                self.times.setdefault(key, []).append(float(start.elapsed_time(end)))
            self._pending.clear()

    def median(self, key: str) -> float | None:
        self.flush()
        ts = self.times.get(key)
        return float(statistics.median(ts)) if ts else None

    def min(self, key: str) -> float | None:
        self.flush()
        ts = self.times.get(key)
        return float(min(ts)) if ts else None




def device_name(dev: torch.device) -> str:
    """The device's name in words (the GPU model, or the CPU's)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine() or "cpu"


def timing_method(dev: torch.device) -> str:
    """How :class:`Clock` times on ``dev``, in words (for the report)."""
    return "CUDA events" if dev.type == "cuda" else "time.perf_counter"
