"""Cost benchmarks: what one training step of each mixing method costs, and where the time goes.

SAGE ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) claims to cost about one extra forward/backward per step, far less
than Puzzle Mix (Kim et al., ICML 2020, https://arxiv.org/abs/2009.06962) and Co-Mixup (Kim et al.,
ICLR 2021, https://arxiv.org/abs/2102.03065), whose graph cuts run on the CPU. This module measures it.

Two benchmarks:

- :func:`bench_methods`: one full training step (:class:`sagemix.step.MixStep` + an SGD step) of every
  method on the same model, batch and device. The methods are *interleaved* (each timed round runs one
  step of every method), so a machine whose load drifts during the run biases no method; the median
  over the rounds is reported, with each method's ratio to vanilla measured in the same run (vanilla
  is always included, and its ratio is exactly 1). The clean saliency pass and the mixer call are also
  timed alone, so the table shows where the time of each step goes.
- :func:`bench_kernels`: the mixing kernels alone on random saliency: SAGE's ``sage_mix`` with the
  reference 1% random subset of shifts (K = 39 at 32x32) and with the exhaustive search, and Puzzle
  Mix's and Co-Mixup's mask optimisation (graph cuts) where their kernels are installed.

Timing: on CUDA with CUDA events (synchronised once per round); on CPU with ``time.perf_counter``.
Peak memory is measured in a separate, untimed step per method (so the measurement does not perturb
the timings): on CUDA ``torch.cuda.max_memory_allocated`` minus the memory allocated before the step;
on CPU the peak resident set size (RSS) during the step, sampled from ``/proc/self/statm`` every
millisecond by a helper thread, minus the RSS before the step (after ``gc.collect`` and glibc's
``malloc_trim``), i.e. the working memory of the step. Where ``/proc`` is absent (not Linux) the CPU
figure falls back to the growth of ``resource.getrusage().ru_maxrss``, the process high-water mark,
which under-reports every method after the largest one.

Example:
    >>> from sagemix.bench import bench_methods
    >>> report = bench_methods(["vanilla", "mixup", "sage"], model="smallnet", input_size=32,
    ...                        batch_size=32, steps=5)                      # doctest: +SKIP
    >>> print(report.to_markdown())                                        # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MethodResult", "KernelResult", "BenchReport", "bench_methods", "bench_kernels",
           "parse_input_size", "memory_method"]



# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------
# Helpers: arguments, clocks, memory
# ---------------------------------------------------------------------------------------------------
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
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in hw):
        raise ValueError(f"input_size must be one or two positive ints (H, W), got {value!r}")
    return int(hw[0]), int(hw[1])


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _resolve_device(device: Any) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available on this machine")
    return dev


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


class _PeakMemory:
    """Context manager measuring the peak extra memory (bytes) used inside it; see module docstring."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> "_PeakMemory":
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


