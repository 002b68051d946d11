"""The shared mixer call: ``out = mixer(images, targets, saliency=None)``.

Every mixing method in sagemix is a :class:`Mixer`. A mixer draws its random parameters from an
optional :class:`torch.Generator` (never NumPy's or Python's global state), never modifies its
inputs, accepts any batch size (1 and odd included) and returns a :class:`MixOutput` whose
``targets`` are soft labels, each row summing to 1, and whose ``lam`` weights each sample's own
label.

Methods that need a saliency map (SAGE, Puzzle Mix, Co-Mixup) say so with
``needs_gradient_saliency = True``; the two-pass :class:`sagemix.step.MixStep` then computes the
input gradient of the clean loss, reduces it with :meth:`Mixer.reduce_saliency` and passes it in.
The knobs that tell the step how to run that clean pass are class attributes documented below.

This module is also the toolkit the mixers share: argument checks (:func:`check_int`,
:func:`check_probability`, :func:`check_positive`, :func:`check_nonnegative`, :func:`check_bool`,
:func:`check_channel_stats`, and the :meth:`Mixer.set_options` / :meth:`Mixer.set_normalization`
setters of the options many mixers take), generator-driven sampling (:func:`sample_beta`,
:func:`sample_gamma`, :func:`random_permutation`, :func:`draw_apply`), the unmixed result
(:func:`skip_mix`), label mixing (:func:`mix_targets`) and the one process pool of the CPU-bound
mixers (:meth:`Mixer.init_pool`, a :class:`sagemix.functional.pool.WorkerPool` closed by
:meth:`Mixer.close`).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor

from ..debug import check_values, to_device
from ..functional.pool import WorkerPool

__all__ = ["MixOutput", "Mixer", "to_soft_targets", "check_images", "check_probability", "check_positive",
           "check_nonnegative", "check_bool", "check_int", "check_channel_stats", "sample_beta", "sample_gamma",
           "random_permutation", "draw_apply", "check_alpha", "ALPHA_RANGE", "SOFT_TARGET_ATOL", "check_values",
           "to_device", "skip_mix", "mix_targets", "CIFAR10_MEAN", "CIFAR10_STD", "AUTO_POOL_PIXELS"]

#: CIFAR-10 normalisation on the 0-1 scale (docs/SAGE.md §7), the default ``mean``/``std`` of the
#: mixers with ``needs_normalization``.
CIFAR10_MEAN: tuple[float, float, float] = (125.3 / 255, 123.0 / 255, 113.9 / 255)
CIFAR10_STD: tuple[float, float, float] = (63.0 / 255, 62.1 / 255, 66.7 / 255)


@dataclass
class MixOutput:
    """The result of one mixer call.

    Attributes:
        images: (B, C, H, W) mixed images, a new tensor in the input dtype (or, for Manifold Mixup,
            the unmixed input: the mixing happens inside the model).
        targets: (B, K) float soft labels; each row sums to 1.
        lam: (B,) float, the weight of each sample's own label in ``targets``.
        index: (B,) int64, the partner of each sample (for multi-input methods such as Co-Mixup,
            the input that contributes most to each output after the sample itself).
        extras: method-specific information (chosen shifts, masks, the mixing layer, ...).
    """

    images: Tensor
    targets: Tensor
    lam: Tensor
    index: Tensor
    extras: dict[str, Any] = field(default_factory=dict)


def check_images(images: Any, name: str = "images") -> Tensor:
    """Validate a (B, C, H, W) floating batch of finite values; raise a clear TypeError/ValueError otherwise.

    Finiteness is a value check (:func:`sagemix.debug.check_values`): precise on CPU, asynchronous on
    a device.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (normalised images), got dtype {images.dtype}")
    if images.shape[0] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(images.shape)}")
    finite = torch.isfinite(images)
    check_values(finite, f"{name} must hold finite values (no NaN or inf pixels)",
                 lambda: f"got {int((~finite).sum())} non-finite values of {images.numel()}")
    return images


