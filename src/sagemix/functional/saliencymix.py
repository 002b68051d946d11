"""SaliencyMix kernels: OpenCV static saliency, saliency peaks and the boxes centred on them.

SaliencyMix: Uddin, Monira, Shin, Chung & Bae, "SaliencyMix: A Saliency Guided Data Augmentation
Strategy for Better Regularization", ICLR 2021, https://arxiv.org/abs/2006.01791.
The saliency detector is OpenCV's static fine-grained saliency (Montabone & Soto, "Human detection
using a mobile platform and novel features derived from a visual saliency mechanism", Image and
Vision Computing 2010), from ``opencv-contrib-python(-headless)``:
``pip install "sagemix[saliencymix]"``.

The detector runs image by image in OpenCV (it has no batched form), in this process or, given a
:class:`sagemix.functional.pool.WorkerPool`, in its worker processes (the batch leaves the device in
one transfer and comes back in one; the pool gets one contiguous slice of images per worker).
Everything else here (the de-normalisation, the peaks, the boxes and, in
:mod:`sagemix.functional.boxes`, the paste) is batched.

Nothing here imports from the rest of sagemix outside :mod:`sagemix.functional`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .boxes import box_sides, centered_boxes
from .pool import WorkerPool

__all__ = ["denormalize_to_uint8", "opencv_saliency", "saliency_of_arrays", "saliency_argmax", "saliency_boxes"]

_EXTRA_HINT = 'pip install "sagemix[saliencymix]"'


def denormalize_to_uint8(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Undo ``Normalize(mean, std)`` and quantise to uint8: ``round(255 * (x * std + mean))`` clamped to [0, 255].

    Args:
        images: (B, C, H, W) normalised floating images.
        mean: C per-channel means on the 0-1 scale.
        std: C per-channel standard deviations on the 0-1 scale.

    Returns:
        (B, C, H, W) uint8 tensor on the device of ``images``.
    """
    if not isinstance(images, Tensor) or images.ndim != 4 or not images.is_floating_point():
        raise ValueError("images must be a floating (B, C, H, W) tensor, got "
                         f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    c = images.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"mean and std must have one value per channel (C={c}), got mean={tuple(mean)!r} "
                         f"and std={tuple(std)!r}")
    m = torch.tensor([float(v) for v in mean], dtype=torch.float32, device=images.device).view(1, c, 1, 1)
    s = torch.tensor([float(v) for v in std], dtype=torch.float32, device=images.device).view(1, c, 1, 1)
    x = (images.float() * s + m) * 255.0
    return x.round().clamp(0, 255).to(torch.uint8)


def require_opencv_saliency() -> None:
    """Raise the ImportError naming the extra when OpenCV's saliency module is missing (a mixer checks at
    creation rather than at its first batch)."""
    _detector()


def _detector():  # noqa: ANN202 - an OpenCV object
    try:
        import cv2  # noqa: PLC0415 (optional extra)

        return cv2.saliency.StaticSaliencyFineGrained_create()
    except (ImportError, AttributeError) as e:
        raise ImportError("SaliencyMix's default saliency needs OpenCV's contrib build (cv2.saliency): "
                          f"{_EXTRA_HINT}, or pass saliency_fn=...") from e


def saliency_of_arrays(arr: np.ndarray) -> np.ndarray:
    """OpenCV's static fine-grained saliency of (N, H, W, 3) BGR or (N, H, W) grey uint8 arrays.

    A top-level function, so that a :class:`sagemix.functional.pool.WorkerPool` can run it.

    Returns:
        (N, H, W) float32 maps in [0, 1].
    """
    detector = _detector()
    out = np.empty(arr.shape[:3], dtype=np.float32)
    for i, img in enumerate(arr):  # OpenCV has no batched saliency
        ok, sal = detector.computeSaliency(np.ascontiguousarray(img))
        if not ok:
            raise RuntimeError("OpenCV StaticSaliencyFineGrained.computeSaliency failed")
        sal = np.asarray(sal)
        out[i] = sal.astype(np.float32) * (1.0 / 255.0 if sal.dtype == np.uint8 else 1.0)  # 8-bit builds
    return out


