"""Wide ResNet WRN16-8 for CIFAR (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016,
https://arxiv.org/abs/1605.07146), as used by SAGE (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113), Puzzle Mix and Co-Mixup.

Depth 16 (two pre-activation wide blocks per stage), widen factor 8: a 3x3 stem with 16 channels
and three stages at 128/256/512 channels (stride 1, 2, 2), final BN-ReLU, global average pooling
and a linear classifier. As in the reference code the stride sits on the block's second
convolution and the shortcut takes the block's raw input. Convolutions have no bias (each is
followed by BN); the reference keeps biases, a difference of ~4k parameters.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..checks import is_int
from .registry import register_model
from .staged import PoolHead, StagedNet, build_stages, check_num_classes, init_weights

__all__ = ["WideBlock", "WideResNet", "wrn16_8"]


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3(stride) plus a (1x1 conv) shortcut of the input."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.dropout(self.conv1(self.relu(self.bn1(x))))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(StagedNet):
    """WRN-depth-k: three stages of ``(depth - 4) / 6`` wide blocks at 16k/32k/64k channels.

    Args:
        num_classes: number of output logits.
        depth: total depth, ``6n + 4`` (16 for WRN16-8).
        widen_factor: k (8 for WRN16-8).
        dropout: dropout rate inside the blocks (0 in the SAGE recipes).
    """

    def __init__(self, num_classes: int, *, depth: int = 16, widen_factor: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if not is_int(depth) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be an int of the form 6n + 4 with n >= 1, got {depth!r}")
        if not is_int(widen_factor) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive int, got {widen_factor!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.stages, in_ch = build_stages(lambda i, o, stride: WideBlock(i, o, stride=stride, dropout=float(dropout)),
                                          16, widths, [n] * len(widths))
        self.head = PoolHead(in_ch, final_bn=True)
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)
        self._finish_init()


@register_model("wrn16_8")
def wrn16_8(num_classes: int, *, dropout: float = 0.0) -> WideResNet:
    """WRN16-8 (~11.0M parameters for 10 classes).

    Args:
        num_classes: number of output logits.
        dropout: dropout rate inside the blocks (0 in the SAGE recipes).
    """
    return WideResNet(num_classes, depth=16, widen_factor=8, dropout=dropout)
