"""Benchmark results and their Markdown tables: :class:`MethodResult`, :class:`KernelResult`, :class:`BenchReport`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["MethodResult", "KernelResult", "BenchReport"]


@dataclass
class MethodResult:
    """The cost of one method's training step.

    Attributes:
        method: registry name.
        step_ms: median wall time of one training step (MixStep + optimizer step), milliseconds.
        step_ms_min: fastest timed step, milliseconds.
        ratio: ``step_ms / vanilla's step_ms`` measured in the same run (vanilla: exactly 1.0).
        saliency_ms: median time of the clean (saliency) pass alone, or None for methods without one.
        mix_ms: median time of the mixer call alone (given the saliency), milliseconds. Manifold Mixup
            mixes inside the model's forward, so its mixer call only draws the parameters.
        peak_mem_mb: working memory of one step in MiB (see the module docstring for how it is measured).
        cpu_ms: on CPU, the median process CPU time of one step (all threads), milliseconds: unlike
            the wall time it barely changes when other processes load the machine, so its ratio to
            vanilla's is the better cost estimate on a shared machine. None on CUDA.
        steps: number of timed steps.
        error: why the method could not be measured (missing extra, unsupported model), else None.
    """

    method: str
    step_ms: float | None = None
    step_ms_min: float | None = None
    ratio: float | None = None
    saliency_ms: float | None = None
    mix_ms: float | None = None
    peak_mem_mb: float | None = None
    cpu_ms: float | None = None
    steps: int = 0
    error: str | None = None


@dataclass
class KernelResult:
    """The cost of one mixing kernel alone.

    Attributes:
        name: what was timed, e.g. ``"sage_mix (K=39)"``.
        ms: median time of one call for the whole batch, milliseconds.
        detail: the kernel's settings in words.
        error: why it could not be measured, else None.
    """

    name: str
    ms: float | None = None
    detail: str = ""
    error: str | None = None


@dataclass
class BenchReport:
    """A benchmark run: the set-up and the results. ``to_dict`` for JSON, ``to_markdown`` for a table."""

    device: str
    device_name: str
    model: str
    input_size: tuple[int, int]
    batch_size: int
    num_classes: int
    steps: int
    warmup: int
    timing: str
    memory: str
    torch_version: str = torch.__version__
    threads: int = field(default_factory=torch.get_num_threads)
    methods: list[MethodResult] = field(default_factory=list)
    kernels: list[KernelResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchReport":
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        d["methods"] = [MethodResult(**m) for m in d.get("methods", [])]
        d["kernels"] = [KernelResult(**k) for k in d.get("kernels", [])]
        return cls(**d)

    def ratios(self) -> dict[str, float]:
        """``{method: ratio to vanilla}`` for the methods that were measured."""
        return {m.method: m.ratio for m in self.methods if m.ratio is not None}

    def to_markdown(self) -> str:
        """The results as Markdown tables, with the set-up in a heading line."""
        h, w = self.input_size
        if self.methods:
            lines = [f"Model {self.model}, input {h}x{w}, batch {self.batch_size}, {self.num_classes} classes, "
                     f"device {self.device} ({self.device_name}), torch {self.torch_version}, "
                     f"{self.threads} CPU threads; median of {self.steps} interleaved steps after {self.warmup} "
                     f"warm-up steps. Timing: {self.timing}. Memory: {self.memory}."
                     + (" CPU time: process CPU time of the step (all threads), robust to other load."
                        if any(m.cpu_ms is not None for m in self.methods) else ""), ""]
        else:
            lines = [f"Kernels alone: input {h}x{w}, batch {self.batch_size}, device {self.device} "
                     f"({self.device_name}), torch {self.torch_version}, {self.threads} CPU threads; median of "
                     f"{self.steps} calls after {self.warmup} warm-up call. Timing: {self.timing}.", ""]
        if self.methods:
            cpu = any(m.cpu_ms is not None for m in self.methods)
            base_cpu = next((m.cpu_ms for m in self.methods if m.method == "vanilla"), None)
            extra = " CPU time (ms) | CPU × vanilla |" if cpu else ""
            lines += ["| method | step (ms) | × vanilla | saliency pass (ms) | mixer (ms) | step memory (MiB) |" + extra,
                      "|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if cpu else "")]
            for m in self.methods:
                if m.error:
                    lines.append(f"| {m.method} | — | — | — | — | — |" + (" — | — |" if cpu else ""))
                    continue
                row = (f"| {m.method} | {_fmt(m.step_ms, 1)} | {_fmt(m.ratio, 2)} | "
                       f"{_fmt(m.saliency_ms, 1)} | {_fmt(m.mix_ms, 2)} | {_fmt(m.peak_mem_mb, 1)} |")
                if cpu:
                    cr = m.cpu_ms / base_cpu if m.cpu_ms is not None and base_cpu else None
                    row += f" {_fmt(m.cpu_ms, 1)} | {_fmt(cr, 2)} |"
                lines.append(row)
            errors = [m for m in self.methods if m.error]
            if errors:
                lines.append("")
                lines += [f"- {m.method}: not measured ({m.error})" for m in errors]
        if self.kernels:
            lines += ["", "| kernel | time per batch (ms) | settings |", "|---|---:|---|"]
            for k in self.kernels:
                lines.append(f"| {k.name} | {_fmt(k.ms, 2) if not k.error else '—'} | "
                             f"{k.detail if not k.error else 'not measured: ' + k.error} |")
        return "\n".join(lines) + "\n"


def _fmt(x: float | None, digits: int) -> str:
    return "—" if x is None else f"{x:.{digits}f}"
