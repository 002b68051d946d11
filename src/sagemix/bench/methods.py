"""The per-method step benchmark: one full training step (MixStep + SGD step) of every method, interleaved.

Each method's mixer and step are built by :func:`sagemix.train.setup.build_mixer` and
:func:`sagemix.train.setup.build_step`, the builders of the training set-up; the timed call is the
step itself (a measurement, not a training loop).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..checks import check_positive
from ..utils import resolve_device
from .args import check_int, parse_input_size, progress_bar
from .clock import Clock, device_name, timing_method
from .memory import PeakMemory, memory_method
from .report import BenchReport, MethodResult

__all__ = ["bench_methods"]


def _make_model(model: Any, num_classes: int, seed: int) -> tuple[nn.Module, str]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model, str):
            from ..models import create_model

            return create_model(model, num_classes), model
        if isinstance(model, nn.Module):
            return model, type(model).__name__
        if callable(model):
            built = model()
            if not isinstance(built, nn.Module):
                raise TypeError(f"model factory must return an nn.Module, got {type(built).__name__}")
            return built, getattr(model, "__name__", type(built).__name__)
    raise TypeError(f"model must be a model name, an nn.Module or a factory returning one, got {type(model).__name__}")



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
        A :class:`BenchReport`. Methods that cannot run (a missing optional extra, found before any
        step, or a model without the stage protocol for Manifold Mixup) are reported with ``error`` set
        (``"skipped: needs ..."`` for a missing extra) rather than raising.
    """
    from ..mixers.registry import METHOD_ORDER, list_mixers, method_names
    from ..step import MixStep
    from ..train.setup import build_mixer, build_step

    num_classes = check_int(num_classes, "num_classes", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    steps = check_int(steps, "steps", 1)
    warmup = check_int(warmup, "warmup", 0)
    h, w = parse_input_size(input_size)
    dev = resolve_device(device)
    check_positive(lr, "lr")
    available = list_mixers()
    if methods is None:
        methods = sorted(available, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    names = method_names(methods, "methods", known=available)
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

    from ..extras import missing_extras

    results: dict[str, MethodResult] = {n: MethodResult(n) for n in names}
    runners: dict[str, MixStep] = {}
    missing = missing_extras(names)
    for i, n in enumerate(names):
        if n in missing and not (n == "saliencymix" and "saliency_fn" in mixer_kwargs.get(n, {})):
            results[n].error = f"skipped: {missing[n]}"
            continue
        try:
            mixer = build_mixer(n, num_classes=num_classes, generator=torch.Generator().manual_seed(seed + 1 + i),
                                mixer_kwargs=mixer_kwargs.get(n, {}))
            runners[n] = build_step(net, mixer, num_classes=num_classes, device=dev)
        except (ImportError, ValueError, TypeError) as e:
            results[n].error = f"{type(e).__name__}: {e}"

    def one_step(n: str) -> None:
        opt.zero_grad(set_to_none=True)
        runners[n](images, labels)
        opt.step()

    clock = Clock(dev)
    total = len(runners) * (warmup + steps)
    with progress_bar(total, f"bench {model_name} B={batch_size} {h}x{w} {dev.type}", progress) as bar:
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
            for n in list(runners):
                bar.set_postfix_str(n)
                try:
                    clock.time(n, lambda n=n: one_step(n))
                except (ImportError, ValueError, TypeError, RuntimeError, KeyError) as e:
                    if n == "vanilla":  # a method that fails late loses its row, not the whole benchmark
                        raise
                    results[n].error = f"{type(e).__name__}: {e}"
                    del runners[n]
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
            with PeakMemory(dev) as pm:
                one_step(n)
            results[n].peak_mem_mb = pm.peak / 2**20
    opt.zero_grad(set_to_none=True)

    return BenchReport(device=str(dev), device_name=device_name(dev), model=model_name, input_size=(h, w),
                       batch_size=batch_size, num_classes=num_classes, steps=steps, warmup=warmup,
                       timing=timing_method(dev), memory=memory_method(dev) if measure_memory else "not measured",
                       methods=[results[n] for n in names])


def _measure_parts(runners: dict[str, Any], results: dict[str, MethodResult], images: Tensor, labels: Tensor,
                   opt: torch.optim.Optimizer, dev: torch.device, repeats: int) -> None:
    """Time the clean (saliency) pass and the mixer call alone, interleaved over the methods."""
    from ..mixers.base import to_soft_targets

    clock = Clock(dev)
    soft = to_soft_targets(labels, next(iter(runners.values())).num_classes, images.shape[0], device=dev)
    saliency: dict[str, Tensor | None] = {}
    for _ in range(repeats):
        for n, step in runners.items():
            opt.zero_grad(set_to_none=True)
            if step.mixer.needs_gradient_saliency:
                saliency[n] = clock.time(f"sal:{n}", lambda step=step: step.clean_pass(images, soft)[0])
            else:
                saliency[n] = None
            clock.time(f"mix:{n}", lambda step=step, n=n: step.mixer.mix(images, soft, saliency[n]))
        clock.flush()
    opt.zero_grad(set_to_none=True)
    for n in runners:
        results[n].saliency_ms = clock.median(f"sal:{n}")
        results[n].mix_ms = clock.median(f"mix:{n}")
