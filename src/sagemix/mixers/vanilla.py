"""No mixing: the baseline every method is compared with."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import MixOutput, MixParams, Mixer
from .registry import register_mixer


@register_mixer("vanilla")
class Vanilla(Mixer):
    """No mixing, the baseline: a copy of the batch with ``lam = 1`` and ``index = arange(B)``.

    Its params are an empty :class:`~sagemix.mixers.base.MixParams` (nothing is drawn).

    Example:
        >>> import torch
        >>> out = Vanilla(num_classes=3)(torch.zeros(2, 3, 4, 4), torch.tensor([0, 2]))
        >>> out.targets.tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> MixParams:
        return MixParams()

    def apply_params(self, images: Tensor, targets: Tensor, params: MixParams,
                     saliency: Tensor | None) -> MixOutput:
        b = images.shape[0]
        return MixOutput(images.clone(), targets, torch.ones(b, device=images.device),
                         torch.arange(b, device=images.device))
