"""CIFAR-10-C / CIFAR-100-C corruptions, reimplemented from the published recipe.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261. The SAGE paper (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) reports accuracy on CIFAR-10-C / CIFAR-100-C.

This module reimplements ``make_cifar_c.py`` (hendrycks/robustness, ``ImageNet-C/create_c/``) from
the team spec ``corruptions.md``: 15 benchmark corruptions (:data:`CORRUPTIONS`) and 4 extras
(:data:`EXTRA_CORRUPTIONS`), each at severities 1..5, on 32x32 RGB uint8 images, with the script's
constants. Every operation produces a float result in [0, 255] that is then **floored** to uint8
(``np.uint8`` truncation), as the script does. :func:`generate_corrupted` writes the layout of the
official release and :func:`load_corrupted` reads it (or the release itself).

Randomness: the script used NumPy's unseeded global RNG, so the release cannot be reproduced bit for
bit; the distributions are matched. Here every draw comes from a ``numpy.random.Generator`` that the
caller passes (or that is seeded from a torch draw). :func:`generate_corrupted` uses one generator
per (corruption, severity), seeded from the user's seed (:func:`corruption_rng`), consumed in chunks
of 1000 images. Within a call each random quantity is drawn for the whole batch at once, in image
order, and the quantities come in the spec's order (for example snow: all snow layers, then all blur
angles); so the same seed gives the same images for the same input batch.

Implementation choices that are not options (each matches the spec up to float rounding):

* ImageMagick's motion blur (Wand) is the same maths in OpenCV (:func:`im_motion_blur`: the
  one-sided half-Gaussian kernel, colliding taps added, edges replicated); expect up to +-1 LSB
  against ImageMagick's 16-bit internals.
* zoom_blur sums its zooms in float64 as one linear map (the script sums float32 arrays): +-1 at
  the floor boundary on about 0.01% of the values.
* defocus_blur correlates with ``scipy.ndimage.correlate`` (mode ``mirror`` = OpenCV's
  BORDER_REFLECT_101) instead of per-channel ``filter2D``; elastic_transform's final sampling is a
  batched bilinear gather equal to ``map_coordinates(order=1, mode="reflect")`` (tested); pixelate
  reproduces Pillow's BOX resize in batched fixed-point arithmetic (tested equal to Pillow).
* Spatter (an extra) clips the liquid layer to [0, 1] before its uint8 cast, as the spec prescribes
  (the script lets values above 1 wrap around).

Option that deviates from the spec, off by default: ``frost_source="procedural"`` uses 5 procedural
frost textures instead of the photographs shipped by ``imagecorruptions-imaug`` (frost results are
then not comparable with published CIFAR-C numbers).

Example:
    >>> import numpy as np
    >>> from sagemix.evaluate.corruptions import corrupt
    >>> x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> y = corrupt(x, "gaussian_noise", 3, rng=np.random.default_rng(1))
    >>> y.shape, y.dtype
    ((4, 32, 32, 3), dtype('uint8'))
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from ..utils import atomic_write, atomic_write_json

__all__ = [
    "CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "SEVERITIES", "IMAGE_SIZE",
    "corrupt", "corruption_rng", "generate_corrupted", "load_corrupted",
    "disk", "clipped_zoom", "zoom_geometry", "zoom_set", "plasma_fractal", "motion_blur_kernel",
    "im_motion_blur", "glass_shuffle", "load_frost_images", "pixelate_box",
]

#: The 15 benchmark corruptions, in the order the original script generates them.
CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
#: The 4 extra ("validation") corruptions, generated after the 15.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
#: All 19, benchmark first.
ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
#: The image side the constants are written for (CIFAR).
IMAGE_SIZE = 32

_EXTRA_MSG = 'pip install "sagemix[corruptions]"'
_FROST_MSG = "pip install --no-deps imagecorruptions-imaug==1.1.5"
_FROST_SOURCES = ("package", "procedural")
#: Images per chunk in :func:`generate_corrupted`; part of what a seed reproduces.
_CHUNK = 1000

# --------------------------------------------------------------------------------------------
# Severity constants, copied from make_cifar_c.py (spec section 2).
# --------------------------------------------------------------------------------------------
_GAUSSIAN_NOISE = [0.04, 0.06, .08, .09, .10]
_SHOT_NOISE = [500, 250, 100, 75, 50]
_IMPULSE_NOISE = [.01, .02, .03, .05, .07]
_SPECKLE_NOISE = [.06, .1, .12, .16, .2]
_GAUSSIAN_BLUR = [.4, .6, 0.7, .8, 1]
_DEFOCUS_BLUR = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]
_GLASS_BLUR = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]
_MOTION_BLUR = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)]
_SNOW = [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
         (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
         (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)]
_FROST = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)]
_FOG = [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)]
_BRIGHTNESS = [.05, .1, .15, .2, .3]
_CONTRAST = [.75, .5, .4, .3, 0.15]
_ELASTIC = [(IMAGE_SIZE * 0, IMAGE_SIZE * 0, IMAGE_SIZE * 0.08),
            (IMAGE_SIZE * 0.05, IMAGE_SIZE * 0.2, IMAGE_SIZE * 0.07),
            (IMAGE_SIZE * 0.08, IMAGE_SIZE * 0.06, IMAGE_SIZE * 0.06),
            (IMAGE_SIZE * 0.1, IMAGE_SIZE * 0.04, IMAGE_SIZE * 0.05),
            (IMAGE_SIZE * 0.1, IMAGE_SIZE * 0.03, IMAGE_SIZE * 0.03)]
_PIXELATE = [0.95, 0.9, 0.85, 0.75, 0.65]
_JPEG = [80, 65, 58, 50, 40]
_SPATTER = [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1)]
_SATURATE = [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)]

# Frost photographs: the 5 the script can pick (randint(5) never picks frost6.jpg).
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
# Mean / std of the photographs (spec section 4), used to tint the procedural textures.
_FROST_TEAL = ((78.0, 149.0, 166.0), (27.0, 17.0, 15.0))
_FROST_WHITE = ((201.0, 205.0, 215.0), (22.0, 22.0, 22.0))


# --------------------------------------------------------------------------------------------
# Optional dependencies
# --------------------------------------------------------------------------------------------
def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(f"the corruptions need OpenCV: {_EXTRA_MSG}") from e
    return cv2


def _ndimage() -> Any:
    try:
        import scipy.ndimage as ndimage
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"the corruptions need SciPy: {_EXTRA_MSG}") from e
    return ndimage


def _pil_image() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover
        raise ImportError(f"the corruptions need Pillow: {_EXTRA_MSG}") from e
    return Image


# --------------------------------------------------------------------------------------------
# Randomness
# --------------------------------------------------------------------------------------------
def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """The generator :func:`generate_corrupted` uses for one (corruption, severity).

    Seeded from ``SeedSequence([seed, k, severity])`` where ``k`` is the index of ``name`` in
    :data:`ALL_CORRUPTIONS`, so each pair has its own independent, reproducible stream and
    regenerating one corruption does not change the others.

    Args:
        seed: the user's non-negative integer seed.
        name: a corruption name from :data:`ALL_CORRUPTIONS`.
        severity: 1..5.

    Returns:
        A fresh ``numpy.random.Generator`` (PCG64).
    """
    _check_seed(seed)
    _check_name(name)
    _check_severity(severity)
    return np.random.default_rng(np.random.SeedSequence([int(seed), ALL_CORRUPTIONS.index(name), int(severity)]))


def _as_rng(rng: Any) -> np.random.Generator:
    """Turn the ``rng`` argument into a NumPy Generator (never NumPy's global state)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, torch.Generator):
        # Seed a NumPy generator from one torch draw (the global torch RNG when rng is None).
        device = rng.device if rng is not None else None
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=device).item())
        return np.random.default_rng(seed)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        _check_seed(int(rng))
        return np.random.default_rng(int(rng))
    raise TypeError("rng must be a numpy.random.Generator, a torch.Generator, a non-negative int seed or None, "
                    f"got {type(rng).__name__}")


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or name not in ALL_CORRUPTIONS:
        raise ValueError(f"name must be one of {', '.join(ALL_CORRUPTIONS)}; got {name!r}")


