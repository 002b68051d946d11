"""Peak working memory of a block: CUDA's allocator peak, or the CPU's resident set size sampled by a thread.

On CUDA: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the block. On CPU: the peak
resident set size (RSS) during the block, sampled from ``/proc/self/statm`` every millisecond by a helper
thread, minus the RSS before it (after ``gc.collect`` and glibc's ``malloc_trim``). Without ``/proc`` (not
Linux) the growth of ``resource.getrusage().ru_maxrss``, which under-reports every block after the largest.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
import threading
from typing import Any

import torch

__all__ = ["PeakMemory", "memory_method"]


def memory_method(device: torch.device | str) -> str:
    """How peak memory is measured on ``device``, in words (for the report)."""
    if torch.device(device).type == "cuda":
        return "torch.cuda.max_memory_allocated during one step minus the memory allocated before it"
    if _rss_bytes() is not None:
        return ("peak resident set size during one step (sampled from /proc/self/statm every 1 ms) "
                "minus the RSS before it")
    return "growth of resource.getrusage().ru_maxrss (process high-water mark) during one step"


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _maxrss_bytes() -> int:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024


def _trim() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Context manager measuring the peak extra memory (bytes) used inside it; see module docstring."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _trim()
        self._base = _rss_bytes()
        if self._base is None:
            self._base_maxrss = _maxrss_bytes()
            return self
        self._top = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                rss = _rss_bytes() or 0
                if rss > self._top:
                    self._top = rss
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = max(0, torch.cuda.max_memory_allocated(self.device) - self._base)
        elif self._base is None:
            self.peak = max(0, _maxrss_bytes() - self._base_maxrss)
        else:
            self._stop.set()
            self._thread.join()
            self._top = max(self._top, _rss_bytes() or 0)
            self.peak = max(0, self._top - self._base)
