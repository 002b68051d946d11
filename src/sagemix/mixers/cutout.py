"""Cutout: erase one square patch of every image; labels unchanged.

DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with Cutout", 2017,
https://arxiv.org/abs/1708.04552.

One square hole of side ``size`` (16 for CIFAR-10, 8 for CIFAR-100 in the paper), centre uniform
over the pixels, clipped to the image, filled with 0 *after* normalisation (the dataset's mean
colour). Kernels: :func:`sagemix.functional.boxes.centered_boxes` and
:func:`sagemix.functional.boxes.erase_boxes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..functional.boxes import box_areas, centered_boxes, erase_boxes
from ..checks import check_int
from ..debug import to_device
from .base import MixOutput, MixParams, Mixer, skip_mix
from .sampling import draw_apply
from .registry import register_mixer

__all__ = ["Cutout", "CutoutParams"]


@dataclass(frozen=True, eq=False, kw_only=True)
class CutoutParams(MixParams):
    """Cutout's draw.

    Attributes:
        boxes: (B, 4) or, with ``per_sample=False``, (1, 4) int64 CPU holes ``(x0, y0, x1, y1)``,
            half-open, clipped to the image.
    """

    boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4, dtype=torch.long))


@register_mixer("cutout")
class Cutout(Mixer):
    """Cutout (DeVries & Taylor, 2017).

    Cutout mixes no labels, so the output's ``lam`` stays 1 and ``index`` is ``arange(B)``; the
    targets are the input's (as soft labels). The share of each image that was erased is in
    ``extras["erased"]`` ((B,) float, ``area/(H*W)`` of the clipped hole) and the holes in
    ``extras["boxes"]`` ((B, 4) int64 ``(x0, y0, x1, y1)``).

    Args:
        size: side of the square hole in pixels (>= 1); 16 for CIFAR-10, 8 for CIFAR-100.
        prob: probability of applying Cutout to a batch (1.0: every image, as in the paper).
        per_sample: one hole position per image (the default, as the paper's data-loader transform
            does); ``False`` draws one position for the whole batch.
        num_classes: K, needed when targets are integer labels.
        generator: optional CPU ``torch.Generator`` for every draw.

    Example:
        >>> import torch
        >>> out = Cutout(size=8, num_classes=2)(torch.ones(3, 3, 32, 32), torch.tensor([0, 1, 1]))
        >>> out.lam.tolist(), bool((out.images == 0).any())
        ([1.0, 1.0, 1.0], True)
    """

    def __init__(self, *, size: int = 16, prob: float = 1.0, per_sample: bool = True,
                 num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.size = check_int(size, "size", 1)
        self.set_options(prob=prob, per_sample=per_sample)

    Params = CutoutParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> CutoutParams:
        b, _, h, w = images.shape
        if not draw_apply(self.prob, self.generator):
            return CutoutParams(applied=False)
        n = b if self.per_sample else 1
        cy = torch.randint(0, h, (n,), generator=self.generator)
        cx = torch.randint(0, w, (n,), generator=self.generator)
        side = torch.tensor([self.size])
        return CutoutParams(boxes=centered_boxes(cy, cx, side, side, h, w))

    def apply_params(self, images: Tensor, targets: Tensor, params: CutoutParams,
                     saliency: Tensor | None) -> MixOutput:
        b, _, h, w = images.shape
        if not params.applied:
            return skip_mix(images, targets, applied=False, erased=torch.zeros(b, device=images.device),
                            boxes=torch.zeros(b, 4, dtype=torch.long, device=images.device))
        erased = to_device((box_areas(params.boxes, h, w).double() / float(h * w)).to(torch.float32), images.device)
        erased = erased.expand(b).clone()
        boxes = to_device(params.boxes, images.device)
        out = erase_boxes(images, boxes, 0.0)
        return MixOutput(out, targets, torch.ones(b, device=images.device), torch.arange(b, device=images.device),
                         {"applied": True, "boxes": boxes.expand(b, 4).clone(), "erased": erased})
