"""A file-backed image dataset decoded in DataLoader workers, for image sets too large for memory.

:class:`StreamingImageFolder` reads one file per item from a compact :class:`~.layouts.FileIndex`
(RAM does not grow with a Python object per file) and returns a uint8 (3, H, W) tensor and its
label; batches are normalised on the device by :func:`sagemix.data.stream_loader.make_stream_loader`.
The transforms follow the ImageNet conventions (torchvision's reference recipes):

- training: ``RandomResizedCrop(image_size, scale=(0.08, 1), ratio=(3/4, 4/3))`` (bilinear) and a
  horizontal flip with probability 0.5, drawn from a per-sample seed that the sampler passes with
  the index, so the draws do not depend on which worker decodes the image;
- evaluation: resize so the image covers ``image_size / crop_ratio`` (shorter side
  ``round(224 / 0.875) = 256`` for 224 px), then a centre crop of ``image_size``; with
  ``crop_ratio=None`` a plain resize to ``image_size``, the pixels of the in-memory
  ``imagefolder`` dataset.

Images are decoded by :func:`sagemix.data.decode.open_rgb` (every PIL mode to 8-bit RGB). A file
that cannot be decoded raises an error naming it, or, with ``bad_files="skip"``, is replaced by
the next decodable file of the index with a warning (once per file and worker).

Mean/std: given, ImageNet's for the ImageNet layouts, or :func:`estimate_mean_std` from a seeded
sample of the training files (never by decoding the whole set). :func:`should_stream` decides
``stream="auto"``: stream when the decoded set would exceed a memory budget.
"""
from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..checks import check_mean_std, is_int
from .decode import ImageDecodeError, open_rgb, pil
from .imagefolder import image_stats
from .layouts import FileIndex

__all__ = ["StreamingImageFolder", "estimate_mean_std", "should_stream", "resolve_stream",
           "random_resized_crop_box", "DEFAULT_BUDGET_BYTES"]

