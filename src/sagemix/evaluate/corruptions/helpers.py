"""The CIFAR-C helper operations (docs/CORRUPTIONS.md §1): disk kernels, zooms, plasma fractal, motion blur,
glass shuffle and Pillow's BOX resize, batched in NumPy."""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...checks import is_int
from .common import _as_rng, _check_severity, _cv2

__all__ = ["disk", "zoom_geometry", "clipped_zoom", "zoom_set", "plasma_fractal", "motion_blur_kernel",
           "im_motion_blur", "glass_shuffle", "pixelate_box"]

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
    if not is_int(size) or size < 2 or size & (size - 1):
        raise ValueError(f"size must be a power of two >= 2, got {size!r}")
    if not isinstance(decay, (int, float)) or decay <= 0:
        raise ValueError(f"decay must be a positive number, got {decay!r}")
    if batch is not None and (not is_int(batch) or batch < 1):
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
