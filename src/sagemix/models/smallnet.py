"""SmallNet: a small, fast CNN for CPU runs, smoke tests and the offline dataset.

Not from a paper: a plain VGG-style network in the spirit of the fast CIFAR trainers (airbench,
Keller Jordan 2024, https://arxiv.org/abs/2404.00498): a 3x3 stem and three stages of
conv3x3-maxpool-BN-ReLU that double the width and halve the resolution, global average pooling
and a linear classifier. It implements the stage protocol of Manifold Mixup (Verma et al.,
ICML 2019, https://arxiv.org/abs/1806.05236) like the paper's models, so every mixing method runs
on it. With the default ``width=16`` it has ~0.1M parameters and trains at a few thousand 32x32
images per second on two CPU cores.
"""
from __future__ import annotations

from torch import nn

from ..checks import is_int
from .registry import register_model
from .staged import PoolHead, StagedNet, check_num_classes, init_weights

__all__ = ["SmallNet", "smallnet"]


def _conv_pool_block(in_channels: int, channels: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)]
    if pool:
        # Pooling before BN/ReLU does the normalisation on 4x fewer values (same function for max-pool
        # up to BN's positive scale).
        layers.append(nn.MaxPool2d(2, ceil_mode=True))
    layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class SmallNet(StagedNet):
    """A stem and ``num_stages`` conv-pool-BN-ReLU stages of widths ``width * 2**k``.

    Args:
        num_classes: number of output logits.
        width: stem width; stage k (1-based) has ``width * 2**k`` channels.
        num_stages: number of stages (each halves the resolution, ceil for odd sizes).

    Example:
        >>> import torch
        >>> SmallNet(10)(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 10])
    """

    def __init__(self, num_classes: int, *, width: int = 16, num_stages: int = 3) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if not is_int(width) or width < 1:
            raise ValueError(f"width must be a positive int, got {width!r}")
        if not is_int(num_stages) or num_stages < 1:
            raise ValueError(f"num_stages must be a positive int, got {num_stages!r}")
        self.stem = _conv_pool_block(3, width, pool=False)
        self.stages = nn.ModuleList(
            _conv_pool_block(width * 2 ** k, width * 2 ** (k + 1), pool=True) for k in range(num_stages))
        out_ch = width * 2 ** num_stages
        self.head = PoolHead(out_ch, final_bn=False)
        self.fc = nn.Linear(out_ch, num_classes)
        init_weights(self)
        self._finish_init()


@register_model("smallnet")
def smallnet(num_classes: int, *, width: int = 16, num_stages: int = 3) -> SmallNet:
    """SmallNet (width 16, three stages: ~0.1M parameters), a fast network for CPU runs."""
    return SmallNet(num_classes, width=width, num_stages=num_stages)