DEFAULT_BUDGET_BYTES = 8 << 30  # the decoded-set size above which stream="auto" streams (capped by RAM / 4)


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator,
                            scale: tuple[float, float] = (0.08, 1.0),
                            ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """The (left, top, crop width, crop height) of torchvision's ``RandomResizedCrop`` draw.

    Up to 10 tries of an area fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``;
    then the centre crop with the aspect ratio clamped to ``ratio``.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


class StreamingImageFolder(torch.utils.data.Dataset):
    """Map-style dataset over a :class:`FileIndex`: ``ds[i]`` or ``ds[(i, seed)]`` -> (uint8 (3, H, W), label).

    The training transform draws from ``numpy.random.default_rng(seed)``; ``ds[i]`` uses ``seed=i``.

    Attributes:
        index: the files, labels and classes.
        image_size: (H, W) of the output.
        train: training transform (random resized crop + flip) or evaluation transform.
        mean, std: normalisation constants (0-1 scale) the loader applies on the device.
        name: the dataset name.
    """

    def __init__(self, index: FileIndex, *, image_size: tuple[int, int], train: bool,
                 mean: Sequence[float], std: Sequence[float], crop_ratio: float | None = 0.875,
                 scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                 flip: bool = True, bad_files: str = "error", name: str = "imagefolder") -> None:
        if not isinstance(index, FileIndex):
            raise TypeError(f"index must be a sagemix.data.layouts.FileIndex, got {type(index).__name__}")
        if len(index) == 0:
            raise ValueError("index must hold at least one file, got an empty index")
        if not (isinstance(image_size, (tuple, list)) and len(image_size) == 2
                and all(is_int(v) and v > 0 for v in image_size)):
            raise ValueError(f"image_size must be a (H, W) pair of positive ints, got {image_size!r}")
        if crop_ratio is not None and not 0.0 < float(crop_ratio) <= 1.0:
            raise ValueError(f"crop_ratio must be in (0, 1] or None (plain resize), got {crop_ratio!r}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi <= 1, got {scale!r}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (lo, hi) with 0 < lo <= hi, got {ratio!r}")
        if bad_files not in ("error", "skip"):
            raise ValueError(f"bad_files must be 'error' or 'skip', got {bad_files!r}")
        self.index = index
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.train = bool(train)
        self.mean, self.std = check_mean_std(mean, std, channels=3)
        self.crop_ratio = None if crop_ratio is None else float(crop_ratio)
        self.scale, self.ratio = (float(scale[0]), float(scale[1])), (float(ratio[0]), float(ratio[1]))
        self.flip = bool(flip)
        self.bad_files = bad_files
        self.name = name
        self._warned: set[int] = set()
        self._hash: str | None = None

    # --- the ImageData-like surface the trainer uses ---
    def take(self, index: Tensor | Sequence[int]) -> "StreamingImageFolder":
        """The same split with only the files at ``index``, in that order (the split named ``split[n]``)."""
        idx = np.asarray(index, dtype=np.int64)
        part = copy.copy(self)
        part.index = self.index.subset(idx, split=f"{self.index.split}[{len(idx)}]")
        part._hash, part._warned = None, set()
        return part

    @property
    def classes(self) -> list[str]:
        """Class names; ``classes[k]`` is the name of label ``k``."""
        return list(self.index.classes)

    @property
    def num_classes(self) -> int:
        """The number of classes."""
        return len(self.index.classes)

    @property
    def labels(self) -> Tensor:
        """All labels, int64 (N,) (a view of the index's array)."""
        return torch.from_numpy(self.index.labels)

    @property
    def data_hash(self) -> str:
        """16 hex digits of the sha256 of the sorted file index (relative paths, labels, classes)."""
        if self._hash is None:
            self._hash = self.index.digest()
        return self._hash

    @property
    def info(self) -> dict[str, Any]:
        """Provenance: root, layout, split, number of files, transform."""
        return {"root": self.index.root, "layout": self.index.layout, "split": self.index.split,
                "files": len(self.index), "stream": True, "crop_ratio": self.crop_ratio, "sha256": self.data_hash}

    def __len__(self) -> int:
        return len(self.index)

    def __repr__(self) -> str:
        return (f"StreamingImageFolder({self.index.root!r}, layout={self.index.layout!r}, split={self.index.split!r}, "
                f"n={len(self)}, classes={self.num_classes}, image_size={self.image_size}, train={self.train})")

    # --- decoding ---
    def transform(self, im: Any, seed: int) -> Tensor:
        """Apply the split's transform to an RGB PIL image; returns uint8 (3, H, W)."""
        image_mod = pil()
        h, w = self.image_size
        if self.train:
            rng = np.random.default_rng(seed)
            left, top, cw, ch = random_resized_crop_box(im.width, im.height, rng, self.scale, self.ratio)
            im = im.resize((w, h), resample=image_mod.BILINEAR, box=(left, top, left + cw, top + ch))
            flip = self.flip and rng.random() < 0.5
        else:
            flip = False
            if self.crop_ratio is None:
                if (im.height, im.width) != (h, w):
                    im = im.resize((w, h), resample=image_mod.BILINEAR)
            else:
                s = max(h / im.height, w / im.width) / self.crop_ratio
                rh, rw = max(h, round(im.height * s)), max(w, round(im.width * s))
                if (rh, rw) != (im.height, im.width):
                    im = im.resize((rw, rh), resample=image_mod.BILINEAR)
                top, left = (rh - h) // 2, (rw - w) // 2
                if (rh, rw) != (h, w):
                    im = im.crop((left, top, left + w, top + h))
        arr = np.asarray(im, dtype=np.uint8)
        if flip:
            arr = arr[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Tensor, int]:
        i, seed = (item if isinstance(item, tuple) else (item, item))
        i = int(i)
        for attempt in range(len(self.index)):
            j = (i + attempt) % len(self.index)
            try:
                im = open_rgb(self.index.path(j))
            except (ImageDecodeError, FileNotFoundError) as e:
                if self.bad_files == "error":
                    raise
                if j not in self._warned:
                    self._warned.add(j)
                    warnings.warn(f"skipping a bad image file (bad_files='skip'): {e}", stacklevel=2)
                continue
            return self.transform(im, int(seed)), int(self.index.labels[j])
        raise ImageDecodeError(f"no file of {self.index.root!r} could be decoded")


def estimate_mean_std(dataset: StreamingImageFolder, n: int = 512, seed: int = 0,
                      workers: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0-1 scale) of a seeded sample of ``n`` images of ``dataset``.

    The images are decoded with the evaluation transform (the dataset's size, centre crop), so the
    estimate costs ``n`` decodes whatever the size of the set.

    Args:
        dataset: the (training) files.
        n: sample size (all files when the set is smaller).
        seed: seed of the sample (a ``torch.Generator`` permutation).
        workers: DataLoader worker processes decoding the sample (0: in this process).
    """
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    g = torch.Generator().manual_seed(int(seed))
    pick = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))].sort().values.tolist()
    evaluator = StreamingImageFolder(dataset.index, image_size=dataset.image_size, train=False, mean=dataset.mean,
                                     std=dataset.std, crop_ratio=dataset.crop_ratio, bad_files=dataset.bad_files)
    sub = torch.utils.data.Subset(evaluator, pick)
    dl = torch.utils.data.DataLoader(sub, batch_size=64, num_workers=workers)
    images = torch.cat([x for x, _ in dl])
    return image_stats(images)


def _ram_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def should_stream(num_files: int, image_size: int | tuple[int, int], budget_bytes: int | None = None) -> bool:
    """Whether ``num_files`` decoded uint8 RGB images of ``image_size`` exceed ``budget_bytes``.

    The default budget is :data:`DEFAULT_BUDGET_BYTES` (8 GiB), or a quarter of the physical RAM
    when that is smaller.
    """
    if not is_int(num_files) or num_files < 0:
        raise ValueError(f"num_files must be a non-negative int, got {num_files!r}")
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    if budget_bytes is None:
        ram = _ram_bytes()
        budget_bytes = DEFAULT_BUDGET_BYTES if ram is None else min(DEFAULT_BUDGET_BYTES, ram // 4)
    elif not is_int(budget_bytes) or budget_bytes < 0:
        raise ValueError(f"budget_bytes must be a non-negative int or None, got {budget_bytes!r}")
    return num_files * 3 * int(h) * int(w) > budget_bytes


def resolve_stream(stream: Any) -> bool | None:
    """Parse the ``stream`` config value: True, False, or None for ``"auto"``.

    Accepts booleans and the strings ``auto``, ``true``/``false``, ``yes``/``no``, ``1``/``0``.
    """
    if stream is None or isinstance(stream, bool):
        return stream
    if isinstance(stream, str):
        v = stream.strip().lower()
        if v == "auto":
            return None
        if v in ("true", "yes", "1", "on"):
            return True
        if v in ("false", "no", "0", "off"):
            return False
    raise ValueError(f"stream must be 'auto', true or false, got {stream!r}")
