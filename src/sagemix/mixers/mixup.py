"""Mixup: blend each image and label with a random partner's.

Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
https://arxiv.org/abs/1710.09412.

Per batch: ``lam ~ Beta(alpha, alpha)``, a permutation ``pi``,
``x~ = lam x + (1 - lam) x[pi]``, ``y~ = lam y + (1 - lam) y[pi]``. The kernel is
:func:`sagemix.functional.mixup.mixup`.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..functional.mixup import mixup
from ..debug import to_device
from .base import MixOutput, Mixer, skip_mix
from .sampling import draw_apply, random_permutation, sample_beta
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["Mixup"]


@register_mixer("mixup")
class Mixup(Mixer):
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

    def __init__(self, *, alpha: float = 1.0, prob: float = 1.0, per_sample: bool = False,
                 num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_options(alpha=alpha, prob=prob, per_sample=per_sample)

    def mix(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> MixOutput:
        if not draw_apply(self.prob, self.generator):
            return skip_mix(images, targets, applied=False)
        b = images.shape[0]
        lam_cpu = sample_beta(self.alpha, size=b if self.per_sample else 1, generator=self.generator).float()
        perm = random_permutation(b, generator=self.generator, device=images.device)
        lam = to_device(lam_cpu, images.device)
        # One lam: pass a Python float (read on the CPU, no device sync); the image and the label
        # use the same float32 value.
        mixed = mixup(images, perm, lam if self.per_sample else float(lam_cpu[0]))
        lam_b = lam.expand(b).clone()
        return MixOutput(mixed, mix_targets(targets, perm, lam_b), lam_b, perm, {"applied": True})
