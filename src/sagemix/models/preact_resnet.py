"""PreActResNet18 for CIFAR (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016,
https://arxiv.org/abs/1603.05027), as used by SAGE (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113), Puzzle Mix and Co-Mixup.

A 3x3 stride-1 stem with 64 channels, four stages of two pre-activation basic blocks at
64/128/256/512 channels (stride 1, 2, 2, 2), global average pooling and a linear classifier.
The reference code omits the final BN-ReLU before pooling (the last block's output is pooled
directly); ``final_bn=False`` (the default) reproduces that, ``final_bn=True`` adds it as in the
original pre-activation paper.
"""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn

from ..checks import is_int
from .registry import register_model
from .staged import PoolHead, StagedNet, build_stages, check_num_classes, init_weights

__all__ = ["PreActBlock", "PreActResNet", "preactresnet18"]


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut.

    The projection shortcut (1x1 conv, used when the stride or width changes) takes the
    pre-activated input, as in the reference code.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(StagedNet):
    """Pre-activation ResNet with basic blocks; four stages, stage protocol via :class:`StagedNet`.

    Args:
        num_classes: number of output logits.
        blocks: blocks per stage (``(2, 2, 2, 2)`` for PreActResNet18).
        width: channels of the stem and first stage; stage k has ``width * 2**(k-1)``.
        final_bn: add BN-ReLU after the last stage (False: the reference code's behaviour).
        stem_stride: stride of the stem convolution; the Puzzle Mix / Co-Mixup code uses 2 for
            64x64 Tiny-ImageNet (``stride = 2`` in their ``main.py``), 1 for CIFAR.
    """

    def __init__(self, num_classes: int, *, blocks: Sequence[int] = (2, 2, 2, 2), width: int = 64,
                 final_bn: bool = False, stem_stride: int = 1) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if not is_int(width) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if len(blocks) < 1 or any(not is_int(b) or b < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty sequence of positive ints, got {blocks!r}")
        if stem_stride not in (1, 2) or isinstance(stem_stride, bool):
            raise ValueError(f"stem_stride must be 1 or 2, got {stem_stride!r}")
        self.stem = nn.Conv2d(3, width, 3, stride=stem_stride, padding=1, bias=False)
        self.stages, in_ch = build_stages(lambda i, o, stride: PreActBlock(i, o, stride=stride), width,
                                          [width * 2 ** i for i in range(len(blocks))], blocks)
        self.head = PoolHead(in_ch, final_bn=bool(final_bn))
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)
        self._finish_init()


@register_model("preactresnet18")
def preactresnet18(num_classes: int, *, width: int = 64, final_bn: bool = False, stem_stride: int = 1) -> PreActResNet:
    """PreActResNet18: blocks [2, 2, 2, 2] at 64/128/256/512 channels (~11.2M parameters, 10 classes).

    Args:
        num_classes: number of output logits.
        width: stem/first-stage width (64 in the paper).
        final_bn: add the final BN-ReLU before pooling (off by default, like the reference code).
        stem_stride: 1 (CIFAR) or 2 (the reference code's 64x64 Tiny-ImageNet setting).
    """
    return PreActResNet(num_classes, blocks=(2, 2, 2, 2), width=width, final_bn=final_bn, stem_stride=stem_stride)
