"""The Mixup kernel: a convex combination of each sample with its partner.

Mixup: Zhang, Cisse, Dauphin & Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
https://arxiv.org/abs/1710.09412. The same kernel mixes hidden states for Manifold Mixup (Verma et
al., ICML 2019, https://arxiv.org/abs/1806.05236), so it accepts any tensor whose first dimension is
the batch and is differentiable in its input.

Nothing here imports from the rest of sagemix but :mod:`sagemix.debug` (value checks that do not
stall a device).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..checks import is_number
from ..debug import check_values

__all__ = ["mixup", "check_perm"]


def check_perm(perm: Any, batch: int, name: str = "perm") -> Tensor:
    """Validate a (batch,) integer tensor of partner indices (the permutation of a mix).

    Args:
        perm: the tensor to check.
        batch: the batch size B it must match.
        name: the argument name used in error messages.

    Returns:
        ``perm`` itself.

    Raises:
        TypeError: not an integer tensor.
        ValueError: wrong shape, or (on CPU; asynchronously on a device, see :mod:`sagemix.debug`)
            a value outside ``[0, batch)``.

    Example:
        >>> import torch
        >>> check_perm(torch.tensor([1, 0]), 2).tolist()
        [1, 0]
    """
    if not isinstance(perm, Tensor):
        raise TypeError(f"{name} must be an int64 torch.Tensor of shape ({batch},), got {type(perm).__name__}")
    if perm.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must hold integer indices (int64), got dtype {perm.dtype}")
    if perm.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},) (one partner per sample), got {tuple(perm.shape)}")
    if batch:
        check_values((perm >= 0) & (perm < batch), f"{name} must hold partner indices in [0, {batch - 1}]",
                     lambda: f"got values in [{int(perm.min())}, {int(perm.max())}]")
    return perm


def mixup(images: Tensor, perm: Tensor, lam: float | Tensor) -> Tensor:
    """Mix every sample with its partner: ``lam * x + (1 - lam) * x[perm]``.

    The result is a new tensor in the input dtype; float16/bfloat16 inputs are mixed in float32 and
    cast back. With ``lam = 1`` the input is returned unchanged (as a copy). The kernel is
    differentiable in ``images`` (Manifold Mixup calls it on hidden states inside the forward).

    Args:
        images: (B, ...) floating tensor, e.g. (B, C, H, W) images or (B, C', H', W') hidden states.
        perm: (B,) int64, the partner of each sample.
        lam: the weight of the sample itself, a number in [0, 1] (one for the batch) or a (B,)
            tensor (one per sample; its range is not checked here).

    Returns:
        (B, ...) mixed tensor, same dtype and device as ``images``.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [4.0]])
        >>> mixup(x, torch.tensor([1, 0]), 0.75).tolist()
        [[1.0], [3.0]]
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, ...), got {type(images).__name__}")
    if images.ndim < 1 or not images.is_floating_point():
        raise ValueError(f"images must be a floating tensor of shape (B, ...), got dtype {images.dtype} "
                         f"and shape {tuple(images.shape)}")
    b = images.shape[0]
    perm = check_perm(perm, b)
    compute = torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype
    x = images.to(compute)
    if isinstance(lam, Tensor):
        if lam.numel() == 1 and lam.ndim <= 1:
            w: float | Tensor = lam.reshape(()).to(device=images.device, dtype=compute)
        elif lam.shape == (b,):
            w = lam.to(device=images.device, dtype=compute).reshape(b, *([1] * (images.ndim - 1)))
        else:
            raise ValueError(f"lam must be a number or a tensor of shape ({b},), got shape {tuple(lam.shape)}")
    elif is_number(lam):
        if not (math.isfinite(lam) and 0.0 <= lam <= 1.0):
            raise ValueError(f"lam must be a number in [0, 1], got {lam!r}")
        w = float(lam)
    else:
        raise TypeError(f"lam must be a float in [0, 1] or a (B,) tensor, got {type(lam).__name__}")
    mixed = w * x + (1.0 - w) * x[perm.to(images.device)]
    return mixed.to(images.dtype)
