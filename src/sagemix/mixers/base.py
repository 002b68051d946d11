"""The mixer contract: ``out = mixer(images, targets, saliency=None)``.

Every mixing method in sagemix is a :class:`Mixer`. A mixer draws its random parameters from an
optional :class:`torch.Generator` (never NumPy's or Python's global state), never modifies its
inputs, accepts any batch size (1 and odd included) and returns a :class:`MixOutput` whose
``targets`` are soft labels, each row summing to 1, and whose ``lam`` weights each sample's own
label.

Methods that need a saliency map (SAGE, Puzzle Mix, Co-Mixup) say so with
``needs_gradient_saliency = True``; the two-pass :class:`sagemix.step.MixStep` then computes the
input gradient of the clean loss, reduces it with :meth:`Mixer.reduce_saliency` and passes it in.
The knobs that tell the step how to run that clean pass are class attributes documented below.

The mixers' toolkit lives beside this module, one concern each: the argument checks in
:mod:`sagemix.checks`, the generator-driven draws in :mod:`sagemix.mixers.sampling`, the input and
label helpers in :mod:`sagemix.mixers.targets`, the process-pool policy in
:mod:`sagemix.mixers.pooling` and the shared constants in :mod:`sagemix.mixers.constants`. This
module re-exports them, so ``from sagemix.mixers.base import sample_beta`` keeps working.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch
from torch import Tensor

from ..checks import (ALPHA_RANGE, check_alpha, check_bool, check_channel_stats, check_int, check_mean_std,
                      check_nonnegative, check_positive, check_probability, is_int)
from ..debug import check_values, to_device
from .constants import AUTO_POOL_PIXELS, CIFAR10_MEAN, CIFAR10_STD
from .pooling import PoolMixin
from .sampling import draw_apply, random_permutation, sample_beta, sample_gamma
from .targets import SOFT_TARGET_ATOL, check_images, mix_targets, to_soft_targets

__all__ = ["MixOutput", "MixParams", "Mixer", "BetaMixer", "to_soft_targets", "check_images", "check_probability", "check_positive",
           "check_nonnegative", "check_bool", "check_int", "check_channel_stats", "sample_beta", "sample_gamma",
           "random_permutation", "draw_apply", "check_alpha", "ALPHA_RANGE", "SOFT_TARGET_ATOL", "check_values",
           "to_device", "skip_mix", "mix_targets", "CIFAR10_MEAN", "CIFAR10_STD", "AUTO_POOL_PIXELS"]

#: The "not passed" marker of :meth:`Mixer.set_options`.
_UNSET: Any = object()


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


@dataclass(frozen=True, eq=False, kw_only=True)
class MixParams:
    """The random parameters of one batch, drawn by :meth:`Mixer.make_params` and consumed by
    :meth:`Mixer.apply`; each method subclasses it with its own typed fields (CPU tensors and numbers).

    Attributes:
        applied: whether the batch is mixed (False: the coin of ``prob`` said no; the output is the
            unmixed batch).
    """

    applied: bool = True


def skip_mix(images: Tensor, targets: Tensor, **extras: object) -> "MixOutput":
    """The unmixed batch as a MixOutput: a copy of the images, ``lam = 1``, ``index = arange(B)``."""
    b = images.shape[0]
    return MixOutput(images.clone(), targets, torch.ones(b, device=images.device),
                     torch.arange(b, device=images.device), dict(extras))


class Mixer(PoolMixin):
    """Base class of every mixing method.

    A call draws, then applies: subclasses implement :meth:`draw_params` (every random draw, made on
    the CPU from :attr:`generator`, returned as the method's frozen :attr:`Params` dataclass) and
    :meth:`apply_params` (the deterministic mix), both receiving validated inputs. The public
    :meth:`make_params` and :meth:`apply` check the inputs first, and ``mixer(x, y, s)`` is exactly
    ``mixer.apply(x, y, mixer.make_params(x, y, s), s)``. Subclasses may override the class
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
    #: The type of :meth:`make_params`' result.
    Params: ClassVar[type] = MixParams

    def __init__(self, *, num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
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
    def set_options(self, *, alpha: Any = _UNSET, prob: Any = _UNSET, **flags: bool) -> None:
        """Validate and set the options many mixers share (an option not passed is not set; ``None`` is
        refused like any other non-number).

        Args:
            alpha: the Beta(alpha, alpha) concentration, a number in :data:`ALPHA_RANGE` (``self.alpha``).
            prob: the probability of mixing a batch, in [0, 1] (``self.prob``).
            **flags: bool options, each set under its own name (e.g. ``per_sample=False``).
        """
        if alpha is not _UNSET:
            self.alpha = check_alpha(alpha, "alpha")
        if prob is not _UNSET:
            self.prob = check_probability(prob, "prob")
        for key, value in flags.items():
            setattr(self, key, check_bool(value, key))

    def set_checked(self, check: Callable[[Any, str], Any], **values: Any) -> None:
        """Set each option of ``values`` under its own name after ``check(value, name)`` (one of
        :mod:`sagemix.checks`' checks, e.g. ``self.set_checked(check_nonnegative, beta=beta, gamma=gamma)``)."""
        for name, value in values.items():
            setattr(self, name, check(value, name))

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Validate and set ``self.mean`` and ``self.std`` (per channel, 0-1 scale, std > 0)."""
        self.mean, self.std = check_mean_std(mean, std)

    # -- the call ----------------------------------------------------------------------------
    # -- the call: draw, then apply -----------------------------------------------------------
    def __call__(self, images: Tensor, targets: Tensor, saliency: Tensor | None = None) -> MixOutput:
        """Mix a batch: exactly ``self.apply(images, targets, self.make_params(images, targets, saliency), saliency)``.

        Args:
            images: (B, C, H, W) float, normalised.
            targets: int (B,) class indices (``num_classes`` must be set) or float (B, K) soft labels.
            saliency: the method's saliency, required when ``needs_gradient_saliency``.

        Returns:
            MixOutput with soft (B, K) targets.
        """
        images, soft = self.check_inputs(images, targets, saliency)
        return self.mix(images, soft, saliency)

    def make_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None = None) -> MixParams:
        """Draw this batch's random parameters (the mixer's :attr:`Params`, a frozen dataclass).

        Every random number is drawn here, on the CPU, from :attr:`generator`; :meth:`apply` with the
        returned params is deterministic, so one draw can be replayed (figures, benchmarks, tests).
        """
        images, soft = self.check_inputs(images, targets, saliency)
        with torch.no_grad():
            return self.draw_params(images.detach(), soft, saliency)

    def apply(self, images: Tensor, targets: Tensor, params: MixParams, saliency: Tensor | None = None) -> MixOutput:
        """Mix a batch with drawn ``params`` (from :meth:`make_params` on a batch of the same shape);
        deterministic: the same params give the same output."""
        images, soft = self.check_inputs(images, targets, saliency)
        if not isinstance(params, self.Params):
            raise TypeError(f"params must be {self.Params.__name__} (from {type(self).__name__}.make_params), "
                            f"got {type(params).__name__}")
        with torch.no_grad():
            return self.apply_params(images.detach(), soft, params, saliency)

    def mix(self, images: Tensor, targets: Tensor, saliency: Tensor | None = None) -> MixOutput:
        """Draw, then apply, without the input checks: ``targets`` must already be (B, K) soft labels on
        the images' device (:func:`to_soft_targets`). For a caller that checked its inputs itself, as
        :class:`sagemix.step.MixStep` does once per step."""
        with torch.no_grad():
            images = images.detach()
            return self.apply_params(images, targets, self.draw_params(images, targets, saliency), saliency)

    def check_inputs(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> tuple[Tensor, Tensor]:
        """The checks of a call: ``(images, soft targets)``; the saliency is required when
        ``needs_gradient_saliency`` (a method checks its shape in :meth:`draw_params`/:meth:`apply_params`)."""
        images = check_images(images)
        soft = to_soft_targets(targets, self.num_classes, images.shape[0], device=images.device)
        if self.needs_gradient_saliency:
            if saliency is None:
                raise ValueError(f"{self.name} needs saliency: pass saliency=... or use sagemix.MixStep, "
                                 "which computes it from the model")
            if not isinstance(saliency, Tensor):
                raise TypeError(f"saliency must be a torch.Tensor, got {type(saliency).__name__}")
        return images, soft

    # -- what a method implements --------------------------------------------------------------
    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> MixParams:  # pragma: no cover
        """Draw the batch's parameters from :attr:`generator` (inputs checked, soft targets, no grad)."""
        raise NotImplementedError(f"{type(self).__name__} does not separate its draw from its mix")

    def apply_params(self, images: Tensor, targets: Tensor, params: MixParams,
                     saliency: Tensor | None) -> MixOutput:  # pragma: no cover
        """Mix with drawn parameters, deterministically (inputs checked, soft targets, no grad)."""
        raise NotImplementedError(f"{type(self).__name__} does not separate its draw from its mix")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k not in ("generator",) and not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


class BetaMixer(Mixer):
    """A mixer whose options are a Beta concentration ``alpha``, the probability ``prob`` of mixing a batch
    and ``per_sample`` (one draw per sample instead of per batch): Mixup and CutMix."""

    def __init__(self, *, alpha: float = 1.0, prob: float = 1.0, per_sample: bool = False,
                 num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_options(alpha=alpha, prob=prob, per_sample=per_sample)