#: Tolerance on the row sums of soft targets: |sum - 1| <= this (float32/float64 rows; half-precision
#: rows get ten times more).
SOFT_TARGET_ATOL: float = 1e-3
#: ``num_workers="auto"`` uses the mixer's pool for images of at least this many pixels (64 x 64):
#: measured in benchmarks/bench_scale.py, the pooled mixers gain from 64 px on (see the README).
AUTO_POOL_PIXELS = 64 * 64


def to_soft_targets(targets: Any, num_classes: int | None, batch_size: int, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | None = None,
                    name: str = "targets") -> Tensor:
    """Turn int (B,) labels or float (B, K) soft labels into float (B, K) rows summing to 1.

    Integer labels must lie in ``[0, num_classes)``; soft rows must be finite, non-negative and sum
    to 1 within :data:`SOFT_TARGET_ATOL`. The value checks go through
    :func:`sagemix.debug.check_values` (precise on CPU, asynchronous on a device).
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, int (B,) or float (B, K), got {type(targets).__name__}")
    if targets.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (B,) (class indices) or (B, K) (soft labels) with "
                         f"B={batch_size}, got shape {tuple(targets.shape)}")
    if targets.shape[0] != batch_size:
        raise ValueError(f"{name} must have batch size {batch_size} like the images, got shape {tuple(targets.shape)}")
    device = device if device is not None else targets.device
    if targets.ndim == 1:
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"{name} of shape (B,) must hold integer class indices, got dtype {targets.dtype}")
        if num_classes is None:
            raise ValueError(f"num_classes is required when {name} are integer labels (got num_classes=None)")
        if targets.numel():
            check_values((targets >= 0) & (targets < num_classes),
                         f"{name} must lie in [0, {num_classes - 1}] for num_classes={num_classes}",
                         lambda: f"got values in [{int(targets.min())}, {int(targets.max())}]")
        return torch.nn.functional.one_hot(targets.long(), num_classes).to(device=device, dtype=dtype)
    if not targets.is_floating_point():
        raise TypeError(f"{name} of shape (B, K) must be floating soft labels, got dtype {targets.dtype}")
    if num_classes is not None and targets.shape[1] != num_classes:
        raise ValueError(f"{name} has {targets.shape[1]} classes but num_classes={num_classes}")
    if targets.shape[1] < 1:
        raise ValueError(f"{name} of shape (B, K) needs K >= 1 classes, got shape {tuple(targets.shape)}")
    atol = SOFT_TARGET_ATOL * (10.0 if targets.element_size() < 4 else 1.0)
    t = targets.float() if targets.element_size() < 4 else targets
    sums = t.sum(dim=1)
    row_ok = torch.isfinite(t).all(dim=1) & (t >= 0).all(dim=1) & ((sums - 1.0).abs() <= atol)
    check_values(row_ok, f"{name} of shape (B, K) must be soft labels: finite, non-negative rows summing to 1 "
                         f"(within {atol:g})", lambda: _describe_bad_rows(t, row_ok))
    return targets.to(device=device, dtype=dtype)


def _describe_bad_rows(t: Tensor, row_ok: Tensor) -> str:
    """``"got row i = [...] (sum s)"`` for the first bad row of soft targets (host read)."""
    i = int((~row_ok).nonzero()[0, 0])
    row = t[i].tolist()
    shown = ", ".join(f"{v:.4g}" for v in row[:8]) + (", ..." if len(row) > 8 else "")
    return f"got row {i} = [{shown}] (sum {float(t[i].sum()):.6g}); {int((~row_ok).sum())} bad rows"


def check_int(value: Any, name: str, minimum: int) -> int:
    """An int (not a bool) >= ``minimum``.

    Example:
        >>> check_int(3, "n_labels", 2)
        3
        >>> check_int(1, "n_labels", 2)
        Traceback (most recent call last):
        ...
        ValueError: n_labels must be an int >= 2, got 1
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


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
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0):
            raise ValueError(f"{name} must hold finite numbers{' > 0' if positive else ''}, got {value!r}")
        out.append(float(v))
    return tuple(out)


