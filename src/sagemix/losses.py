"""Losses for soft targets.

- :func:`soft_cross_entropy`: ``mean_b sum_k -y_bk log softmax(z)_bk``, the library default.
- :func:`bce_softmax`: binary cross-entropy on softmax probabilities against soft targets, averaged
  over B*K, the loss of the SAGE/Puzzle Mix/Co-Mixup research code (docs/SAGE.md §5).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["soft_cross_entropy", "bce_softmax", "SoftCrossEntropy", "BCESoftmax", "get_loss", "LOSSES"]


def _check(logits: Tensor, targets: Tensor) -> None:
    if not isinstance(logits, Tensor) or not isinstance(targets, Tensor):
        raise TypeError("logits and targets must be torch.Tensors")
    if logits.ndim != 2 or targets.shape != logits.shape:
        raise ValueError(f"logits (B, K) and soft targets (B, K) must match, got {tuple(logits.shape)} "
                         f"and {tuple(targets.shape)}")


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Soft-target cross-entropy, mean over the batch. Computed in float32 for half inputs."""
    _check(logits, targets)
    logp = F.log_softmax(logits.float(), dim=1)
    return -(targets.float() * logp).sum(dim=1).mean()


def bce_softmax(logits: Tensor, targets: Tensor) -> Tensor:
    """BCE between softmax(logits) and soft targets, mean over B*K (the research code's loss).

    Uses log-probabilities (``log p`` and ``log(1 - p)``) rather than ``nn.BCELoss`` on
    probabilities, which is the same value but stays finite when p saturates; torch's BCELoss
    clamps the logs at -100 and so do we. Memory and work are O(B x K): with ``m`` the row maximum
    and ``e_j = exp(z_j - m)`` (float64), ``1 - p_k = sum_{j != k} e_j / sum_j e_j``. For every
    class but the row's arg-max that numerator is ``sum_j e_j - e_k`` with no cancellation
    (it keeps ``e_argmax = 1 >= e_k``); for the arg-max it is summed directly over the other classes.
    """
    _check(logits, targets)
    z = logits.float()
    logp = F.log_softmax(z, dim=1).clamp_min(-100.0)
    b, k = z.shape
    if k == 1:
        log1mp = torch.full_like(z, -100.0)
    else:
        zd = z.double()
        top = zd.argmax(dim=1, keepdim=True)
        e = torch.exp(zd - zd.gather(1, top))  # (B, K), 1 at the arg-max
        total = e.sum(dim=1, keepdim=True)
        is_top = torch.zeros_like(e, dtype=torch.bool).scatter_(1, top, True)
        rest = e.masked_fill(is_top, 0.0).sum(dim=1, keepdim=True)  # sum over the classes but the arg-max
        others = torch.where(is_top, rest, total - e)
        log1mp = (torch.log(others.clamp_min(torch.finfo(torch.float64).tiny)) - torch.log(total))
        log1mp = log1mp.clamp_min(-100.0).float()
    t = targets.float()
    return -(t * logp + (1 - t) * log1mp).mean()


class SoftCrossEntropy(torch.nn.Module):
    """Module form of :func:`soft_cross_entropy`."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return soft_cross_entropy(logits, targets)


class BCESoftmax(torch.nn.Module):
    """Module form of :func:`bce_softmax`."""

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return bce_softmax(logits, targets)


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"soft_ce": soft_cross_entropy, "bce_softmax": bce_softmax}


def get_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Loss by name: ``"soft_ce"`` or ``"bce_softmax"``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}")
    return LOSSES[name]