def _check_severity(severity: Any) -> None:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int in 1..5, got {severity!r}")


def _check_frost_source(frost_source: Any) -> None:
    if frost_source not in _FROST_SOURCES:
        raise ValueError(f"frost_source must be one of {_FROST_SOURCES}, got {frost_source!r}")


def _to_uint8(y: np.ndarray) -> np.ndarray:
    """The script's final ``np.uint8`` cast of a result in [0, 255]: it floors, it does not round."""
    return y.astype(np.uint8)


def _clip01_255(y: np.ndarray) -> np.ndarray:
    return np.clip(y, 0, 1) * 255


# --------------------------------------------------------------------------------------------
# Helpers (spec section 1)
# --------------------------------------------------------------------------------------------
def disk(radius: float, alias_blur: float = 0.1) -> np.ndarray:
    """The defocus kernel: a normalised disk on a 17x17 grid, blurred by a 3x3 Gaussian.

    Args:
        radius: disk radius in pixels, in (0, 8].
        alias_blur: the sigma of the 3x3 ``cv2.GaussianBlur`` applied to the aliased disk.

    Returns:
        (17, 17) float32 kernel summing to 1 (up to float32 rounding).
    """
    if not (isinstance(radius, (int, float)) and 0 < radius <= 8):
        raise ValueError(f"radius must be a number in (0, 8], got {radius!r}")
    if not (isinstance(alias_blur, (int, float)) and alias_blur > 0):
        raise ValueError(f"alias_blur must be a positive number, got {alias_blur!r}")
    cv2 = _cv2()
    offsets = np.arange(-8, 8 + 1)
    xx, yy = np.meshgrid(offsets, offsets)
    aliased = np.asarray(xx**2 + yy**2 <= radius**2, dtype=np.float32)
    aliased /= np.sum(aliased)
    return cv2.GaussianBlur(aliased, ksize=(3, 3), sigmaX=alias_blur)


def zoom_geometry(size: int, zoom: float) -> tuple[int, int, int, int]:
    """The crop and resample sizes of :func:`clipped_zoom`.

    Args:
        size: the image side (32 for CIFAR).
        zoom: the zoom factor (>= 1).

    Returns:
        ``(ch, top, n, trim)``: the centred crop side ``ceil(size/zoom)`` and its offset, the
        resampled side ``round(ch*zoom)`` (Python round, as ``scipy.ndimage.zoom``) and the offset of
        the kept ``size`` x ``size`` window.
    """
    if zoom < 1:
        raise ValueError(f"zoom must be >= 1, got {zoom!r}")
    ch = int(np.ceil(size / zoom))
    top = (size - ch) // 2
    n = int(round(ch * zoom))
    trim = (n - size) // 2
    return ch, top, n, trim


@functools.lru_cache(maxsize=256)
def _linear_zoom_matrix(size: int, zoom: float) -> np.ndarray:
    """(size, ch) float64 matrix of ``scipy.ndimage.zoom(order=1, grid_mode=False)``, rows already trimmed."""
    ch, _, n, trim = zoom_geometry(size, zoom)
    if n < size:
        raise ValueError(f"zoom {zoom} of a {size}-pixel image resamples a {ch}-pixel crop to {n} < {size} pixels")
    ratio = (ch - 1) / (n - 1) if n > 1 else 1.0  # output o reads input o*(ch-1)/(n-1): corners line up
    coord = np.arange(n, dtype=np.float64) * ratio
    lo = np.clip(np.floor(coord).astype(np.int64), 0, ch - 1)
    frac = coord - lo
    hi = np.minimum(lo + 1, ch - 1)
    mat = np.zeros((n, ch), dtype=np.float64)
    np.add.at(mat, (np.arange(n), lo), 1.0 - frac)
    np.add.at(mat, (np.arange(n), hi), frac)
    mat = mat[trim:trim + size]
    mat.setflags(write=False)
    return mat


