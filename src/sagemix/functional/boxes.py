"""Box kernels for CutMix, Cutout and SaliencyMix: draw boxes, turn them into masks, paste, erase.

CutMix: Yun, Han, Oh, Chun, Choe & Yoo, "CutMix: Regularization Strategy to Train Strong Classifiers
with Localizable Features", ICCV 2019, https://arxiv.org/abs/1905.04899.
Cutout: DeVries & Taylor, "Improved Regularization of Convolutional Neural Networks with Cutout",
2017, https://arxiv.org/abs/1708.04552.

Boxes are int64 tensors of shape (N, 4) holding ``(x0, y0, x1, y1)`` in pixels, half-open
(``x0 <= col < x1``, ``y0 <= row < y1``), already clipped to the image: the XYXY order of
``torchvision.ops``. Every kernel works on the whole batch at once (masks built by broadcasting
comparisons), with no Python loop over the samples.

A box of side ``s`` centred on pixel ``c`` spans ``[c - s // 2, c - s // 2 + s)`` before clipping,
so its unclipped side is exactly ``s`` (the CutMix and Cutout research code spans
``[c - s // 2, c + s // 2)``, one pixel short for odd ``s``; the label weight is recomputed from the
clipped box either way).

Nothing here imports from the rest of sagemix.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..checks import check_number, is_int, is_number
from .mixup import check_perm

__all__ = ["box_sides", "centered_boxes", "rand_box", "box_masks", "box_areas", "paste_boxes", "erase_boxes"]


def _check_size(h: Any, w: Any) -> tuple[int, int]:
    for name, v in (("h", h), ("w", w)):
        if not is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive int (image size in pixels), got {v!r}")
    return h, w


def _lam_tensor(lam: Any) -> Tensor:
    """``lam`` as a 1-D float64 CPU tensor (a number gives one element); range [0, 1] checked."""
    if isinstance(lam, Tensor):
        if not lam.is_floating_point() or lam.ndim > 1:
            raise ValueError(f"lam must be a number or a 1-D floating tensor, got dtype {lam.dtype} "
                             f"and shape {tuple(lam.shape)}")
        t = lam.detach().to("cpu", torch.float64).reshape(-1)
    elif is_number(lam):
        t = torch.tensor([float(lam)], dtype=torch.float64)
    else:
        raise TypeError(f"lam must be a float in [0, 1] or a 1-D tensor, got {type(lam).__name__}")
    if t.numel() == 0 or not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
    return t


def box_sides(h: int, w: int, lam: float | Tensor) -> tuple[Tensor, Tensor]:
    """CutMix's box sides for a target area share ``1 - lam``: ``(int(H*sqrt(1-lam)), int(W*sqrt(1-lam)))``.

    Args:
        h: image height H.
        w: image width W.
        lam: a number in [0, 1] or a 1-D tensor of them.

    Returns:
        ``(cut_h, cut_w)``, two int64 CPU tensors of shape (N,) (N = 1 for a number).
    """
    h, w = _check_size(h, w)
    r = torch.sqrt(1.0 - _lam_tensor(lam))
    # The 1e-9 guards against sqrt round-off turning an exact side (e.g. lam = 0 -> H) into H - 1.
    return (torch.floor(h * r + 1e-9).long(), torch.floor(w * r + 1e-9).long())


def centered_boxes(cy: Tensor, cx: Tensor, cut_h: Tensor, cut_w: Tensor, h: int, w: int) -> Tensor:
    """Boxes of sides ``(cut_h, cut_w)`` centred on pixels ``(cy, cx)``, clipped to an H×W image.

    Args:
        cy, cx: (N,) int centre row and column.
        cut_h, cut_w: (N,) or (1,) int sides before clipping.
        h, w: image size.

    Returns:
        (N, 4) int64 ``(x0, y0, x1, y1)`` boxes, on the device of ``cy``.
    """
    h, w = _check_size(h, w)
    cy, cx = cy.long(), cx.long()
    cut_h, cut_w = cut_h.to(cy.device).long(), cut_w.to(cy.device).long()
    y0 = cy - cut_h // 2
    x0 = cx - cut_w // 2
    return torch.stack([x0.clamp(0, w), y0.clamp(0, h), (x0 + cut_w).clamp(0, w), (y0 + cut_h).clamp(0, h)], dim=-1)


def rand_box(h: int, w: int, lam: float | Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw CutMix boxes: sides ``H*sqrt(1-lam)`` by ``W*sqrt(1-lam)``, centre uniform over the pixels, clipped.

    Args:
        h: image height H.
        w: image width W.
        lam: a number in [0, 1] (one box) or a (N,) tensor (N boxes, one per value).
        generator: optional CPU ``torch.Generator`` for the centres.

    Returns:
        (N, 4) int64 CPU ``(x0, y0, x1, y1)`` boxes (N = 1 for a number).

    Example:
        >>> import torch
        >>> rand_box(32, 32, 0.75, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([1, 4])
    """
    cut_h, cut_w = box_sides(h, w, lam)
    n = cut_h.numel()
    cy = torch.randint(0, h, (n,), generator=generator)
    cx = torch.randint(0, w, (n,), generator=generator)
    return centered_boxes(cy, cx, cut_h, cut_w, h, w)