def check_bool(value: Any, name: str) -> bool:
    """A real bool (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def check_probability(value: Any, name: str) -> float:
    """A float in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_positive(value: Any, name: str) -> float:
    """A finite float > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_nonnegative(value: Any, name: str) -> float:
    """A finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


#: The accepted range of Beta/Gamma concentrations (``alpha``): below 1e-3 the draws are 0 or 1 up to
#: float64 round-off, above 1e3 they are 0.5 within 2 %; outside it nothing is gained and the
#: samplers lose precision (at 1e-300 or 1e+308 they would return NaN or a constant).
ALPHA_RANGE: tuple[float, float] = (1e-3, 1e3)


def check_alpha(value: Any, name: str = "alpha") -> float:
    """A Beta/Gamma concentration: a finite number in :data:`ALPHA_RANGE` ([1e-3, 1e3]).

    Example:
        >>> check_alpha(0.2)
        0.2
        >>> check_alpha(1e-300)
        Traceback (most recent call last):
        ...
        ValueError: alpha must be a finite number in [0.001, 1000] (a Beta concentration), got 1e-300
    """
    lo, hi = ALPHA_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ValueError(f"{name} must be a finite number in [{lo:g}, {hi:g}] (a Beta concentration), got {value!r}")
    return float(value)


