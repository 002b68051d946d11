"""ResNeXt29-4-24 for CIFAR (Xie et al., "Aggregated Residual Transformations for Deep Neural
Networks", CVPR 2017, https://arxiv.org/abs/1611.05431), as used by SAGE (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113), Puzzle Mix and Co-Mixup.

Depth 29 (three bottleneck blocks per stage, three stages), cardinality 4, base width 24: a 3x3
stem (64 channels, BN-ReLU), stages with bottleneck widths 64/128/256 and outputs 256/512/1024
(expansion 4, stride 1, 2, 2), global average pooling and a linear classifier. Each bottleneck is
1x1 reduce to ``C * D`` channels (``D = planes * base_width // 64``), a grouped 3x3 with ``C``
groups, a 1x1 expand, each followed by BN (ReLU after all but the last, then after the sum).
"""
from __future__ import annotations

from torch import Tensor, nn

from ..checks import is_int
from .registry import register_model
from .staged import PoolHead, StagedNet, build_stages, check_num_classes, init_weights

__all__ = ["ResNeXtBottleneck", "ResNeXt", "resnext29_4_24"]


class ResNeXtBottleneck(nn.Module):
    """Post-activation ResNeXt bottleneck with a grouped 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, *, cardinality: int, base_width: int, stride: int = 1) -> None:
        super().__init__()
        d = planes * base_width // 64
        inner = cardinality * d
        out_ch = planes * self.expansion
        self.conv_reduce = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, out_ch, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_ch, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(out_ch))
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn_reduce(self.conv_reduce(x)))
        out = self.relu(self.bn(self.conv_conv(out)))
        out = self.bn_expand(self.conv_expand(out))
        return self.relu(out + self.downsample(x))


class ResNeXt(StagedNet):
    """ResNeXt for CIFAR: three stages of ``(depth - 2) / 9`` bottlenecks.

    Args:
        num_classes: number of output logits.
        depth: total depth, ``9n + 2`` (29 for ResNeXt29).
        cardinality: number of groups C (4).
        base_width: bottleneck width per group at the first stage, D for planes=64 (24).
    """

    def __init__(self, num_classes: int, *, depth: int = 29, cardinality: int = 4, base_width: int = 24) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if not is_int(depth) or depth < 11 or (depth - 2) % 9:
            raise ValueError(f"depth must be an int of the form 9n + 2 with n >= 1, got {depth!r}")
        for arg, val in (("cardinality", cardinality), ("base_width", base_width)):
            if not is_int(val) or val < 1:
                raise ValueError(f"{arg} must be a positive int, got {val!r}")
        n = (depth - 2) // 9
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        self.stages, in_ch = build_stages(
            lambda i, planes, stride: ResNeXtBottleneck(i, planes, cardinality=cardinality, base_width=base_width,
                                                        stride=stride),
            64, (64, 128, 256), (n, n, n), expansion=ResNeXtBottleneck.expansion)
        self.head = PoolHead(in_ch, final_bn=False)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)
        self._finish_init()


@register_model("resnext29_4_24")
def resnext29_4_24(num_classes: int) -> ResNeXt:
    """ResNeXt29 with cardinality 4 and base width 24 (~4.8M parameters for 10 classes)."""
    return ResNeXt(num_classes, depth=29, cardinality=4, base_width=24)
