"""CutMix: paste a box of a random partner into each image; mix labels by area.

Yun, Han, Oh, Chun, Choe & Yoo, "CutMix: Regularization Strategy to Train Strong Classifiers with
Localizable Features", ICCV 2019, https://arxiv.org/abs/1905.04899.

Per batch: ``lam ~ Beta(alpha, alpha)``, one permutation ``pi`` and one box of side
``W*sqrt(1-lam)`` by ``H*sqrt(1-lam)`` with its centre uniform over the pixels, clipped to the
image. Inside the box every sample shows its partner's pixels; the label weight is recomputed from
the clipped box, ``lam = 1 - area/(H*W)``, so it equals the realised share of the sample's own
pixels. Kernels: :func:`sagemix.functional.boxes.rand_box` and
:func:`sagemix.functional.boxes.paste_boxes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..functional.boxes import paste_boxes, rand_box
from ..debug import to_device
from .base import BetaMixer, MixOutput, MixParams, skip_mix
from .sampling import draw_apply, random_permutation, sample_beta
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["CutMix", "BoxMixParams", "paste_partner_boxes"]


@dataclass(frozen=True, eq=False, kw_only=True)
class BoxMixParams(MixParams):
    """The draw of a box-pasting mixer (CutMix; SaliencyMix, whose boxes come from the saliency).

    Attributes:
        index: (B,) int64 CPU permutation: the partner of each sample.
        boxes: CutMix: (1, 4) or, per sample, (B, 4) int64 CPU boxes ``(x0, y0, x1, y1)``, half-open,
            clipped. SaliencyMix: None (its boxes are found from the saliency when applied).
        lam: SaliencyMix: the drawn Beta weight that sizes the box (CutMix: None, its size is in ``boxes``).
    """

    index: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    boxes: Tensor | None = None
    lam: float | None = None


def paste_partner_boxes(images: Tensor, targets: Tensor, params: BoxMixParams, boxes: Tensor | None) -> MixOutput:
    """Paste each sample's partner (``params.index``) inside ``boxes`` (on the images' device) and mix
    the labels by the realised area; the unmixed batch when ``params.applied`` is False."""
    b = images.shape[0]
    if not params.applied:
        return skip_mix(images, targets, applied=False, boxes=torch.zeros(b, 4, dtype=torch.long, device=images.device))
    perm = to_device(params.index, images.device)
    mixed, lam = paste_boxes(images, perm, boxes)
    return MixOutput(mixed, mix_targets(targets, perm, lam), lam, perm,
                     {"applied": True, "boxes": boxes.expand(b, 4).clone()})


@register_mixer("cutmix")
class CutMix(BetaMixer):
    """CutMix (Yun et al., ICCV 2019).

    Args:
        alpha: Beta(alpha, alpha) concentration of the drawn ``lam`` (> 0); 1.0 (uniform) on CIFAR.
        prob: probability of mixing a batch (1.0 in the shared protocol: every batch is mixed).
        per_sample: one ``lam`` and one box per sample instead of one per batch (the permutation is
            still one per batch); off by default, as in the paper.
        num_classes: K, needed when targets are integer labels.
        generator: optional CPU ``torch.Generator`` for every draw.

    The output's ``extras`` hold ``boxes`` ((B, 4) int64 ``(x0, y0, x1, y1)``, half-open, clipped)
    and ``applied`` (whether the batch was mixed). ``lam`` is the area-corrected weight, one value
    per sample (all equal unless ``per_sample``).

    Example:
        >>> import torch
        >>> mixer = CutMix(num_classes=3, generator=torch.Generator().manual_seed(0))
        >>> out = mixer(torch.randn(5, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1]))
        >>> out.images.shape, out.targets.sum(1).allclose(torch.ones(5))
        (torch.Size([5, 3, 32, 32]), True)
    """

    Params = BoxMixParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> BoxMixParams:
        b, _, h, w = images.shape
        if not draw_apply(self.prob, self.generator):
            return BoxMixParams(applied=False)
        lam0 = sample_beta(self.alpha, size=b if self.per_sample else 1, generator=self.generator)
        perm = random_permutation(b, generator=self.generator)
        return BoxMixParams(index=perm, boxes=rand_box(h, w, lam0, generator=self.generator))

    def apply_params(self, images: Tensor, targets: Tensor, params: BoxMixParams,
                     saliency: Tensor | None) -> MixOutput:
        boxes = to_device(params.boxes, images.device) if params.applied else None
        return paste_partner_boxes(images, targets, params, boxes)