def opencv_saliency(images_uint8: Tensor, *, pool: WorkerPool | None = None) -> Tensor:
    """OpenCV's static fine-grained saliency of each image, (B, H, W) float32 in [0, 1].

    RGB images are passed to OpenCV in its BGR order (the detector converts colour images to grey
    with the BGR weights); one-channel images are passed as they are. The detector runs on the CPU,
    one image at a time, in this process or in ``pool`` (one slice of the batch per worker; the
    same maps either way); the batch goes to the CPU in one transfer and the maps come back in one.

    Args:
        images_uint8: (B, 3, H, W) RGB or (B, 1, H, W) grey uint8 images.
        pool: an optional :class:`sagemix.functional.pool.WorkerPool`.

    Returns:
        (B, H, W) float32 saliency maps on the device of ``images_uint8``.

    Raises:
        ImportError: OpenCV's contrib build (``cv2.saliency``) is not installed.
    """
    if not isinstance(images_uint8, Tensor) or images_uint8.ndim != 4 or images_uint8.dtype != torch.uint8:
        raise ValueError("images_uint8 must be a uint8 (B, C, H, W) tensor, got "
                         + (f"dtype {images_uint8.dtype} and shape {tuple(images_uint8.shape)}"
                            if isinstance(images_uint8, Tensor) else type(images_uint8).__name__))
    c = images_uint8.shape[1]
    if c not in (1, 3):
        raise ValueError(f"OpenCV saliency needs 1 (grey) or 3 (RGB) channels, got C={c}")
    _detector()  # fail here, naming the extra, rather than in a worker
    arr = images_uint8.detach().cpu()
    arr = arr.flip(1) if c == 3 else arr  # RGB -> BGR, OpenCV's channel order
    arr = arr.permute(0, 2, 3, 1).contiguous().numpy()
    arr = arr if c == 3 else arr[..., 0]
    if pool is not None and arr.shape[0] > 1:
        parts = np.array_split(arr, min(pool.num_workers, arr.shape[0]))
        maps = np.concatenate(pool.map(saliency_of_arrays, parts))
    else:
        maps = saliency_of_arrays(arr)
    return torch.from_numpy(maps).to(images_uint8.device)


def saliency_argmax(saliency: Tensor) -> tuple[Tensor, Tensor]:
    """Row and column of each map's maximum (the first one in row-major order on ties).

    Args:
        saliency: (B, H, W) saliency maps.

    Returns:
        ``(rows, cols)``, two (B,) int64 tensors.
    """
    if not isinstance(saliency, Tensor) or saliency.ndim != 3:
        raise ValueError("saliency must be a (B, H, W) tensor, got "
                         f"{tuple(saliency.shape) if isinstance(saliency, Tensor) else type(saliency).__name__}")
    w = saliency.shape[2]
    flat = torch.nan_to_num(saliency.float().flatten(1), nan=float("-inf"))
    idx = flat.argmax(dim=1)
    return idx // w, idx % w


def saliency_boxes(saliency: Tensor, lam: float | Tensor) -> Tensor:
    """SaliencyMix boxes: side ``sqrt(1-lam)`` × image side, centred on each map's peak, clipped.

    Args:
        saliency: (N, H, W) saliency of the images whose pixels are pasted (the partners).
        lam: a number in [0, 1] (the same side for all boxes) or a (N,) tensor.

    Returns:
        (N, 4) int64 ``(x0, y0, x1, y1)`` boxes on the device of ``saliency``.
    """
    rows, cols = saliency_argmax(saliency)
    h, w = saliency.shape[1], saliency.shape[2]
    cut_h, cut_w = box_sides(h, w, lam)
    return centered_boxes(rows, cols, cut_h, cut_w, h, w)
