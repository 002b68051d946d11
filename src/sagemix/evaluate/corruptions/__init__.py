"""CIFAR-10-C / CIFAR-100-C corruptions, reimplemented from the published recipe.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261. The SAGE paper (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) reports accuracy on CIFAR-10-C / CIFAR-100-C.

This module reimplements ``make_cifar_c.py`` (hendrycks/robustness, ``ImageNet-C/create_c/``) from
``docs/CORRUPTIONS.md``: 15 benchmark corruptions (:data:`CORRUPTIONS`) and 4 extras
(:data:`EXTRA_CORRUPTIONS`), each at severities 1..5, on 32x32 RGB uint8 images, with the script's
constants. Every operation produces a float result in [0, 255] that is then **floored** to uint8
(``np.uint8`` truncation), as the script does. :func:`generate_corrupted` writes the layout of the
official release and :func:`load_corrupted` reads it (or the release itself).

Randomness: the script used NumPy's unseeded global RNG, so the release cannot be reproduced bit for
bit; the distributions are matched. Here every draw comes from a ``numpy.random.Generator`` that the
caller passes (or that is seeded from a torch draw). :func:`generate_corrupted` uses one generator
per (corruption, severity), seeded from the user's seed (:func:`corruption_rng`), consumed in chunks
of 1000 images. Within a call each random quantity is drawn for the whole batch at once, in image
order, and the quantities come in the script's order (for example snow: all snow layers, then all blur
angles); so the same seed gives the same images for the same input batch.

Implementation choices that are not options (each matches the script up to float rounding):

* ImageMagick's motion blur (Wand) is the same maths in OpenCV (:func:`im_motion_blur`: the
  one-sided half-Gaussian kernel, colliding taps added, edges replicated); expect up to +-1 LSB
  against ImageMagick's 16-bit internals.
* zoom_blur sums its zooms in float64 as one linear map (the script sums float32 arrays): +-1 at
  the floor boundary on about 0.01% of the values.
* defocus_blur correlates with ``scipy.ndimage.correlate`` (mode ``mirror`` = OpenCV's
  BORDER_REFLECT_101) instead of per-channel ``filter2D``; elastic_transform's final sampling is a
  batched bilinear gather equal to ``map_coordinates(order=1, mode="reflect")`` (tested); pixelate
  reproduces Pillow's BOX resize in batched fixed-point arithmetic (tested equal to Pillow).
* Spatter (an extra) clips the liquid layer to [0, 1] before its uint8 cast, (docs/CORRUPTIONS.md §3)
  (the script lets values above 1 wrap around).

Option that deviates from the script, off by default: ``frost_source="procedural"`` uses 5 procedural
frost textures instead of the photographs shipped by ``imagecorruptions-imaug`` (frost results are
then not comparable with published CIFAR-C numbers).

The package: :mod:`.constants` (names, severities, the script's parameters), :mod:`.common`
(optional dependencies, randomness, checks), :mod:`.helpers` (docs/CORRUPTIONS.md §1), :mod:`.frost` (the
frost textures), :mod:`.ops` (the operations and :func:`corrupt`), :mod:`.release` (generating and
reading the release layout).

Example:
    >>> import numpy as np
    >>> from sagemix.evaluate.corruptions import corrupt
    >>> x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    >>> y = corrupt(x, "gaussian_noise", 3, rng=np.random.default_rng(1))
    >>> y.shape, y.dtype
    ((4, 32, 32, 3), dtype('uint8'))
"""
from __future__ import annotations

from .common import corruption_rng
from .constants import ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, IMAGE_SIZE, SEVERITIES
from .frost import load_frost_images
from .helpers import (clipped_zoom, disk, glass_shuffle, im_motion_blur, motion_blur_kernel, pixelate_box,
                      plasma_fractal, zoom_geometry, zoom_set)
from .ops import corrupt
from .release import generate_corrupted, load_corrupted

__all__ = [
    "CORRUPTIONS", "EXTRA_CORRUPTIONS", "ALL_CORRUPTIONS", "SEVERITIES", "IMAGE_SIZE",
    "corrupt", "corruption_rng", "generate_corrupted", "load_corrupted",
    "disk", "clipped_zoom", "zoom_geometry", "zoom_set", "plasma_fractal", "motion_blur_kernel",
    "im_motion_blur", "glass_shuffle", "load_frost_images", "pixelate_box",
]
