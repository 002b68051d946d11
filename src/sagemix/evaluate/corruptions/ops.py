"""The 19 CIFAR-C operations (docs/CORRUPTIONS.md §3) and :func:`corrupt`, which applies one at one severity."""
from __future__ import annotations

import functools
import io
from typing import Any, Callable

import numpy as np
import torch

from .constants import (IMAGE_SIZE, _BRIGHTNESS, _CONTRAST, _DEFOCUS_BLUR, _ELASTIC, _FOG, _FROST,
                        _GAUSSIAN_BLUR, _GAUSSIAN_NOISE, _GLASS_BLUR, _IMPULSE_NOISE, _JPEG, _MOTION_BLUR, _PIXELATE,
                        _SATURATE, _SHOT_NOISE, _SNOW, _SPATTER, _SPECKLE_NOISE)
from .common import (_as_rng, _check_frost_source, _check_name, _check_severity, _clip01_255, _cv2, _ndimage,
                     _pil_image, _to_uint8)
from .helpers import (clipped_zoom, disk, glass_shuffle, im_motion_blur, pixelate_box, plasma_fractal, zoom_geometry,
                      zoom_set, _linear_zoom_matrix)
from .frost import load_frost_images

__all__ = ["corrupt"]

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
        # Water. Clipped before the uint8 cast (a documented fix: the script wraps values above 1).
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
