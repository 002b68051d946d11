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

    Uses log-probabilities (``log p`` and ``log(1 - p)`` from ``log_softmax``) rather than
    ``nn.BCELoss`` on probabilities, which is the same value but stays finite when p saturates;
    torch's BCELoss clamps the logs at -100 and so do we.
    """
    _check(logits, targets)
    z = logits.float()
    logp = F.log_softmax(z, dim=1).clamp_min(-100.0)
    # log(1 - p) = log(sum_{j != k} exp z_j) - logsumexp(z)
    lse = torch.logsumexp(z, dim=1, keepdim=True)
    b, k = z.shape
    if k == 1:
        log1mp = torch.full_like(z, -100.0)
    else:
        eye = torch.eye(k, dtype=torch.bool, device=z.device)
        others = z.unsqueeze(1).expand(b, k, k).masked_fill(eye, float("-inf"))
        log1mp = (torch.logsumexp(others, dim=2) - lse).clamp_min(-100.0)
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
