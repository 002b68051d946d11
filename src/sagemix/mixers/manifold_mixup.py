"""Manifold Mixup: Mixup of hidden states at a randomly chosen layer.

Verma, Lamb, Beckham, Najafi, Mitliagkas, Lopez-Paz & Bengio, "Manifold Mixup: Better
Representations by Interpolating Hidden States", ICML 2019, https://arxiv.org/abs/1806.05236.

Per batch: a layer ``k`` uniform over ``layers`` (0 = the input, k = the output of residual stage k),
``lam ~ Beta(alpha, alpha)`` and a permutation ``pi``. The network runs to layer k, its hidden
state becomes ``lam h + (1 - lam) h[pi]``, and the forward finishes; the labels are mixed with the
same ``lam``. The mixer cannot reach inside the model, so it returns the *unmixed* images together
with ``extras = {"mix_layer": k, "mix_fn": fn}``; a model implementing the stage protocol
(:mod:`sagemix.models.protocol`) is called as ``model(images, mix_layer=k, mix_fn=fn)``, which is
what :class:`sagemix.step.MixStep` does.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..functional.mixup import mixup
from ..checks import is_int
from ..debug import to_device
from .base import MixOutput, Mixer
from .mixup import MixupParams
from .sampling import draw_lam_perm
from .targets import mix_targets
from .registry import register_mixer

__all__ = ["ManifoldMixup", "ManifoldMixupParams"]


@dataclass(frozen=True, eq=False, kw_only=True)
class ManifoldMixupParams(MixupParams):
    """Manifold Mixup's draw: Mixup's ``lam`` and ``index``, and the layer whose output is mixed.

    Attributes:
        mix_layer: the drawn layer (0 = the input, k = the output of residual stage k).
    """

    mix_layer: int = 0


@register_mixer("manifold_mixup")
class ManifoldMixup(Mixer):
    """Manifold Mixup (Verma et al., ICML 2019).

    Args:
        alpha: Beta(alpha, alpha) concentration of ``lam`` (> 0); 2.0 on CIFAR, 0.2 on 64 px data.
        layers: the layers to draw ``k`` from, uniformly (0 = input, k = output of residual stage k).
            The model must support every one of them (``k < model.mix_layers``: layer 0 is the input and counts).
        per_sample: one ``lam`` per sample instead of one per batch (off by default, as in the paper).
        num_classes: K, needed when targets are integer labels.
        generator: optional CPU ``torch.Generator`` for every draw.

    Returns from a call a :class:`MixOutput` whose ``images`` are a copy of the unmixed input and
    whose ``extras`` hold ``mix_layer`` (int) and ``mix_fn`` (callable ``h -> lam h + (1-lam) h[pi]``,
    differentiable, for any hidden-state shape (B, ...)).

    Example:
        >>> import torch
        >>> mixer = ManifoldMixup(num_classes=2, generator=torch.Generator().manual_seed(0))
        >>> out = mixer(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 1, 0]))
        >>> out.extras["mix_layer"] in (0, 1, 2), out.extras["mix_fn"](torch.zeros(4, 16)).shape
        (True, torch.Size([4, 16]))
    """

    mixes_hidden = True

    def __init__(self, *, alpha: float = 2.0, layers: Sequence[int] = (0, 1, 2), per_sample: bool = False,
                 num_classes: int | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__(num_classes=num_classes, generator=generator)
        self.set_options(alpha=alpha, per_sample=per_sample)
        if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or len(layers) == 0 or any(
                not is_int(k) or k < 0 for k in layers):
            raise ValueError(f"layers must be a non-empty sequence of ints >= 0 (0 = input), got {layers!r}")
        self.layers = tuple(int(k) for k in layers)

    Params = ManifoldMixupParams

    def draw_params(self, images: Tensor, targets: Tensor, saliency: Tensor | None) -> ManifoldMixupParams:
        k = self.layers[int(torch.randint(0, len(self.layers), (), generator=self.generator))]
        lam, perm = draw_lam_perm(self.alpha, images.shape[0], self.per_sample, self.generator)
        return ManifoldMixupParams(mix_layer=k, lam=lam, index=perm)

    def apply_params(self, images: Tensor, targets: Tensor, params: ManifoldMixupParams,
                     saliency: Tensor | None) -> MixOutput:
        b = images.shape[0]
        perm = to_device(params.index, images.device)
        lam = to_device(params.lam, images.device)
        # lam is a tensor (one value: 0-d), never a Python float: a compiled model then traces the
        # mix once instead of specialising (and recompiling) on every drawn value.
        fn = functools.partial(mixup, perm=perm, lam=lam if params.lam.numel() > 1 else lam.reshape(()))
        lam_b = lam.expand(b).clone()
        return MixOutput(images.clone(), mix_targets(targets, perm, lam_b), lam_b, perm,
                         {"mix_layer": params.mix_layer, "mix_fn": fn})
