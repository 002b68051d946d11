"""The inputs and labels of a mixer call: image and target checks, soft labels, label mixing."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..debug import check_values

__all__ = ["check_images", "to_soft_targets", "mix_targets", "SOFT_TARGET_ATOL"]

#: Tolerance on the row sums of soft targets: |sum - 1| <= this (float32/float64 rows; half-precision
#: rows get ten times more).
SOFT_TARGET_ATOL: float = 1e-3
def check_images(images: Any, name: str = "images") -> Tensor:
    """Validate a (B, C, H, W) floating batch of finite values; raise a clear TypeError/ValueError otherwise.

    Finiteness is a value check (:func:`sagemix.debug.check_values`): precise on CPU, asynchronous on
    a device.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor (normalised images), got dtype {images.dtype}")
    if images.shape[0] < 1 or images.shape[2] < 1 or images.shape[3] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(images.shape)}")
    finite = torch.isfinite(images)
    check_values(finite, f"{name} must hold finite values (no NaN or inf pixels)",
                 lambda: f"got {int((~finite).sum())} non-finite values of {images.numel()}")
    return images


def to_soft_targets(targets: Any, num_classes: int | None, batch_size: int, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | None = None,
                    name: str = "targets") -> Tensor:
    """Turn int (B,) labels or float (B, K) soft labels into float (B, K) rows summing to 1.

    Integer labels must lie in ``[0, num_classes)``; soft rows must be finite, non-negative and sum
    to 1 within :data:`SOFT_TARGET_ATOL`. The value checks go through
    :func:`sagemix.debug.check_values` (precise on CPU, asynchronous on a device).
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, int (B,) or float (B, K), got {type(targets).__name__}")
    if targets.ndim not in (1, 2):
        raise ValueError(f"{name} must have shape (B,) (class indices) or (B, K) (soft labels) with "
                         f"B={batch_size}, got shape {tuple(targets.shape)}")
    if targets.shape[0] != batch_size:
        raise ValueError(f"{name} must have batch size {batch_size} like the images, got shape {tuple(targets.shape)}")
    device = device if device is not None else targets.device
    if targets.ndim == 1:
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"{name} of shape (B,) must hold integer class indices, got dtype {targets.dtype}")
        if num_classes is None:
            raise ValueError(f"num_classes is required when {name} are integer labels (got num_classes=None)")
        if targets.numel():
            check_values((targets >= 0) & (targets < num_classes),
                         f"{name} must lie in [0, {num_classes - 1}] for num_classes={num_classes}",
                         lambda: f"got values in [{int(targets.min())}, {int(targets.max())}]")
        return torch.nn.functional.one_hot(targets.long(), num_classes).to(device=device, dtype=dtype)
    if not targets.is_floating_point():
        raise TypeError(f"{name} of shape (B, K) must be floating soft labels, got dtype {targets.dtype}")
    if num_classes is not None and targets.shape[1] != num_classes:
        raise ValueError(f"{name} has {targets.shape[1]} classes but num_classes={num_classes}")
    if targets.shape[1] < 1:
        raise ValueError(f"{name} of shape (B, K) needs K >= 1 classes, got shape {tuple(targets.shape)}")
    atol = SOFT_TARGET_ATOL * (10.0 if targets.element_size() < 4 else 1.0)
    t = targets.float() if targets.element_size() < 4 else targets
    sums = t.sum(dim=1)
    row_ok = torch.isfinite(t).all(dim=1) & (t >= 0).all(dim=1) & ((sums - 1.0).abs() <= atol)
    check_values(row_ok, f"{name} of shape (B, K) must be soft labels: finite, non-negative rows summing to 1 "
                         f"(within {atol:g})", lambda: _describe_bad_rows(t, row_ok))
    return targets.to(device=device, dtype=dtype)


def _describe_bad_rows(t: Tensor, row_ok: Tensor) -> str:
    """``"got row i = [...] (sum s)"`` for the first bad row of soft targets (host read)."""
    i = int((~row_ok).nonzero()[0, 0])
    row = t[i].tolist()
    shown = ", ".join(f"{v:.4g}" for v in row[:8]) + (", ..." if len(row) > 8 else "")
    return f"got row {i} = [{shown}] (sum {float(t[i].sum()):.6g}); {int((~row_ok).sum())} bad rows"


def mix_targets(targets: Tensor, index: Tensor, lam: Tensor) -> Tensor:
    """``lam[:, None] * targets + (1 - lam[:, None]) * targets[index]`` (rows still sum to 1)."""
    lam = lam.to(targets.dtype).reshape(-1, 1)
    return lam * targets + (1.0 - lam) * targets[index]