def _check_boxes(boxes: Any, batch: int | None) -> Tensor:
    """Validate (N, 4) integer boxes; with ``batch`` given, N must be ``batch`` or 1."""
    want = "(N, 4)" if batch is None else f"({batch}, 4) or (1, 4)"
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be an int64 torch.Tensor of shape {want}, got {type(boxes).__name__}")
    if boxes.is_floating_point() or boxes.is_complex() or boxes.dtype == torch.bool:
        raise TypeError(f"boxes must hold integer pixel coordinates, got dtype {boxes.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4 or (batch is not None and boxes.shape[0] not in (1, batch)):
        raise ValueError(f"boxes must have shape {want} as (x0, y0, x1, y1), got {tuple(boxes.shape)}")
    return boxes.long()


def box_masks(boxes: Tensor, h: int, w: int) -> Tensor:
    """Boolean masks of the boxes: ``mask[n, r, c]`` is True inside box n.

    Args:
        boxes: (N, 4) int ``(x0, y0, x1, y1)``; coordinates outside the image are clipped.
        h, w: mask size.

    Returns:
        (N, H, W) bool on the device of ``boxes``.
    """
    h, w = _check_size(h, w)
    boxes = _check_boxes(boxes, None)
    rows = torch.arange(h, device=boxes.device).view(1, h, 1)
    cols = torch.arange(w, device=boxes.device).view(1, 1, w)
    x0, y0, x1, y1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)


def box_areas(boxes: Tensor, h: int, w: int) -> Tensor:
    """Area in pixels of each box after clipping to the H×W image, (N,) int64."""
    h, w = _check_size(h, w)
    b = _check_boxes(boxes, None)
    dx = b[:, 2].clamp(0, w) - b[:, 0].clamp(0, w)
    dy = b[:, 3].clamp(0, h) - b[:, 1].clamp(0, h)
    return dx.clamp_min(0) * dy.clamp_min(0)


def paste_boxes(images: Tensor, perm: Tensor, boxes: Tensor) -> tuple[Tensor, Tensor]:
    """CutMix's paste: inside box i, sample i shows its partner ``perm[i]``'s pixels (same location).

    Args:
        images: (B, C, H, W) images (any dtype).
        perm: (B,) int64 partner of each sample.
        boxes: (B, 4) int ``(x0, y0, x1, y1)`` boxes, or (1, 4) for one box shared by the batch.

    Returns:
        ``(mixed, lam)``: the (B, C, H, W) new mixed batch and (B,) float32 ``lam = 1 - area/(H*W)``,
        the share of pixels that are the sample's own (the clipped box area is used).

    Example:
        >>> import torch
        >>> x = torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 4, 4)
        >>> mixed, lam = paste_boxes(x, torch.tensor([1, 0]), torch.tensor([[0, 0, 2, 2]]))
        >>> lam.tolist(), mixed[0, 0, 0].tolist()
        ([0.75, 0.75], [1.0, 1.0, 0.0, 0.0])
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    b, _, h, w = images.shape
    perm = check_perm(perm, b)
    boxes = _check_boxes(boxes, b).to(images.device)
    mask = box_masks(boxes, h, w).unsqueeze(1)  # (B or 1, 1, H, W)
    mixed = torch.where(mask, images[perm.to(images.device)], images)
    lam = 1.0 - box_areas(boxes, h, w).double() / float(h * w)
    return mixed, lam.expand(b).to(torch.float32)


def erase_boxes(images: Tensor, boxes: Tensor, value: float = 0.0) -> Tensor:
    """Cutout's hole: set the pixels inside each box to ``value`` (0 = the mean colour after normalisation).

    Args:
        images: (B, C, H, W) images.
        boxes: (B, 4) int ``(x0, y0, x1, y1)`` boxes, or (1, 4) for one box shared by the batch.
        value: the fill value.

    Returns:
        (B, C, H, W) new tensor with the holes filled, in the memory format of ``images``.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    check_number(value, "value")
    b, _, h, w = images.shape
    boxes = _check_boxes(boxes, b).to(images.device)
    mask = box_masks(boxes, h, w).unsqueeze(1)
    return images.clone().masked_fill_(mask, value)  # clone keeps the memory format (channels_last)
