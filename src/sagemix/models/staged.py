"""The shared staged network base of every sagemix model, and its building blocks.

Every sagemix model is a :class:`StagedNet`: a stem, a list of residual (or plain) stages and a
head (optional final norm/activation, global average pooling, linear classifier). The base class
implements Manifold Mixup's stage protocol (:mod:`sagemix.models.protocol`; Verma et al., ICML 2019,
https://arxiv.org/abs/1806.05236) once for all models::

    logits = model(x)                              # the ordinary forward
    logits = model(x, mix_layer=k, mix_fn=fn)      # h = fn(h) at layer k, then finish

Layer 0 is the input (before the stem), layer ``k >= 1`` the output of the k-th stage.
``model.mix_layers`` is the number of layers at which the model can mix, so the valid layers are
``range(model.mix_layers)`` (``num_stages + 1``). Global pooling is adaptive, so every model accepts
any input size (32x32 CIFAR, 84x84 mini-ImageNet, non-square images).

The CIFAR architectures follow the reference code of SAGE (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113), itself taken from Puzzle Mix / Co-Mixup.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

from torch import Tensor, nn

from ..checks import is_int

__all__ = ["StagedNet", "PoolHead", "init_weights", "check_num_classes", "build_stages"]

MixFn = Callable[[Tensor], Tensor]


class StagedNet(nn.Module):
    """A stem, ``len(stages)`` stages and a head, with the stage protocol in ``forward``.

    Subclasses build ``self.stem``, ``self.stages`` (an ``nn.ModuleList``), ``self.head`` (maps the
    last stage's output to pooled features, (B, C)) and ``self.fc`` (the classifier), then call
    :meth:`_finish_init`.

    Attributes:
        mix_layers: number of layers at which a hidden state can be mixed (``len(stages) + 1``;
            layer 0 is the input).
        num_classes: the number of output logits.
        num_features: the width of the pooled features fed to ``fc``.
    """

    mix_layers: int
    num_classes: int
    num_features: int
    stem: nn.Module
    stages: nn.ModuleList
    head: nn.Module
    fc: nn.Linear

    def _finish_init(self) -> None:
        self.mix_layers = len(self.stages) + 1
        self.num_features = self.fc.in_features
        self.num_classes = self.fc.out_features

    def _check_mix_args(self, mix_layer: Any, mix_fn: Any) -> None:
        if mix_layer is None and mix_fn is None:
            return
        if mix_layer is None or mix_fn is None:
            raise ValueError("mix_layer and mix_fn must be given together (both or neither), got "
                             f"mix_layer={mix_layer!r}, mix_fn={mix_fn!r}")
        if not is_int(mix_layer):
            raise TypeError(f"mix_layer must be an int in [0, {self.mix_layers - 1}], got {mix_layer!r}")
        if not 0 <= mix_layer < self.mix_layers:
            raise ValueError(f"mix_layer must be in [0, {self.mix_layers - 1}] for {type(self).__name__} "
                             f"(0 = input, k = output of stage k), got {mix_layer}")
        if not callable(mix_fn):
            raise TypeError(f"mix_fn must be callable as h = mix_fn(h), got {type(mix_fn).__name__}")

    def forward_features(self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None) -> Tensor:
        """Pooled features (B, num_features), optionally mixing the hidden state at ``mix_layer``."""
        self._check_mix_args(mix_layer, mix_fn)
        h = x
        if mix_layer == 0:
            h = mix_fn(h)  # type: ignore[misc]
        h = self.stem(h)
        for k, stage in enumerate(self.stages, start=1):
            h = stage(h)
            if mix_layer == k:
                h = mix_fn(h)  # type: ignore[misc]
        return self.head(h)

    def forward(self, x: Tensor, mix_layer: int | None = None, mix_fn: MixFn | None = None) -> Tensor:
        """Logits (B, num_classes) for images ``x`` (B, 3, H, W), any H and W.

        Args:
            x: (B, 3, H, W) normalised images.
            mix_layer: optional layer in ``range(self.mix_layers)`` at which to apply ``mix_fn``.
            mix_fn: optional ``h -> h'`` applied once to the hidden state at ``mix_layer``
                (it must keep the batch size; Manifold Mixup mixes ``h`` with ``h[perm]``).
        """
        return self.fc(self.forward_features(x, mix_layer, mix_fn))


class PoolHead(nn.Sequential):
    """Optional final norm + activation, global average pooling (any input size) and flatten."""

    def __init__(self, channels: int, *, final_bn: bool) -> None:
        layers: list[nn.Module] = []
        if final_bn:
            layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        super().__init__(*layers)


def init_weights(module: nn.Module) -> None:
    """He (fan-out) init for convolutions, BN weight 1 / bias 0; linear layers keep torch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_num_classes(num_classes: Any) -> int:
    """Validate ``num_classes`` (a positive int) at the model boundary."""
    if not is_int(num_classes):
        raise TypeError(f"num_classes must be a positive int, got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes}")
    return num_classes


def build_stages(block: Callable[[int, int, int], nn.Module], in_channels: int, widths: Sequence[int],
                 blocks: Sequence[int], expansion: int = 1) -> tuple[nn.ModuleList, int]:
    """The residual stages of a CIFAR network, and their output width.

    Stage ``i`` holds ``blocks[i]`` blocks ``block(in_ch, widths[i], stride)``, each putting out
    ``widths[i] * expansion`` channels; the first block of every stage but the first has stride 2
    (it halves the resolution), every other block stride 1. Blocks are built in order, so the
    modules (and the random draws of their default initialisation) come in the order of the loops
    they replace.
    """
    stages = []
    for i, (width, n) in enumerate(zip(widths, blocks)):
        layers = []
        for j in range(n):
            layers.append(block(in_channels, width, 2 if i > 0 and j == 0 else 1))
            in_channels = width * expansion
        stages.append(nn.Sequential(*layers))
    return nn.ModuleList(stages), in_channels