def sample_beta(alpha: float, beta: float | None = None, size: int = 1, *,
                generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """Draw ``size`` samples of Beta(alpha, beta) (beta defaults to alpha) from torch's RNG.

    Uses the Gamma-ratio construction on :func:`sample_gamma` so the draw honours ``generator``
    (``torch.distributions.Beta`` cannot take one). ``alpha <= 0`` (or ``beta <= 0``) returns 0.5;
    otherwise both must lie in :data:`ALPHA_RANGE`. Where both Gamma draws underflow to 0 (small
    concentrations), the ratio is taken in log space, so a draw is never NaN. The result is float64,
    drawn on CPU and moved to ``device`` without blocking (:func:`sagemix.debug.to_device`).
    """
    beta = alpha if beta is None else beta
    for nm, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise ValueError(f"{nm} must be a number (a Beta concentration), got {v!r}")
    if alpha <= 0 or beta <= 0:
        return to_device(torch.full((size,), 0.5, dtype=torch.float64), device)
    check_alpha(alpha, "alpha")
    check_alpha(beta, "beta")
    ga, log_ga = _sample_gamma(alpha, size, generator)
    gb, log_gb = _sample_gamma(beta, size, generator)
    out = ga / (ga + gb)
    # Both draws underflowed (alpha << 1): the ratio from the logs, exp(la) / (exp(la) + exp(lb)).
    out = torch.where(torch.isfinite(out), out, torch.sigmoid(log_ga - log_gb))
    return to_device(out, device)


def sample_gamma(shape: float, size: int, generator: torch.Generator | None = None) -> Tensor:
    """``size`` draws of Gamma(shape, 1) (Marsaglia-Tsang), driven by ``generator`` (float64, CPU).

    Example:
        >>> x = sample_gamma(2.0, 4, torch.Generator().manual_seed(0))
        >>> x.shape, x.dtype, bool((x > 0).all())
        (torch.Size([4]), torch.float64, True)
    """
    return _sample_gamma(shape, size, generator)[0]


def _sample_gamma(shape: float, size: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Marsaglia-Tsang Gamma(shape, 1) draws and their logs (float64, CPU)."""
    if isinstance(shape, bool) or not isinstance(shape, (int, float)) or not math.isfinite(shape) or shape <= 0:
        raise ValueError(f"shape must be a finite number > 0 (a Gamma shape), got {shape!r}")
    boost = shape < 1.0
    d = (shape + 1.0 if boost else shape) - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(size, dtype=torch.float64)
    filled = 0
    while filled < size:
        n = max(2 * (size - filled), 8)
        z = torch.randn(n, dtype=torch.float64, generator=generator)
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u.clamp_min(1e-300)) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        acc = (d * v)[ok][: size - filled]
        out[filled: filled + acc.numel()] = acc
        filled += acc.numel()
    log_out = torch.log(out)
    if boost:
        u = torch.rand(size, dtype=torch.float64, generator=generator).clamp_min(1e-300)
        log_out = log_out + torch.log(u) / shape
        out = out * u ** (1.0 / shape)
    return out, log_out


def random_permutation(n: int, *, generator: torch.Generator | None = None,
                       device: torch.device | str = "cpu") -> Tensor:
    """A random permutation of ``range(n)`` (int64), drawn on CPU from ``generator``, moved without blocking."""
    return to_device(torch.randperm(n, generator=generator), device)


def draw_apply(prob: float, generator: torch.Generator | None) -> bool:
    """Bernoulli(prob) coin from ``generator``; no draw is spent when ``prob`` is 0 or 1.

    Example:
        >>> draw_apply(1.0, None), draw_apply(0.0, None)
        (True, False)
    """
    if prob >= 1.0:
        return True
    if prob <= 0.0:
        return False
    return bool(torch.rand((), generator=generator, dtype=torch.float64) < prob)


def skip_mix(images: Tensor, targets: Tensor, **extras: object) -> "MixOutput":
    """The unmixed batch as a MixOutput: a copy of the images, ``lam = 1``, ``index = arange(B)``."""
    b = images.shape[0]
    return MixOutput(images.clone(), targets, torch.ones(b, device=images.device),
                     torch.arange(b, device=images.device), dict(extras))


class Mixer:
    """Base class of every mixing method.

    Subclasses implement :meth:`mix`, which receives validated inputs, and may override the class
    attributes that tell :class:`sagemix.step.MixStep` how to run the clean (saliency) pass:

    Attributes:
        name: registry name.
        needs_gradient_saliency: the method needs the input gradient of a clean loss.
        mixes_hidden: the method mixes hidden states inside the model (Manifold Mixup).
        saliency_train_mode: run the clean pass in train mode (batch-norm batch statistics, running
            statistics updated) rather than eval mode.
        saliency_loss: ``"train"`` to take the saliency of the training loss (SAGE) or ``"ce"`` for the
            mean cross-entropy (Puzzle Mix, Co-Mixup).
        needs_normalization: the constructor takes ``mean`` and ``std``, the per-channel
            normalisation the images went through (0-1 scale), because the method looks at pixel
            values (SaliencyMix, Puzzle Mix); a trainer passes the dataset's.

    Subclasses also define :meth:`clean_weight` (the weight whose clean-loss parameter gradients are
    kept; 0 discards them) and :meth:`mixed_weight` (the weight of the mixed loss).
    """

    name: str = "base"
    needs_gradient_saliency: bool = False
    mixes_hidden: bool = False
    saliency_train_mode: bool = True
    saliency_loss: str = "train"
    needs_normalization: ClassVar[bool] = False
    _pool: WorkerPool | None = None

    def __init__(self, *, num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1):
            raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator must be a CPU torch.Generator (mixers draw their few parameters on the "
                             f"CPU and move them to the images' device), got one on {generator.device}")
        self.num_classes = num_classes
        self.generator = generator

    # -- the step protocol -------------------------------------------------------------------
    def clean_weight(self, num_classes: int) -> float:
        """Weight of the clean loss whose parameter gradients are kept (0: discarded)."""
        return 0.0

    def mixed_weight(self) -> float:
        """Weight of the mixed loss in the training gradient."""
        return 1.0

    def reduce_saliency(self, grad: Tensor) -> Tensor:
        """Reduce an input gradient (B, C, H, W) to the saliency this method consumes."""
        raise NotImplementedError(f"{type(self).__name__} does not use gradient saliency")

    # -- the shared options -------------------------------------------------------------------
    def set_options(self, *, alpha: float | None = None, prob: float | None = None, **flags: bool) -> None:
        """Validate and set the options many mixers share.

        Args:
            alpha: the Beta(alpha, alpha) concentration, a number in :data:`ALPHA_RANGE` (``self.alpha``).
            prob: the probability of mixing a batch, in [0, 1] (``self.prob``).
            **flags: bool options, each set under its own name (e.g. ``per_sample=False``).
        """
        if alpha is not None:
            self.alpha = check_alpha(alpha, "alpha")
        if prob is not None:
            self.prob = check_probability(prob, "prob")
        for key, value in flags.items():
            setattr(self, key, check_bool(value, key))

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Validate and set ``self.mean`` and ``self.std`` (per channel, 0-1 scale, std > 0)."""
        self.mean = check_channel_stats(mean, "mean", positive=False)
        self.std = check_channel_stats(std, "std", positive=True)
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std must have the same length, got {len(self.mean)} and {len(self.std)}")

    # -- the process pool ----------------------------------------------------------------------
    def init_pool(self, num_workers: int | str, start_method: str | None = None) -> None:
        """Set ``num_workers`` (and ``start_method``) and create the mixer's worker pool.

        ``num_workers = 0`` runs everything in this process. Otherwise the pool is a
        :class:`sagemix.functional.pool.WorkerPool` (spawn by default): its processes start on
        first use, serve every later batch and stop in :meth:`close`. ``"auto"``: 2 workers (none
        on a 1-core machine), used only for images of at least :data:`AUTO_POOL_PIXELS` pixels
        (:meth:`pool_for`).
        """
        self.auto_workers = num_workers == "auto"
        if self.auto_workers:
            num_workers = 2 if (os.cpu_count() or 1) >= 2 else 0
        self.num_workers = check_int(num_workers, "num_workers", 0)
        self.start_method = start_method
        self._pool = WorkerPool(self.num_workers, start_method=start_method) if self.num_workers else None

    @property
    def pool(self) -> WorkerPool | None:
        """The mixer's worker pool, or None when it computes in this process."""
        return self._pool

    def pool_for(self, images: Tensor) -> WorkerPool | None:
        """The pool for this batch: :attr:`pool`, or None for images under :data:`AUTO_POOL_PIXELS`
        pixels when ``num_workers="auto"`` (there a pool's overhead outweighs the work)."""
        if getattr(self, "auto_workers", False) and images.shape[-2] * images.shape[-1] < AUTO_POOL_PIXELS:
            return None
        return getattr(self, "_pool", None)

    def close(self) -> None:
        """Stop the worker processes, if any (a later call starts new ones); a no-op for most mixers."""
        if self._pool is not None:
            self._pool.close()

    # -- the call ----------------------------------------------------------------------------
    def __call__(self, images: Tensor, targets: Tensor, saliency: Tensor | None = None) -> MixOutput:
        """Mix a batch.

        Args:
            images: (B, C, H, W) float, normalised.
            targets: int (B,) class indices (``num_classes`` must be set) or float (B, K) soft labels.
            saliency: the method's saliency, required when ``needs_gradient_saliency``.

        Returns:
            MixOutput with soft (B, K) targets.
        """
        images = check_images(images)
        soft = to_soft_targets(targets, self.num_classes, images.shape[0], device=images.device)
        if self.needs_gradient_saliency:
            if saliency is None:
                raise ValueError(f"{self.name} needs saliency: pass saliency=... or use sagemix.MixStep, "
                                 "which computes it from the model")
            if not isinstance(saliency, Tensor):
                raise TypeError(f"saliency must be a torch.Tensor, got {type(saliency).__name__}")
        with torch.no_grad():
            return self.mix(images.detach(), soft, saliency)

    def mix(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> MixOutput:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("generator",) and not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


def mix_targets(targets: Tensor, index: Tensor, lam: Tensor) -> Tensor:
    """``lam[:, None] * targets + (1 - lam[:, None]) * targets[index]`` (rows still sum to 1)."""
    lam = lam.to(targets.dtype).reshape(-1, 1)
    return lam * targets + (1.0 - lam) * targets[index]




