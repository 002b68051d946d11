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

Modules: :mod:`~sagemix.bench.methods` (the step benchmark), :mod:`~sagemix.bench.kernels` (the
kernels alone), :mod:`~sagemix.bench.clock` (timing), :mod:`~sagemix.bench.memory` (peak memory),
:mod:`~sagemix.bench.report` (results and Markdown), :mod:`~sagemix.bench.args` (argument checks).

Example:
    >>> from sagemix.bench import bench_methods
    >>> report = bench_methods(["vanilla", "mixup", "sage"], model="smallnet", input_size=32,
    ...                        batch_size=32, steps=5)                      # doctest: +SKIP
    >>> print(report.to_markdown())                                        # doctest: +SKIP
"""
from __future__ import annotations

from .args import parse_input_size
from .clock import Clock, device_name, timing_method
from .kernels import bench_kernels
from .memory import PeakMemory, memory_method
from .methods import bench_methods
from .report import BenchReport, KernelResult, MethodResult

__all__ = ["MethodResult", "KernelResult", "BenchReport", "bench_methods", "bench_kernels", "parse_input_size",
           "memory_method", "PeakMemory", "Clock", "device_name", "timing_method"]
