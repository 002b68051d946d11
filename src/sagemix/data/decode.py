"""Decoding one image file to 8-bit RGB, with every PIL mode converted correctly and clear errors.

All image readers of :mod:`sagemix.data` (the in-memory image folder, mini-ImageNet and the
streaming image folder) open files through :func:`open_rgb`, so a file decodes to the same pixels
whichever path reads it.

Mode conversion (PIL's ``convert("RGB")`` clips 16-bit values to 255, which turns most of a 16-bit
image white):

- ``I;16`` (and its byte-order variants) and ``I`` (the 32-bit integer mode PIL uses for 16-bit
  greyscale files): treated as 16-bit data, scaled by 1/257 (65535 -> 255) and rounded, not clipped;
- ``F`` (32-bit float): taken on the 0-255 scale, as PIL does, clipped to [0, 255] and rounded;
- ``1``, ``L``, ``P``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``, ``RGB``: PIL's conversion;
- ``LA``, ``RGBA``, ``PA`` and palette images with transparency: the alpha channel is dropped (the
  colour of transparent pixels is kept), as torchvision's ``ImageFolder`` loader does.

A file that is not an image, or a damaged one (e.g. a truncated PNG), raises :class:`ImageDecodeError`
(a ``ValueError``) whose one-line message names the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["open_rgb", "to_rgb", "ImageDecodeError", "pil"]

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageDecodeError(ValueError):
    """An image file could not be decoded (not an image, truncated, or damaged)."""


def pil() -> Any:
    """The ``PIL.Image`` module, or an ImportError saying how to install it."""
    try:
        from PIL import Image
    except ImportError as e:  # pillow ships with torchvision, but say which extra provides it
        raise ImportError('image folders need pillow: pip install "sagemix[offline]" (or pip install pillow)') from e
    return Image


def to_rgb(im: Any) -> Any:
    """Convert a PIL image of any mode to an 8-bit ``RGB`` PIL image (see the module docstring)."""
    image_mod = pil()
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in _SIXTEEN_BIT or mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if mode != "F":
            arr = arr / 257.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return image_mod.fromarray(np.repeat(arr[..., None], 3, axis=2), "RGB")
    if mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # the documented path for palette transparency (no PIL warning)
    return im.convert("RGB")


def open_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None) -> Any:
    """Open ``path`` as an 8-bit RGB PIL image, optionally resized (bilinear) to ``size`` = (H, W).

    Raises:
        FileNotFoundError: the file does not exist.
        ImageDecodeError: the file is not a readable image; the message names the file.
    """
    image_mod = pil()
    try:
        with image_mod.open(path) as im:
            im.load()  # decode now, so a truncated file fails here, inside the try
            out = to_rgb(im)
            if out is im:
                out = im.copy()
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        # UnidentifiedImageError and "image file is truncated" are OSErrors; broken PNG chunks raise SyntaxError.
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ImageDecodeError(f"cannot decode image file {str(Path(path))!r}: {reason} "
                               "(not an image, or a truncated/damaged file)") from None
    if size is not None and (out.height, out.width) != tuple(size):
        out = out.resize((size[1], size[0]), resample=image_mod.BILINEAR)
    return out