class _Clock:
    """Times callables: CUDA events on CUDA (read after one synchronise), perf_counter on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self._pending: list[tuple[str, Any, Any]] = []
        self.times: dict[str, list[float]] = {}

    def time(self, key: str, fn: Callable[[], Any]) -> Any:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            self._pending.append((key, start, end))
            return out
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        t1, c1 = time.perf_counter(), time.process_time()
        self.times.setdefault(key, []).append((t1 - t0) * 1e3)
        self.times.setdefault(key + ":cpu", []).append((c1 - c0) * 1e3)
        return out

    def flush(self) -> None:
        if self.cuda and self._pending:
            torch.cuda.synchronize()
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


def _make_model(model: Any, num_classes: int, seed: int) -> tuple[nn.Module, str]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, str):
            from .models import create_model

            return create_model(model, num_classes), model
        if isinstance(model, nn.Module):
            return model, type(model).__name__
        if callable(model):
            built = model()
            if not isinstance(built, nn.Module):
                raise TypeError(f"model factory must return an nn.Module, got {type(built).__name__}")
            return built, getattr(model, "__name__", type(built).__name__)
    raise TypeError(f"model must be a model name, an nn.Module or a factory returning one, got {type(model).__name__}")


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------------
# The per-method step benchmark
# ---------------------------------------------------------------------------------------------------
def bench_methods(methods: Sequence[str] | None = None, *, model: Any = "preactresnet18", num_classes: int = 10,
                  input_size: Any = 32, batch_size: int = 100, device: Any = "cpu", steps: int = 10,
                  warmup: int = 2, seed: int = 0, lr: float = 1e-3,
                  mixer_kwargs: dict[str, dict[str, Any]] | None = None, measure_parts: bool = True,
                  measure_memory: bool = True, progress: bool = True) -> BenchReport:
    """Time one training step of each method and its ratio to vanilla.

    Every method trains the same model (its weights move a little between steps, which does not
    change the cost) with SGD on one fixed random batch; the small default learning rate keeps that
    model from diverging on the batch over many rounds (a diverged model gives non-finite
    saliency, which the graph-cut methods refuse). Warm-up steps run first for every method;
    then ``steps`` rounds each time one step of every method in turn.

    Args:
        methods: registry names (default: every registered mixer). Vanilla is added when absent.
        model: a model name for :func:`sagemix.models.create_model`, an ``nn.Module``, or a
            zero-argument factory returning one.
        num_classes: K.
        input_size: ``H`` or ``(H, W)`` or ``"HxW"``.
        batch_size: B.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        steps: timed steps per method (the median is reported).
        warmup: untimed steps per method first (allocator, cuDNN autotuning, lazy imports).
        seed: seeds the model weights, the batch and each mixer's generator.
        lr: SGD learning rate (momentum 0.9).
        mixer_kwargs: per-method keyword options, e.g. ``{"sage": {"rand_pos": 1.0}}``.
        measure_parts: also time the saliency pass and the mixer call alone.
        measure_memory: also measure the working memory of one step per method.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`BenchReport`. Methods that cannot run (a missing optional extra, a model without the
        stage protocol for Manifold Mixup) are reported with ``error`` set rather than raising.
    """
    from .mixers import create_mixer, list_mixers
    from .step import MixStep

    num_classes = _check_int(num_classes, "num_classes", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    steps = _check_int(steps, "steps", 1)
    warmup = _check_int(warmup, "warmup", 0)
    h, w = parse_input_size(input_size)
    dev = _resolve_device(device)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    available = list_mixers()
    if methods is None:
        from .report import METHOD_ORDER

        methods = sorted(available, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    if isinstance(methods, str) or not isinstance(methods, Iterable):
        raise TypeError(f"methods must be a list of mixer names, got {methods!r}")
    names: list[str] = []
    for m in methods:
        key = str(m).lower().replace("-", "_")
        if key not in available:
            raise ValueError(f"unknown method {m!r} in methods; expected some of {available}")
        if key not in names:
            names.append(key)
    if "vanilla" in names:
        names.remove("vanilla")
    names.insert(0, "vanilla")
    mixer_kwargs = dict(mixer_kwargs or {})
    for k in mixer_kwargs:
        if k not in names:
            raise ValueError(f"mixer_kwargs has options for {k!r}, which is not among the methods {names}")

    net, model_name = _make_model(model, num_classes, seed)
    net = net.to(dev).train()
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, h, w, generator=g).to(dev)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g).to(dev)

    results: dict[str, MethodResult] = {n: MethodResult(n) for n in names}
    runners: dict[str, MixStep] = {}
    for i, n in enumerate(names):
        try:
            mixer = create_mixer(n, num_classes=num_classes, generator=torch.Generator().manual_seed(seed + 1 + i),
                                 **mixer_kwargs.get(n, {}))
            runners[n] = MixStep(net, mixer, num_classes=num_classes)
        except (ImportError, ValueError, TypeError) as e:
            results[n].error = f"{type(e).__name__}: {e}"

    def one_step(n: str) -> None:
        opt.zero_grad(set_to_none=True)
        runners[n](images, labels)
        opt.step()

    clock = _Clock(dev)
    total = len(runners) * (warmup + steps)
    with _progress(total, f"bench {model_name} B={batch_size} {h}x{w} {dev.type}", progress) as bar:
        for n in list(runners):  # warm-up, and the place where a method that cannot run says so
            bar.set_postfix_str(f"warm-up {n}")
            try:
                for _ in range(warmup):
                    one_step(n)
                    bar.update(1)
                if warmup == 0:  # still check the method runs before timing it
                    one_step(n)
            except (ImportError, ValueError, TypeError, RuntimeError, KeyError) as e:
                if n == "vanilla":
                    raise
                results[n].error = f"{type(e).__name__}: {e}"
                del runners[n]
                bar.total -= warmup + steps
        for _ in range(steps):
            for n in runners:
                bar.set_postfix_str(n)
                clock.time(n, lambda n=n: one_step(n))
                bar.update(1)
            clock.flush()

    base = clock.median("vanilla")
    for n in runners:
        r = results[n]
        r.step_ms, r.step_ms_min, r.steps = clock.median(n), clock.min(n), steps
        r.cpu_ms = clock.median(n + ":cpu")
        r.ratio = 1.0 if n == "vanilla" else (r.step_ms / base if base else None)

    if measure_parts:
        _measure_parts(runners, results, images, labels, opt, dev, max(3, min(steps, 10)))
    if measure_memory:
        for n in runners:
            with _PeakMemory(dev) as pm:
                one_step(n)
            results[n].peak_mem_mb = pm.peak / 2**20
    opt.zero_grad(set_to_none=True)

    return BenchReport(device=str(dev), device_name=_device_name(dev), model=model_name, input_size=(h, w),
                       batch_size=batch_size, num_classes=num_classes, steps=steps, warmup=warmup,
                       timing=_timing_method(dev), memory=memory_method(dev) if measure_memory else "not measured",
                       methods=[results[n] for n in names])


def _measure_parts(runners: dict[str, Any], results: dict[str, MethodResult], images: Tensor, labels: Tensor,
                   opt: torch.optim.Optimizer, dev: torch.device, repeats: int) -> None:
    """Time the clean (saliency) pass and the mixer call alone, interleaved over the methods."""
    from .mixers.base import to_soft_targets

    clock = _Clock(dev)
    soft = to_soft_targets(labels, next(iter(runners.values())).num_classes, images.shape[0], device=dev)
    saliency: dict[str, Tensor | None] = {}
    for _ in range(repeats):
        for n, step in runners.items():
            opt.zero_grad(set_to_none=True)
            if step.mixer.needs_gradient_saliency:
                saliency[n] = clock.time(f"sal:{n}", lambda step=step: step.clean_pass(images, soft)[0])
            else:
                saliency[n] = None
            clock.time(f"mix:{n}", lambda step=step, n=n: step.mixer(images, soft, saliency[n]))
        clock.flush()
    opt.zero_grad(set_to_none=True)
    for n in runners:
        results[n].saliency_ms = clock.median(f"sal:{n}")
        results[n].mix_ms = clock.median(f"mix:{n}")


def _device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine() or "cpu"


def _timing_method(dev: torch.device) -> str:
    return "CUDA events" if dev.type == "cuda" else "time.perf_counter"


# ---------------------------------------------------------------------------------------------------
# The kernels alone
# ---------------------------------------------------------------------------------------------------
def _sage_kernels(images: Tensor, saliency: Tensor, perm: Tensor, g: torch.Generator,
                  rand_pos: float) -> list[tuple[str, str, Callable[[], Any]]]:
    from .functional import sage as F

    b, _, h, w = images.shape
    every = F.all_shifts(h, w, device=images.device)
    subset = F.candidate_shifts(h, w, rand_pos=rand_pos, generator=g, device=images.device)
    k = subset.shape[0]
    sal = F.gaussian_smooth(saliency)
    return [
        (f"sage_mix (K={k})", f"{k} random shifts of {every.shape[0]} (rand_pos={rand_pos}), objective + mix",
         lambda: F.sage_mix(images, sal, perm, 0.5, subset)),
        (f"sage_mix (exhaustive, K={every.shape[0]})", "every shift with overlap, objective + mix",
         lambda: F.sage_mix(images, sal, perm, 0.5, every)),
    ]


def _puzzlemix_kernels(images: Tensor, saliency: Tensor, perm: Tensor, labels: Tensor, num_classes: int,
                       seed: int) -> list[tuple[str, str, Callable[[], Any]]]:
    from .functional.puzzlemix import graphcut_mask
    from .functional.graphcut import import_gco
    from .mixers import create_mixer

    import_gco()  # a clear ImportError naming the extra when gco-wrapper is missing
    h, w = images.shape[2:]
    images01 = (images - images.amin()) / (images.amax() - images.amin())
    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    for n in (2, 4, 8, 16):
        if h % n or w % n:
            continue
        jobs.append((f"puzzlemix graphcut_mask (n={n})", f"{n}x{n} grid, {images.shape[0]} graph cuts (alpha-beta "
                     "swap, 3 labels), in this process",
                     lambda n=n: graphcut_mask(images01, saliency, perm, 0.5, grid_size=n)))
    mixer = create_mixer("puzzlemix", num_classes=num_classes, generator=torch.Generator().manual_seed(seed))
    fake_grad = saliency[:, None].expand_as(images).contiguous()
    sal = mixer.reduce_saliency(fake_grad)
    jobs.append(("puzzlemix mixer", "whole mixer call: random n in {2,4,8,16}, cuts, transport, mix; defaults",
                 lambda: mixer(images, labels, sal)))
    return jobs


def _comixup_kernels(images: Tensor, saliency: Tensor, labels: Tensor, num_classes: int,
                     seed: int) -> list[tuple[str, str, Callable[[], Any]]]:
    from .functional.comixup import (block_saliency, compatibility_from_peaks,
                                     pooled_saliency_peaks as saliency_peaks, solve_labelling)
    from .mixers import create_mixer

    mixer = create_mixer("comixup", num_classes=num_classes, generator=torch.Generator().manual_seed(seed))
    fake_grad = saliency[:, None].expand_as(images).contiguous()
    sal = mixer.reduce_saliency(fake_grad)
    m_part, n = int(mixer.m_part), int(mixer.m_block_num)
    jobs: list[tuple[str, str, Callable[[], Any]]] = []
    m = min(m_part, images.shape[0])
    if m >= 2 and min(images.shape[2:]) >= n:
        part = sal[:m].float()
        cost = (-block_saliency(part, n)).cpu().numpy()
        compat = compatibility_from_peaks(saliency_peaks(part, int(mixer.pool_size)).cpu(), mixer.omega).numpy()
        prior = torch.full((m,), 1.0 / m, dtype=torch.float64).numpy()
        init = torch.randint(0, m, (m, n, n), generator=torch.Generator().manual_seed(seed)).numpy()
        jobs.append((f"comixup solve_labelling (1 partition of {m})",
                     f"the mask optimisation of one partition: {mixer.niter} sweeps of graph cuts over {m} outputs "
                     f"on a {n}x{n} grid", lambda: solve_labelling(cost, compat, prior, init)))
    parts = -(-images.shape[0] // m_part)
    jobs.append(("comixup mixer", f"whole mixer call: {parts} partition labellings and the mix; defaults",
                 lambda: mixer(images, labels, sal)))
    return jobs


def bench_kernels(*, input_size: Any = 32, batch_size: int = 100, device: Any = "cpu", repeats: int = 5,
                  warmup: int = 1, seed: int = 0, num_classes: int = 10, rand_pos: float = 0.01,
                  include: Sequence[str] = ("sage", "puzzlemix", "comixup"),
                  progress: bool = True) -> list[KernelResult]:
    """Time the mixing kernels alone on a random batch and a random (smooth, positive) saliency.

    Args:
        input_size: ``H`` or ``(H, W)``.
        batch_size: B.
        device: where to run (Puzzle Mix's and Co-Mixup's graph cuts run on the CPU regardless).
        repeats: timed calls per kernel (the median is reported).
        warmup: untimed calls first.
        seed: seeds the batch, the saliency and the random draws.
        num_classes: K for the labels the mixers receive.
        rand_pos: SAGE's fraction of shifts tried (0.01 gives K = 39 at 32x32).
        include: which kernels: ``"sage"``, ``"puzzlemix"``, ``"comixup"``.
        progress: show a tqdm progress bar.

    Returns:
        One :class:`KernelResult` per kernel; a kernel whose module or extra is missing has ``error`` set.
    """
    h, w = parse_input_size(input_size)
    batch_size = _check_int(batch_size, "batch_size", 1)
    repeats = _check_int(repeats, "repeats", 1)
    warmup = _check_int(warmup, "warmup", 0)
    dev = _resolve_device(device)
    if isinstance(rand_pos, bool) or not isinstance(rand_pos, (int, float)) or not 0 < rand_pos <= 1:
        raise ValueError(f"rand_pos must be a number in (0, 1], got {rand_pos!r}")
    known = ("sage", "puzzlemix", "comixup")
    for k in include:
        if k not in known:
            raise ValueError(f"unknown kernel {k!r} in include; expected some of {list(known)}")
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, h, w, generator=g).to(dev)
    labels = torch.randint(0, num_classes, (batch_size,), generator=g).to(dev)
    # A smooth positive saliency: a few random blobs per image.
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    centres = torch.rand(batch_size, 3, 2, generator=g) * torch.tensor([h, w])
    sal = sum(torch.exp(-((yy - centres[:, j, 0, None, None]) ** 2 + (xx - centres[:, j, 1, None, None]) ** 2)
                        / (2 * (0.15 * max(h, w)) ** 2)) for j in range(3))
    sal = (sal + 1e-3 * torch.rand(batch_size, h, w, generator=g)).to(dev)
    perm = torch.randperm(batch_size, generator=g).to(dev)

    jobs: list[tuple[str, str, Callable[[], Any]] | KernelResult] = []
    for k in include:
        try:
            if k == "sage":
                jobs += _sage_kernels(images, sal, perm, g, rand_pos)
            elif k == "puzzlemix":
                jobs += _puzzlemix_kernels(images, sal, perm, labels, num_classes, seed)
            else:
                jobs += _comixup_kernels(images, sal, labels, num_classes, seed)
        except (ImportError, ValueError, AttributeError) as e:
            jobs.append(KernelResult(k, error=f"{type(e).__name__}: {e}"))
    out: list[KernelResult] = []
    clock = _Clock(dev)
    n_jobs = sum(1 for j in jobs if not isinstance(j, KernelResult))
    with _progress(n_jobs * (warmup + repeats), "kernels", progress) as bar, torch.no_grad():
        for job in jobs:
            if isinstance(job, KernelResult):
                out.append(job)
                continue
            name, detail, fn = job
            bar.set_postfix_str(name)
            try:
                for _ in range(warmup):
                    fn()
                    bar.update(1)
                for _ in range(repeats):
                    clock.time(name, fn)
                    bar.update(1)
                out.append(KernelResult(name, clock.median(name), detail))
            except (ImportError, ValueError, TypeError, RuntimeError) as e:
                out.append(KernelResult(name, detail=detail, error=f"{type(e).__name__}: {e}"))
    return out
