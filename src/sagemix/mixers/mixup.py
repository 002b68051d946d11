"""Mixup: blend each image and label with a random partner's.

Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
https://arxiv.org/abs/1710.09412.

Per batch: ``lam ~ Beta(alpha, alpha)``, a permutation ``pi``,
``x~ = lam x + (1 - lam) x[pi]``, ``y~ = lam y + (1 - lam) y[pi]``. The kernel is
:func:`sagemix.functional.mixup.mixup`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..functional.mixup import mixup
from ..debug import to_device
from .base import BetaMixer, MixOutput, MixParams, skip_mix
from .sampling import draw_apply, draw_lam_perm
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["Mixup", "MixupParams"]


@dataclass(frozen=True, eq=False, kw_only=True)
class MixupParams(MixParams):
    """Mixup's draw (Manifold Mixup's adds the layer).

    Attributes:
        lam: (1,) float32 CPU weight of each sample's own image and label, or (B,) with ``per_sample``.
        index: (B,) int64 CPU permutation: the partner of each sample.
    """

    lam: Tensor = field(default_factory=lambda: torch.ones(1))
    index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))


@register_mixer("mixup")
class Mixup(BetaMixer):
    """Mixup (Zhang et al., ICLR 2018).

    Args:
        alpha: Beta(alpha, alpha) concentration of ``lam`` (> 0); 1.0 on CIFAR (uniform ``lam``),
            0.2 on 64 px data.
        prob: probability of mixing a batch (otherwise the clean batch is returned with ``lam = 1``).
        per_sample: draw one ``lam`` per sample instead of one per batch (the permutation is still
            one per batch). Off by default, as in the paper.
        num_classes: K, needed when targets are integer labels.
        generator: optional CPU ``torch.Generator`` for every draw.

    The output's ``extras["applied"]`` says whether the batch was mixed.

    Example:
        >>> import torch
        >>> mixer = Mixup(num_classes=3, generator=torch.Generator().manual_seed(0))
        >>> out = mixer(torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1]))
        >>> out.targets.sum(1).allclose(torch.ones(5)), bool(((out.lam >= 0) & (out.lam <= 1)).all())
        (True, True)
    """

    Params = MixupParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> MixupParams:
        if not draw_apply(self.prob, self.generator):
            return MixupParams(applied=False)
        lam, perm = draw_lam_perm(self.alpha, images.shape[0], self.per_sample, self.generator)
        return MixupParams(lam=lam, index=perm)

    def apply_params(self, images: Tensor, targets: Tensor, params: MixupParams,
                     saliency: Tensor | None) -> MixOutput:
        if not params.applied:
            return skip_mix(images, targets, applied=False)
        b = images.shape[0]
        perm = to_device(params.index, images.device)
        lam = to_device(params.lam, images.device)
        # One lam: pass a Python float (read on the CPU, no device sync); the image and the label
        # use the same float32 value.
        mixed = mixup(images, perm, lam if params.lam.numel() > 1 else float(params.lam[0]))
        lam_b = lam.expand(b).clone()
        return MixOutput(mixed, mix_targets(targets, perm, lam_b), lam_b, perm, {"applied": True})