def clipped_zoom(images: np.ndarray, zoom: float) -> np.ndarray:
    """Zoom into the centre of square images and keep the original size (bilinear).

    Same result as the script's ``clipped_zoom`` (centred crop of ``ceil(H/z)``, then
    ``scipy.ndimage.zoom`` with order 1 and corner-aligned sampling, then a centred trim), computed
    as two small matrix products so a whole batch is zoomed at once.

    Args:
        images: (H, W, C) or (N, H, W, C) float array with H == W, or (N, H, W) for single-channel
            batches (the spatial axes are always the two before the last for 3-D input, so pass
            grey 2-D maps as (H, W, 1)).
        zoom: zoom factor >= 1.

    Returns:
        A float array of the input's shape and dtype.
    """
    arr = np.asarray(images)
    if arr.ndim not in (3, 4) or arr.shape[-3] != arr.shape[-2]:
        raise ValueError(f"images must be (H, W, C) or (N, H, W, C) with H == W, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"images must be a floating array, got dtype {arr.dtype}")
    size = arr.shape[-2]
    ch, top, _, _ = zoom_geometry(size, zoom)
    mat = _linear_zoom_matrix(size, float(zoom))
    crop = arr[..., top:top + ch, top:top + ch, :].astype(np.float64)
    crop = np.moveaxis(crop, -1, -3)  # (..., C, ch, ch)
    out = mat @ crop @ mat.T  # (..., C, size, size)
    return np.ascontiguousarray(np.moveaxis(out, -3, -1)).astype(arr.dtype)


def zoom_set(severity: int) -> np.ndarray:
    """The zoom factors of zoom_blur: ``np.arange(1, stop, 0.01)`` with the script's float rounding.

    Sizes 7, 12, 16, 21, 26 for severities 1..5 (1 and 2 include their stop value).
    """
    _check_severity(severity)
    stops = [1.06, 1.11, 1.16, 1.21, 1.26]
    return np.arange(1, stops[severity - 1], 0.01)


def plasma_fractal(size: int = 32, decay: float = 3.0, *, rng: Any = None, batch: int | None = None) -> np.ndarray:
    """Diamond-square plasma on a torus, normalised to [0, 1] (the fog texture).

    Args:
        size: side, a power of two.
        decay: the script's ``wibbledecay``: the noise amplitude ``w`` is divided by it per level.
        rng: a ``numpy.random.Generator``, ``torch.Generator``, int seed or None.
        batch: draw this many independent maps at once, returning (batch, size, size); None returns
            one (size, size) map.

    Returns:
        float64 map(s) with minimum 0 and maximum 1 (each map separately).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 2 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 2, got {size!r}")
    if not isinstance(decay, (int, float)) or decay <= 0:
        raise ValueError(f"decay must be a positive number, got {decay!r}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ValueError(f"batch must be a positive int or None, got {batch!r}")
    gen = _as_rng(rng)
    nb = 1 if batch is None else batch
    arr = np.empty((nb, size, size), dtype=np.float64)
    arr[:, 0, 0] = 0.0
    step = size
    wibble = 100.0

    def wibbled_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * gen.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = arr[:, 0:size:step, 0:size:step]
        # Squares: each centre is the mean of its 4 corners (rolls wrap around: a torus).
        acc = corners + np.roll(corners, -1, axis=1)
        acc = acc + np.roll(acc, -1, axis=2)
        arr[:, half:size:step, half:size:step] = wibbled_mean(acc)
        centres = arr[:, half:size:step, half:size:step]
        corners = arr[:, 0:size:step, 0:size:step]
        # Diamonds on corner rows: centres above/below + corners left/right.
        total = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        arr[:, 0:size:step, half:size:step] = wibbled_mean(total)
        # Diamonds on corner columns: centres left/right + corners above/below.
        total = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        arr[:, half:size:step, 0:size:step] = wibbled_mean(total)
        step //= 2
        wibble /= decay
    arr -= arr.min(axis=(1, 2), keepdims=True)
    arr /= arr.max(axis=(1, 2), keepdims=True)
    return arr[0] if batch is None else arr


def motion_blur_kernel(radius: float, sigma: float, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """ImageMagick's motion-blur kernel as a compact 2-D correlation kernel for ``cv2.filter2D``.

    ImageMagick ``MagickMotionBlurImage``: ``W = 2*ceil(radius)+1`` one-sided half-Gaussian weights
    ``k_i ∝ exp(-i²/2σ²)`` (i = 0..W-1), tap i at column offset ``ceil(i·cosθ - ½)`` and row offset
    ``ceil(i·sinθ - ½)``. Taps that land on the same offset add up.

    Args:
        radius: ImageMagick radius (> 0).
        sigma: ImageMagick sigma (> 0).
        angle: degrees; rows grow downward.

    Returns:
        ``(kernel, anchor)``: float32 kernel covering the taps' bounding box and the ``(x, y)`` anchor
        (the position of offset (0, 0)) to pass to ``cv2.filter2D``.
    """
    if not (isinstance(radius, (int, float)) and radius > 0):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    width = 2 * int(math.ceil(radius)) + 1
    i = np.arange(width, dtype=np.float64)
    weights = np.exp(-(i * i) / (2.0 * sigma * sigma))
    weights /= weights.sum()
    theta = math.radians(float(angle))
    u = np.ceil(i * math.cos(theta) - 0.5).astype(np.int64)  # columns
    v = np.ceil(i * math.sin(theta) - 0.5).astype(np.int64)  # rows
    kernel = np.zeros((v.max() - v.min() + 1, u.max() - u.min() + 1), dtype=np.float64)
    np.add.at(kernel, (v - v.min(), u - u.min()), weights)
    return kernel.astype(np.float32), (int(-u.min()), int(-v.min()))


def im_motion_blur(image: np.ndarray, radius: float, sigma: float, angle: float) -> np.ndarray:
    """ImageMagick-style motion blur of one uint8 image (H, W) or (H, W, C), edges replicated.

    ``out[y, x] = Σ_i k_i · in[clamp(y + v_i), clamp(x + u_i)]`` on the 8-bit values, rounded.
    Content streaks in direction ``angle + 180°``.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"image must be a uint8 (H, W) or (H, W, C) array, got {img.dtype} {img.shape}")
    cv2 = _cv2()
    kernel, anchor = motion_blur_kernel(radius, sigma, angle)
    return cv2.filter2D(img, -1, kernel, anchor=anchor, borderType=cv2.BORDER_REPLICATE)


