"""SAGE: Saliency-Guided Mixup with Optimal Rearrangements (Ma et al., BMVC 2022).

Paper: https://arxiv.org/abs/2211.00113. The method as implemented is specified in docs/SAGE.md;
the kernels are in :mod:`sagemix.functional.sage` (the fast objective in
:mod:`sagemix.functional.sage_objective`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..functional.sage_search import resolve_search
from ..functional.sage import (candidate_shifts, check_rand_pos, gaussian_kernel1d, gaussian_smooth, reduce_saliency, sage_mask,
                               sage_mix)
from ..checks import check_alpha, check_bool, check_nonnegative, check_probability
from ..debug import to_device
from .base import MixOutput, MixParams, Mixer
from .sampling import random_permutation, sample_beta
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["SAGE", "SageParams"]


@dataclass(frozen=True, eq=False, kw_only=True)
class SageParams(MixParams):
    """SAGE's draw.

    Attributes:
        prior: alpha, the scale of each sample's own map (``1 - alpha`` scales its partner's).
        index: (B,) int64 CPU permutation: the partner of each sample.
        shifts: (K, 2) int64 CPU candidate shifts (dy, dx) of the random or exhaustive search, or None for
            the coarse-to-fine search (deterministic: its candidates depend on the saliency).
        search: the search that runs, ``"random"``, ``"exhaustive"`` or ``"coarse_to_fine"``
            (``"auto"`` resolved for the batch's size).
    """

    prior: float
    index: Tensor
    shifts: Tensor | None
    search: str


@register_mixer("sage")
class SAGE(Mixer):
    """SAGE (Ma et al., BMVC 2022): saliency-guided mixup with optimal rearrangement.

    The partner of each sample is shifted to the candidate position that keeps the most saliency
    in the mix, then the two images are blended pixel by pixel in proportion to their saliency; the
    labels are mixed by the mean blending weight. Use it through :class:`sagemix.MixStep`, which
    computes the saliency (the input gradient of the clean loss) and reuses the clean pass's
    parameter gradients with weight ``1 - update_ratio``.

    Args:
        num_classes: K, needed when targets are integer labels.
        upper_lambda: the prior ``alpha = upper_lambda * Beta(mixup_alpha, mixup_alpha)`` scales the own
            map, ``1 - alpha`` the partner's (reference: 0.6 CIFAR-10/PreActResNet18, 0.5 CIFAR-100/
            PreActResNet18, 0.7 CIFAR-100/WRN16-8 and ResNeXt29-4-24).
        mixup_alpha: Beta parameter of the prior, 0 or in [1e-3, 1e3] (``ALPHA_RANGE``); 0 fixes
            ``alpha = 0.5 * upper_lambda``.
        rand_pos: fraction of all ``(2H-1)(2W-1)`` shifts drawn as candidates per batch (0.01 in the
            reference: 39 of 3,969 at 32x32); ``None`` searches all shifts (the true optimum); ``0`` keeps
            only the zero shift (the no-rearrangement ablation: saliency blending without translation).
        force_zero_shift: always include the zero shift (first, so it wins ties).
        search: ``"random"`` (the paper's ``rand_pos`` search), ``"exhaustive"`` (every shift),
            ``"coarse_to_fine"`` (:mod:`sagemix.functional.sage_search`: deterministic, about 1/20 of the
            random search's time at 224 px, an objective at least as high on the measured smooth maps
            but not always on noise-like ones, see docs/SAGE.md §3) or
            ``"auto"`` (default: coarse-to-fine above 64 px, else random, i.e. the paper's search on
            CIFAR and Tiny-ImageNet sizes; with ``rand_pos`` None or 0, ``rand_pos`` decides at any size).
        update_ratio: r; the training gradient is ``(1-r) grad L_clean + r grad L_mixed`` (reference:
            0.7 PreActResNet18, 0.5 WRN16-8 and ResNeXt29-4-24). ``r = 1`` discards the clean gradients.
        saliency_reduce: ``"l2"`` (paper Eq. 1) or ``"mean_abs"`` (reference code).
        blur_kernel_size: side of the Gaussian smoothing kernel (odd; 1 disables smoothing).
        blur_sigma: its standard deviation.
        generator: a ``torch.Generator`` for the prior, the permutation and the candidates.

    Example:
        >>> import torch
        >>> sage = SAGE(num_classes=10, generator=torch.Generator().manual_seed(0))
        >>> x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
        >>> out = sage(x, y, saliency=torch.rand(8, 32, 32))
        >>> out.images.shape, out.targets.shape, bool((out.lam >= 0).all() and (out.lam <= 1).all())
        (torch.Size([8, 3, 32, 32]), torch.Size([8, 10]), True)
    """

    needs_gradient_saliency = True
    saliency_train_mode = True  # batch-norm statistics see the clean and the mixed forward (docs/SAGE.md §6)
    saliency_loss = "train"

    def __init__(self, *, num_classes: int | None = None, upper_lambda: float = 0.6, mixup_alpha: float = 1.0,
                 rand_pos: float | None = 0.01, force_zero_shift: bool = False, search: str = "auto",
                 update_ratio: float = 0.7,
                 saliency_reduce: str = "l2", blur_kernel_size: int = 5, blur_sigma: float = 1.0,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.upper_lambda = check_probability(upper_lambda, "upper_lambda")
        self.mixup_alpha = check_nonnegative(mixup_alpha, "mixup_alpha")
        if self.mixup_alpha > 0:
            check_alpha(self.mixup_alpha, "mixup_alpha")
        self.rand_pos = check_rand_pos(rand_pos)
        self.force_zero_shift = check_bool(force_zero_shift, "force_zero_shift")
        resolve_search(search, 32, 32)  # validates search
        self.search = search
        self.update_ratio = check_probability(update_ratio, "update_ratio")
        if saliency_reduce not in ("l2", "mean_abs"):
            raise ValueError(f"saliency_reduce must be 'l2' or 'mean_abs', got {saliency_reduce!r}")
        self.saliency_reduce = saliency_reduce
        gaussian_kernel1d(blur_kernel_size, blur_sigma)  # validates both
        self.blur_kernel_size = int(blur_kernel_size)
        self.blur_sigma = float(blur_sigma)

    # -- the step protocol -------------------------------------------------------------------
    def clean_weight(self, num_classes: int) -> float:
        return 1.0 - self.update_ratio

    def mixed_weight(self) -> float:
        return self.update_ratio

    def reduce_saliency(self, grad: Tensor) -> Tensor:
        """Channel reduction then Gaussian smoothing (docs/SAGE.md §1): (B, C, H, W) -> (B, H, W) float32."""
        return gaussian_smooth(reduce_saliency(grad, self.saliency_reduce), self.blur_kernel_size, self.blur_sigma)

    # -- the draws and the mix ---------------------------------------------------------------
    Params = SageParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> SageParams:
        """Draw the per-batch randomness: the prior alpha, the permutation and the candidate shifts."""
        b, _, h, w = images.shape
        g = self.generator
        if self.mixup_alpha > 0:
            prior = self.upper_lambda * float(sample_beta(self.mixup_alpha, size=1, generator=g)[0])
        else:
            prior = 0.5 * self.upper_lambda
        perm = random_permutation(b, generator=g)
        search = resolve_search(self.search, h, w)
        if self.search == "auto" and (self.rand_pos is None or self.rand_pos == 0):
            search = "random"  # rand_pos None (every shift) or 0 (the zero shift alone) says which shifts
        if search == "coarse_to_fine":
            return SageParams(prior=prior, index=perm, shifts=None, search=search)
        rand_pos = None if search == "exhaustive" else self.rand_pos
        shifts = candidate_shifts(h, w, rand_pos=rand_pos, force_zero_shift=self.force_zero_shift, generator=g)
        return SageParams(prior=prior, index=perm, shifts=shifts, search=search)

    def apply_params(self, images: Tensor, targets: Tensor, params: SageParams,
                     saliency: Tensor | None) -> MixOutput:
        """The search (:func:`~sagemix.functional.sage.best_shifts`), then the mix
        (:func:`~sagemix.functional.sage.sage_blend`)."""
        b, _, h, w = images.shape
        if saliency.shape != (b, h, w):
            raise ValueError(f"saliency must have shape (B, H, W) = {(b, h, w)}, got {tuple(saliency.shape)}")
        perm = to_device(params.index, images.device)
        shifts = "coarse_to_fine" if params.shifts is None else to_device(params.shifts, images.device)
        mixed, lam, chosen = sage_mix(images, saliency.to(images.device), perm, params.prior, shifts)
        soft = mix_targets(targets, perm, lam)
        # "shifts": the candidates searched (coarse-to-fine: each pair's chosen shift, its candidates
        # being per pair and per level)
        extras = {"prior": params.prior, "shifts": chosen if params.shifts is None else shifts,
                  "shift": chosen, "search": params.search}
        return MixOutput(mixed, soft, lam, perm, extras)

    @staticmethod
    def mask(saliency: Tensor, out: MixOutput) -> Tensor:
        """The (B, H, W) mixing mask behind ``out`` (for figures): recomputed from the saliency."""
        return sage_mask(saliency, out.index, out.extras["prior"], out.extras["shift"])