def glass_shuffle(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """One pass of glass blur's local pixel moves, with the script's one-way-copy semantics.

    The script visits h = H-1..2 and w = W-1..2 (descending) and does
    ``x[h, w], x[h+dy, w+dx] = x[h+dy, w+dx], x[h, w]`` on NumPy views, which copies the source
    into (h, w) and leaves the source unchanged. With dx, dy in {-1, 0}, the source has not been
    visited yet, so the pass is ``out[h, w] = in[h+dy, w+dx]`` for every visited pixel at once.

    Args:
        images: (N, H, W, C) array.
        shifts: (N, H-2, W-2, 2) integer ``(dx, dy)`` in {-1, 0}, indexed in visiting order:
            ``shifts[n, i, j]`` is the draw for h = H-1-i, w = W-1-j.

    Returns:
        A new array like ``images``; rows and columns 0 and 1 are unchanged.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.shape[1] < 3 or x.shape[2] < 3:
        raise ValueError(f"images must be (N, H, W, C) with H, W >= 3, got shape {x.shape}")
    n, h, w, _ = x.shape
    s = np.asarray(shifts)
    if s.shape != (n, h - 2, w - 2, 2):
        raise ValueError(f"shifts must have shape {(n, h - 2, w - 2, 2)}, got {s.shape}")
    if s.size and (s.min() < -1 or s.max() > 0):
        raise ValueError("shifts must lie in {-1, 0} (the script's randint(-1, 1)); "
                         f"got values in [{s.min()}, {s.max()}]")
    s = s[:, ::-1, ::-1]  # to ascending h, w = 2..H-1
    rows = np.arange(2, h)[None, :, None] + s[..., 1]
    cols = np.arange(2, w)[None, None, :] + s[..., 0]
    out = x.copy()
    out[:, 2:, 2:] = x[np.arange(n)[:, None, None], rows, cols]
    return out


def pixelate_box(images: np.ndarray, out_size: int) -> np.ndarray:
    """PIL's ``resize(BOX)`` of uint8 images, batched: the same fixed-point arithmetic as Pillow.

    Pillow computes per output pixel the box weights over the inputs whose centres fall in the
    output's footprint, normalises them, turns them into 22-bit fixed point and rounds each pass
    (horizontal first, then vertical) to uint8.

    Args:
        images: (N, H, W, C) uint8 with H == W.
        out_size: the output side.

    Returns:
        (N, out_size, out_size, C) uint8.
    """
    x = np.asarray(images)
    if x.ndim != 4 or x.dtype != np.uint8 or x.shape[1] != x.shape[2]:
        raise ValueError(f"images must be (N, H, H, C) uint8, got {x.dtype} {x.shape}")
    # Integer arithmetic carried in float64 so BLAS does the products: every sum is an integer
    # below 2**53, and dividing by 2**22 then flooring is exact, so this is Pillow's ">> 22".
    mat = _pil_box_coeffs(x.shape[1], int(out_size)).astype(np.float64)
    half = float(1 << 21)
    scale = float(1 << 22)
    planes = np.moveaxis(x, -1, 1).astype(np.float64)  # (N, C, H, W)
    # Horizontal pass (along W), then vertical (along H), each rounded to uint8 like Pillow.
    tmp = np.clip(np.floor((planes @ mat.T + half) / scale), 0, 255)
    out = np.clip(np.floor((mat @ tmp + half) / scale), 0, 255)
    return np.ascontiguousarray(np.moveaxis(out, 1, -1)).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def _pil_box_coeffs(in_size: int, out_size: int) -> np.ndarray:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for the BOX filter, as an (out, in) matrix."""
    if out_size < 1 or in_size < 1:
        raise ValueError(f"sizes must be positive, got in_size={in_size}, out_size={out_size}")
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    mat = np.zeros((out_size, in_size), dtype=np.int64)
    for xx in range(out_size):  # tiny (<= 32 outputs), computed once per size pair
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ws = []
        for k in range(xmax):
            t = (k + xmin - center + 0.5) / filterscale
            ws.append(1.0 if -0.5 < t <= 0.5 else 0.0)
        total = sum(ws)
        for k, w in enumerate(ws):
            w = w / total if total != 0.0 else w
            mat[xx, xmin + k] = int(0.5 + w * (1 << 22)) if w >= 0 else int(-0.5 + w * (1 << 22))
    return mat


# --------------------------------------------------------------------------------------------
# Frost images
# --------------------------------------------------------------------------------------------
def _frost_package_paths() -> list[Path]:
    """Paths of frost1..5 inside the installed ``imagecorruptions`` package, without importing it."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("imagecorruptions")  # a top-level find_spec imports nothing
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates += [Path(loc) / "frost", Path(loc)]
    try:
        dist = importlib.metadata.distribution("imagecorruptions-imaug")
        candidates.append(Path(str(dist.locate_file("imagecorruptions/frost"))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for folder in candidates:
        paths = [folder / f for f in _FROST_FILES]
        if all(p.is_file() for p in paths):
            return paths
    raise ImportError("the frost corruption needs the frost photographs of the imagecorruptions-imaug wheel: "
                      f"{_FROST_MSG} (or pass frost_source='procedural' for procedural textures, a documented "
                      "deviation whose frost results are not comparable with published CIFAR-C numbers)")


@functools.lru_cache(maxsize=2)
def load_frost_images(source: str = "package") -> tuple[np.ndarray, ...]:
    """The 5 frost textures, ready to crop: RGB uint8 (H, W, 3), read-only.

    Args:
        source: ``"package"`` reads frost1.png..frost5.jpg from the installed
            ``imagecorruptions-imaug`` wheel (``pip install --no-deps imagecorruptions-imaug==1.1.5``),
            as 3-channel BGR (alpha dropped), resized x0.2 with ``cv2.resize`` INTER_LINEAR, then
            converted to RGB. Shapes (120, 180), (63, 112), (63, 112), (70, 105), (99, 132).
            ``"procedural"`` (a documented deviation) builds 5 seeded 128x128 textures: plasma plus
            thin bright streaks, lightly blurred, one tinted teal and four white-blue with the
            photographs' channel means and standard deviations.

    Raises:
        ImportError: for ``"package"`` when the wheel is not installed.
    """
    _check_frost_source(source)
    cv2 = _cv2()
    if source == "procedural":
        return _procedural_frost(cv2)
    out = []
    for path in _frost_package_paths():
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"could not decode the frost image {path}")
        small = cv2.resize(bgr, (0, 0), fx=0.2, fy=0.2)  # INTER_LINEAR; exactly 1/5 is decimation
        rgb = np.ascontiguousarray(small[..., ::-1])
        rgb.setflags(write=False)
        out.append(rgb)
    return tuple(out)


def _procedural_frost(cv2: Any) -> tuple[np.ndarray, ...]:
    gen = np.random.default_rng(np.random.SeedSequence([2022, 5, 128]))  # fixed: same textures everywhere
    size = 128
    textures = []
    for k in range(5):
        base = plasma_fractal(size, 2.0, rng=gen)
        streaks = np.zeros((size, size), dtype=np.float32)
        count = 600
        length = gen.uniform(2, 10, count)
        angle = gen.uniform(0, 2 * np.pi, count)
        x0 = gen.uniform(0, size, count)
        y0 = gen.uniform(0, size, count)
        level = gen.uniform(0.5, 1.0, count)
        x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        for j in range(count):  # drawing primitives: one cv2 call per streak, done once and cached
            cv2.line(streaks, (int(x0[j]), int(y0[j])), (int(x1[j]), int(y1[j])), float(level[j]), 1, cv2.LINE_AA)
        tex = cv2.GaussianBlur((0.5 * base + streaks).astype(np.float32), (0, 0), 0.7)
        tex = (tex - tex.mean()) / tex.std()
        mean, std = _FROST_TEAL if k == 0 else _FROST_WHITE
        rgb = np.stack([mean[c] + std[c] * tex for c in range(3)], axis=-1)
        arr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        arr.setflags(write=False)
        textures.append(arr)
    return tuple(textures)


# --------------------------------------------------------------------------------------------
# The operations (spec section 3). Each takes (N, 32, 32, 3) uint8, severity, generator and
# returns the float result in [0, 255] (or uint8 for the ones that are already 8-bit).
# --------------------------------------------------------------------------------------------
def _gaussian_nearest(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage ``gaussian`` on the spatial axes of (N, H, W[, C]): mode nearest, truncate 4."""
    ndimage = _ndimage()
    sig = [0.0, sigma, sigma] + [0.0] * (x.ndim - 3)
    return ndimage.gaussian_filter(x, sigma=sig, mode="nearest", truncate=4.0)


def _gaussian_noise(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    c = _GAUSSIAN_NOISE[s - 1]
    x = x8 / 255.0
    return _clip01_255(x + gen.normal(size=x.shape, scale=c))


def _shot_noise(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    c = _SHOT_NOISE[s - 1]
    x = x8 / 255.0
    return _clip01_255(gen.poisson(x * c) / c)


def _impulse_noise(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    c = _IMPULSE_NOISE[s - 1]
    x = x8 / 255.0
    hit = gen.random(x.shape) < c  # every value, channels independently
    salt = gen.random(x.shape) < 0.5
    out = x.copy()
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return _clip01_255(out)


def _speckle_noise(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    c = _SPECKLE_NOISE[s - 1]
    x = x8 / 255.0
    return _clip01_255(x + x * gen.normal(size=x.shape, scale=c))


def _gaussian_blur(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    return _clip01_255(_gaussian_nearest(x8 / 255.0, _GAUSSIAN_BLUR[s - 1]))


def _defocus_blur(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    ndimage = _ndimage()
    r, a = _DEFOCUS_BLUR[s - 1]
    kernel = disk(r, a).astype(np.float64)  # the script's float32 kernel, applied to float64 images
    # Crop the zero border symmetrically (same correlation, centred anchor), then correlate the whole
    # batch at once; mode "mirror" is OpenCV's BORDER_REFLECT_101.
    nz = np.nonzero(kernel)
    half = int(max(np.abs(nz[0] - 8).max(), np.abs(nz[1] - 8).max()))
    kernel = kernel[8 - half:9 + half, 8 - half:9 + half]
    out = ndimage.correlate(x8 / 255.0, kernel[None, :, :, None], mode="mirror")
    return _clip01_255(out)


def _glass_blur(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    sigma, delta, iters = _GLASS_BLUR[s - 1]
    x = (_gaussian_nearest(x8 / 255.0, sigma) * 255).astype(np.uint8)
    n, h, w, _ = x.shape
    # randint(-delta, delta) per visited pixel, (dx, dy) in that order; delta is 1 at every severity,
    # which is what makes the vectorised one-way copy exact (see glass_shuffle).
    shifts = gen.integers(-delta, delta, size=(n, iters, h - 2, w - 2, 2))
    for it in range(iters):
        x = glass_shuffle(x, shifts[:, it])
    return _clip01_255(_gaussian_nearest(x / 255.0, sigma))


def _motion_blur(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    radius, sigma = _MOTION_BLUR[s - 1]
    angles = gen.uniform(-45, 45, size=len(x8))
    # One kernel per image (its own angle): an inherently per-image filter.
    return np.stack([im_motion_blur(img, radius, sigma, a) for img, a in zip(x8, angles)])


@functools.lru_cache(maxsize=5)
def _zoom_blur_operator(severity: int) -> np.ndarray:
    """(1024, 1024) float64 matrix of zoom_blur on one 32x32 channel: (x + Σ_z clipped_zoom(x, z)) / (|Z|+1).

    Each clipped zoom is ``B_z X B_z^T`` with ``B_z`` (32, 32) (crop and bilinear resample folded in), so
    the whole blur is one linear map of the flattened channel: one matrix product for the whole batch.
    """
    zooms = zoom_set(severity)
    op = np.eye(IMAGE_SIZE * IMAGE_SIZE)
    for z in zooms:
        ch, top, _, _ = zoom_geometry(IMAGE_SIZE, float(z))
        b = np.zeros((IMAGE_SIZE, IMAGE_SIZE))
        b[:, top:top + ch] = _linear_zoom_matrix(IMAGE_SIZE, float(z))
        op += np.kron(b, b)
    op /= len(zooms) + 1
    op.setflags(write=False)
    return op


def _zoom_blur(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    # The script sums float32 zooms of float32 x; here the same linear map runs in float64.
    n = len(x8)
    planes = (x8.astype(np.float32) / np.float32(255.0)).transpose(0, 3, 1, 2).reshape(n * 3, IMAGE_SIZE * IMAGE_SIZE)
    out = planes.astype(np.float64) @ _zoom_blur_operator(s).T
    return _clip01_255(out.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1))


def _snow(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    mu, sd, zoom, thr, radius, sigma, beta = _SNOW[s - 1]
    n = len(x8)
    x = x8.astype(np.float32) / 255.0
    layer = gen.normal(size=(n, IMAGE_SIZE, IMAGE_SIZE, 1), loc=mu, scale=sd)
    layer = clipped_zoom(layer, zoom)[..., 0]
    layer[layer < thr] = 0
    layer8 = (np.clip(layer, 0, 1) * 255).astype(np.uint8)
    angles = gen.uniform(-135, -45, size=n)
    blurred = np.stack([im_motion_blur(m, radius, sigma, a) for m, a in zip(layer8, angles)]) / 255.0
    blurred = blurred[..., None]
    grey = (x[..., 0] * np.float32(0.299) + x[..., 1] * np.float32(0.587) + x[..., 2] * np.float32(0.114))[..., None]
    x = beta * x + (1 - beta) * np.maximum(x, grey * 1.5 + 0.5)
    return _clip01_255(x + blurred + blurred[:, ::-1, ::-1])


def _frost(x8: np.ndarray, s: int, gen: np.random.Generator, *, frost_source: str = "package", **_: Any) -> np.ndarray:
    a, b = _FROST[s - 1]
    textures = load_frost_images(frost_source)
    n = len(x8)
    pick = gen.integers(0, len(textures), size=n)
    heights = np.array([t.shape[0] for t in textures])[pick]
    widths = np.array([t.shape[1] for t in textures])[pick]
    r0 = gen.integers(0, heights - IMAGE_SIZE)  # U{0 .. H-33}, as randint(0, H-32)
    c0 = gen.integers(0, widths - IMAGE_SIZE)
    frost = np.empty(x8.shape, dtype=np.uint8)
    ar = np.arange(IMAGE_SIZE)
    for k, tex in enumerate(textures):  # at most 5 groups; each group is one fancy-indexing gather
        sel = np.nonzero(pick == k)[0]
        if sel.size:
            frost[sel] = tex[(r0[sel][:, None] + ar)[:, :, None], (c0[sel][:, None] + ar)[:, None, :]]
    return np.clip(a * x8.astype(np.float64) + b * frost, 0, 255)


def _fog(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    amount, decay = _FOG[s - 1]
    x = x8 / 255.0
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + amount * plasma_fractal(IMAGE_SIZE, decay, rng=gen, batch=len(x8))[..., None]
    return _clip01_255(x * peak / (peak + amount))


def _rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """skimage ``rgb2hsv`` on (..., 3) floats, with the same formulas (and tie order: blue > green > red)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    zero = delta == 0
    safe = np.where(zero, 1.0, delta)
    hue = np.where(r == v, (g - b) / safe, 0.0)
    hue = np.where(g == v, 2.0 + (b - r) / safe, hue)
    hue = np.where(b == v, 4.0 + (r - g) / safe, hue)
    hue = (hue / 6.0) % 1.0
    hue[zero] = 0.0
    sat = np.where(zero, 0.0, delta / np.where(v == 0, 1.0, v))
    return np.stack([hue, sat, v], axis=-1)


def _hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """skimage ``hsv2rgb`` on (..., 3) floats, same formulas."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    hi = np.floor(h * 6)
    f = h * 6 - hi
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    sector = hi.astype(np.uint8) % 6
    conds = [sector == k for k in range(6)]
    red = np.select(conds, [v, q, p, p, t, v])
    green = np.select(conds, [t, v, v, q, p, p])
    blue = np.select(conds, [p, p, t, v, v, q])
    return np.stack([red, green, blue], axis=-1)


def _brightness(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    hsv = _rgb2hsv(x8 / 255.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + _BRIGHTNESS[s - 1], 0, 1)
    return _clip01_255(_hsv2rgb(hsv))


def _saturate(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    mul, add = _SATURATE[s - 1]
    hsv = _rgb2hsv(x8 / 255.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * mul + add, 0, 1)
    return _clip01_255(_hsv2rgb(hsv))


def _contrast(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    c = _CONTRAST[s - 1]
    x = x8 / 255.0
    means = x.mean(axis=(1, 2), keepdims=True)
    return _clip01_255((x - means) * c + means)


def _elastic_transform(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    cv2 = _cv2()
    ndimage = _ndimage()
    alpha, sigma, beta = _ELASTIC[s - 1]
    n, h, w, ch = x8.shape
    x = x8.astype(np.float32) / 255.0
    centre = np.float32(IMAGE_SIZE) // 2
    side = IMAGE_SIZE // 3
    pts1 = np.float32([[centre + side, centre + side], [centre + side, centre - side],
                       [centre - side, centre - side]])
    pts2 = pts1[None] + gen.uniform(-beta, beta, size=(n, 3, 2)).astype(np.float32)
    # One affine matrix per image; cv2.warpAffine's fixed-point bilinear is kept (per image).
    warped = np.stack([
        cv2.warpAffine(img, cv2.getAffineTransform(pts1, p2), (w, h), borderMode=cv2.BORDER_REFLECT_101)
        for img, p2 in zip(x, pts2)])
    noise_x = gen.uniform(-1, 1, size=(n, h, w))
    noise_y = gen.uniform(-1, 1, size=(n, h, w))
    sig = (0.0, sigma, sigma)
    dx = (ndimage.gaussian_filter(noise_x, sigma=sig, mode="reflect", truncate=3.0) * alpha).astype(np.float32)
    dy = (ndimage.gaussian_filter(noise_y, sigma=sig, mode="reflect", truncate=3.0) * alpha).astype(np.float32)
    rows = np.arange(h, dtype=np.float32)[None, :, None] + dy  # float32 like the script's y + dy
    cols = np.arange(w, dtype=np.float32)[None, None, :] + dx
    return _clip01_255(_bilinear_reflect(warped, rows, cols))


def _reflect_index(idx: np.ndarray, size: int) -> np.ndarray:
    """Half-sample symmetric extension (d c b a | a b c d | d c b a) of integer indices."""
    idx = np.mod(idx, 2 * size)
    return np.where(idx >= size, 2 * size - 1 - idx, idx)


def _bilinear_reflect(images: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(order=1, mode="reflect")`` per image, all channels, batched.

    Args:
        images: (N, H, W, C) float.
        rows, cols: (N, H, W) sampling coordinates (row, column) for every output pixel.

    Returns:
        (N, H, W, C) in the dtype of ``images``.
    """
    n, h, w, _ = images.shape
    r = rows.astype(np.float64)
    c = cols.astype(np.float64)
    r0 = np.floor(r)
    c0 = np.floor(c)
    fr = (r - r0)[..., None]
    fc = (c - c0)[..., None]
    r0 = r0.astype(np.int64)
    c0 = c0.astype(np.int64)
    ra, rb = _reflect_index(r0, h), _reflect_index(r0 + 1, h)
    ca, cb = _reflect_index(c0, w), _reflect_index(c0 + 1, w)
    bi = np.arange(n)[:, None, None]
    img = images.astype(np.float64)
    top = img[bi, ra, ca] * (1 - fc) + img[bi, ra, cb] * fc
    bottom = img[bi, rb, ca] * (1 - fc) + img[bi, rb, cb] * fc
    return (top * (1 - fr) + bottom * fr).astype(images.dtype)


def _pixelate(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    small = int(IMAGE_SIZE * _PIXELATE[s - 1])
    return pixelate_box(pixelate_box(x8, small), IMAGE_SIZE)


def _jpeg_compression(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    image_mod = _pil_image()
    quality = _JPEG[s - 1]
    out = np.empty_like(x8)
    for i, img in enumerate(x8):  # the codec works on one image at a time
        buf = io.BytesIO()
        image_mod.fromarray(img).save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with image_mod.open(buf) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def _spatter(x8: np.ndarray, s: int, gen: np.random.Generator, **_: Any) -> np.ndarray:
    cv2 = _cv2()
    mu, sd, sigma, thr, k, mud = _SPATTER[s - 1]
    n = len(x8)
    x = x8.astype(np.float32) / 255.0
    liquid = _gaussian_nearest(gen.normal(size=(n, IMAGE_SIZE, IMAGE_SIZE), loc=mu, scale=sd), sigma)
    liquid[liquid < thr] = 0
    if mud == 0:
        # Water. Clipped before the uint8 cast (the spec's fix: the script wraps values above 1).
        liquid8 = (np.clip(liquid, 0, 1) * 255).astype(np.uint8)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)
        dist = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
        for i in range(n):  # Canny, the distance transform and equalizeHist are per-image operations
            d = cv2.distanceTransform(255 - cv2.Canny(liquid8[i], 50, 150), cv2.DIST_L2, 5)
            _, d = cv2.threshold(d, 20, 20, cv2.THRESH_TRUNC)
            d = cv2.equalizeHist(cv2.blur(d, (3, 3)).astype(np.uint8))
            d = cv2.filter2D(d, cv2.CV_8U, ker)
            dist[i] = cv2.blur(d, (3, 3)).astype(np.float32)
        m = liquid8.astype(np.float32) * dist
        peak = m.max(axis=(1, 2), keepdims=True)
        m = np.divide(m, peak, out=np.zeros_like(m), where=peak > 0) * k
        colour = np.array([175, 238, 238], dtype=np.float32) / 255.0
        return _clip01_255(x + m[..., None] * colour)
    # Mud.
    m = _gaussian_nearest((liquid > thr).astype(np.float32), k)
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20], dtype=np.float32) / 255.0
    return _clip01_255(x * (1 - m[..., None]) + m[..., None] * colour)


_OPS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian_noise": _gaussian_noise, "shot_noise": _shot_noise, "impulse_noise": _impulse_noise,
    "defocus_blur": _defocus_blur, "glass_blur": _glass_blur, "motion_blur": _motion_blur,
    "zoom_blur": _zoom_blur, "snow": _snow, "frost": _frost, "fog": _fog, "brightness": _brightness,
    "contrast": _contrast, "elastic_transform": _elastic_transform, "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression, "speckle_noise": _speckle_noise, "gaussian_blur": _gaussian_blur,
    "spatter": _spatter, "saturate": _saturate,
}


def _as_uint8_images(images: Any, name: str = "images") -> tuple[np.ndarray, bool]:
    """Validate (N, 32, 32, 3) or (32, 32, 3) uint8 (NumPy or a CPU torch tensor); return (N, ...) and single."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a uint8 numpy array or torch tensor, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (values 0..255), got {images.dtype}")
    single = images.ndim == 3
    batch = images[None] if single else images
    if batch.ndim != 4 or batch.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3) or batch.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, 32, 32, 3) or (32, 32, 3) (CIFAR, channels last), "
                         f"got {images.shape}")
    return np.ascontiguousarray(batch), single


def corrupt(images: Any, name: str, severity: int, *, rng: Any = None, frost_source: str = "package") -> Any:
    """Apply one CIFAR-C corruption at one severity.

    Args:
        images: uint8 (N, 32, 32, 3) or (32, 32, 3), RGB, channels last (NumPy array or CPU tensor).
        name: one of :data:`ALL_CORRUPTIONS`.
        severity: 1..5.
        rng: a ``numpy.random.Generator`` (used as is), a ``torch.Generator`` or None (a NumPy
            generator is seeded from one torch draw; None uses torch's global generator), or an int
            seed. The same generator state gives the same result for the same batch.
        frost_source: ``"package"`` (default: the photographs of the imagecorruptions-imaug wheel) or
            ``"procedural"`` (a documented deviation; see :func:`load_frost_images`).

    Returns:
        The corrupted images, uint8, same shape and kind (NumPy array or tensor) as ``images``.
    """
    batch, single = _as_uint8_images(images)
    _check_name(name)
    _check_severity(severity)
    _check_frost_source(frost_source)
    gen = _as_rng(rng)
    out = _OPS[name](batch, int(severity), gen, frost_source=frost_source)
    out = out if out.dtype == np.uint8 else _to_uint8(out)
    out = out[0] if single else out
    return torch.from_numpy(np.ascontiguousarray(out)) if isinstance(images, torch.Tensor) else out


# --------------------------------------------------------------------------------------------
# The generation driver and the release layout (spec section 0)
# --------------------------------------------------------------------------------------------
_META_FILE = "sagemix_corruptions.json"


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of a readable .npy file, or None when it is unreadable / truncated."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return None
    return tuple(arr.shape), arr.dtype


def _check_labels(labels: Any, n: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"labels must be a 1-D sequence of {n} class indices (one per image), got shape {lab.shape}")
    if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0):
        raise ValueError(f"labels must be non-negative integers, got dtype {lab.dtype}"
                         + (f" and minimum {lab.min()}" if np.issubdtype(lab.dtype, np.integer) else ""))
    return lab.astype(np.int64)


def _check_names(corruptions: Iterable[str] | None, include_extra: bool) -> list[str]:
    if corruptions is None:
        return list(CORRUPTIONS) + (list(EXTRA_CORRUPTIONS) if include_extra else [])
    if isinstance(corruptions, str):
        raise TypeError(f"corruptions must be a sequence of names, not a single string ({corruptions!r}); "
                        f"wrap it in a list")
    names = list(corruptions)
    for nm in names:
        if nm not in ALL_CORRUPTIONS:
            raise ValueError(f"corruptions must hold names from {', '.join(ALL_CORRUPTIONS)}; got {nm!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"corruptions must not repeat a name, got {names}")
    if include_extra:  # as evaluate_corruptions does: the extras are added to an explicit list too
        names += [nm for nm in EXTRA_CORRUPTIONS if nm not in names]
    return names


def generate_corrupted(images: Any, labels: Any, out_dir: str | os.PathLike, *,
                       corruptions: Sequence[str] | None = None, include_extra: bool = False, seed: int = 0,
                       progress: bool = True, frost_source: str = "package") -> dict[str, Path]:
    """Write a CIFAR-C style folder: ``<name>.npy`` per corruption and ``labels.npy``.

    Layout of the official CIFAR-10-C / CIFAR-100-C release: ``<name>.npy`` is (5N, 32, 32, 3)
    uint8 whose row ``(s-1)*N + i`` is severity s of image i; ``labels.npy`` is the N labels
    repeated 5 times, uint8 (int64 when a label exceeds 255). Every file is written atomically
    (temp file + ``os.replace``); files already complete are skipped, so an interrupted run
    resumes. ``sagemix_corruptions.json`` records the seed, the frost source and digests of the
    inputs; resuming with different inputs or seed raises instead of mixing two sets.

    Args:
        images: uint8 (N, 32, 32, 3), in the order of the test set (torchvision ``.data``).
        labels: (N,) class indices.
        out_dir: the output folder (created).
        corruptions: names to generate; default the 15 benchmark ones.
        include_extra: also generate the 4 :data:`EXTRA_CORRUPTIONS` (after ``corruptions``).
        seed: one generator per (corruption, severity) comes from it (:func:`corruption_rng`).
        progress: show a tqdm bar.
        frost_source: see :func:`corrupt`.

    Returns:
        ``{name: path}`` for every requested corruption plus ``"labels"``.
    """
    batch, single = _as_uint8_images(images)
    if single:
        raise ValueError(f"images must be a batch (N, 32, 32, 3), got shape {batch.shape[1:]}")
    n = len(batch)
    lab = _check_labels(labels, n)
    names = _check_names(corruptions, include_extra)
    _check_seed(seed)
    _check_frost_source(frost_source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    meta = {
        "format": "CIFAR-C layout: <name>.npy (5N,32,32,3) uint8, row (s-1)*N+i = severity s of image i",
        "seed": int(seed), "num_images": n, "frost_source": frost_source,
        "images_sha256": hashlib.sha256(batch.tobytes()).hexdigest(),
        "labels_sha256": hashlib.sha256(lab.tobytes()).hexdigest(),
    }
    meta_path = out / _META_FILE
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        diff = [k for k in ("seed", "num_images", "frost_source", "images_sha256", "labels_sha256")
                if old.get(k) != meta[k]]
        if diff:
            raise ValueError(f"out_dir {str(out)!r} holds corruptions generated with a different "
                             f"{', '.join(diff)}; use a new folder or delete it")
    else:
        atomic_write_json(meta_path, meta)

    label_dtype = np.uint8 if (lab.size == 0 or lab.max() <= 255) else np.int64
    labels5 = np.tile(lab, 5).astype(label_dtype)
    paths: dict[str, Path] = {"labels": out / "labels.npy"}
    if (out / "labels.npy").exists():
        try:
            old_labels = np.load(out / "labels.npy")
        except (OSError, ValueError, EOFError):
            old_labels = None
        if old_labels is None or not np.array_equal(old_labels, labels5):
            atomic_write(out / "labels.npy", lambda f: np.save(f, labels5))
    else:
        atomic_write(out / "labels.npy", lambda f: np.save(f, labels5))

    todo = []
    for nm in names:
        paths[nm] = out / f"{nm}.npy"
        if _npy_header(paths[nm]) != ((5 * n, IMAGE_SIZE, IMAGE_SIZE, 3), np.dtype(np.uint8)):
            todo.append(nm)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo) * 5, desc="corruptions", unit="sev")
    try:
        for nm in todo:
            result = np.empty((5 * n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            for s in SEVERITIES:
                gen = corruption_rng(seed, nm, s)
                for i in range(0, n, _CHUNK):  # one generator per severity, consumed chunk after chunk
                    chunk = batch[i:i + _CHUNK]
                    res = _OPS[nm](chunk, s, gen, frost_source=frost_source)
                    result[(s - 1) * n + i:(s - 1) * n + i + len(chunk)] = res if res.dtype == np.uint8 else _to_uint8(res)
                if bar is not None:
                    bar.set_postfix_str(f"{nm} s{s}")
                    bar.update(1)
            atomic_write(paths[nm], lambda f: np.save(f, result))
    finally:
        if bar is not None:
            bar.close()
    return paths


def load_corrupted(c_dir: str | os.PathLike, name: str, *, severity: int | None = None,
                   mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read one corruption of a CIFAR-10-C / CIFAR-100-C folder (official release or generated).

    Args:
        c_dir: the folder holding ``<name>.npy`` and ``labels.npy``.
        name: one of :data:`ALL_CORRUPTIONS`.
        severity: None for all 5 stacked (5N rows), or 1..5 for that severity's N rows.
        mmap: memory-map the images instead of reading them (the official files are 150 MB each).

    Returns:
        ``(images, labels)``: uint8 (M, H, W, 3) and int64 (M,).

    Raises:
        FileNotFoundError: naming the expected file when the folder or a file is missing.
        ValueError: when a file has the wrong shape or dtype.
    """
    _check_name(name)
    if severity is not None:
        _check_severity(severity)
    folder = Path(c_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"c_dir {str(folder)!r} is not a folder; expected a CIFAR-10-C / CIFAR-100-C "
                                f"folder holding <corruption>.npy files and labels.npy")
    img_path, lab_path = folder / f"{name}.npy", folder / "labels.npy"
    for p in (img_path, lab_path):
        if not p.is_file():
            present = sorted(q.stem for q in folder.glob("*.npy") if q.stem in ALL_CORRUPTIONS)
            raise FileNotFoundError(f"expected {p.name} in {str(folder)!r} (CIFAR-C layout: <corruption>.npy and "
                                    f"labels.npy); corruptions present: {present or 'none'}")
    try:
        imgs = np.load(img_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        labs = np.load(lab_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"could not read {img_path.name} / labels.npy in {str(folder)!r} as .npy arrays: {e}") from e
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8 or imgs.shape[0] % 5:
        raise ValueError(f"{img_path} must be uint8 (5N, H, W, 3) (5 severities stacked), "
                         f"got {imgs.dtype} {imgs.shape}")
    if labs.ndim != 1 or not np.issubdtype(labs.dtype, np.integer):
        raise ValueError(f"{lab_path} must be a 1-D integer array, got {labs.dtype} {labs.shape}")
    if labs.shape[0] != imgs.shape[0]:
        raise ValueError(f"{lab_path} has {labs.shape[0]} labels but {img_path.name} has {imgs.shape[0]} images")
    labs = labs.astype(np.int64)
    if severity is not None:
        n = imgs.shape[0] // 5
        imgs, labs = imgs[(severity - 1) * n:severity * n], labs[(severity - 1) * n:severity * n]
    return imgs, labs
