"""Image-folder datasets loaded into memory as uint8, for the device-resident loader.

The layout of torchvision's ``ImageFolder``: one sub-folder per class, class names sorted, labels
``0..K-1`` in that order. Any resolution is accepted; images are resized (bilinear, antialiased,
PIL) to ``image_size``, or kept when all share one size. The mean/std of the normalisation are
computed from the training images unless given. Used for mini-ImageNet style data in the SAGE
evaluation (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113).

Splits: when ``root`` holds ``train/`` and ``test/`` (or ``val/``) sub-folders, each with one
folder per class, ``train`` picks the split. Otherwise ``root`` itself holds the class folders and
both splits are all its images, unless ``test_fraction`` is given: then a seeded, per-class split
keeps ``round(n_c * test_fraction)`` images of each class for the test split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from .decode import open_rgb
from .layouts import IMAGE_EXTENSIONS, find_images, scan_layout, split_dirs
from .registry import ImageData, register_dataset

__all__ = ["load_imagefolder", "find_images", "read_images", "image_stats", "IMAGE_EXTENSIONS"]

def read_images(paths: Sequence[str | os.PathLike], image_size: tuple[int, int] | None = None) -> Tensor:
    """Read images as RGB uint8 (N, 3, H, W), resized to ``image_size`` (H, W) when given.

    Every PIL mode is converted to 8-bit RGB by :func:`sagemix.data.decode.open_rgb` (16-bit images
    are scaled, not clipped); a file that is not a readable image raises a ValueError naming it.
    Without ``image_size`` all images must have the same size (ValueError naming two that differ).
    """
    arrays: list[np.ndarray] = []
    first: tuple[Path, tuple[int, int]] | None = None
    for p in paths:
        im = open_rgb(p, image_size)
        if image_size is None:
            if first is None:
                first = (Path(p), (im.height, im.width))
            elif (im.height, im.width) != first[1]:
                raise ValueError(f"images have different sizes ({first[0]}: {first[1]}, {p}: {(im.height, im.width)}); "
                                 "pass image_size=(H, W) or an int to resize them all")
        arrays.append(np.asarray(im, dtype=np.uint8))
    if not arrays:
        raise ValueError("paths is empty; expected at least one image")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def image_stats(images: Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (0-1 scale, population std) of uint8 (N, 3, H, W) images, in float64."""
    s = torch.zeros(3, dtype=torch.float64)
    s2 = torch.zeros(3, dtype=torch.float64)
    count = 0
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].double().div_(255)
        s += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / count
    std = (s2 / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(mean.tolist()), tuple(std.tolist())


def _holdout(labels: list[int], fraction: float, seed: int) -> Tensor:
    """Boolean (N,) mask of the seeded per-class test images."""
    lab = torch.tensor(labels)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    g = torch.Generator().manual_seed(int(seed))
    for c in range(int(lab.max()) + 1):
        idx = torch.nonzero(lab == c).flatten()
        k = int(round(idx.numel() * fraction))
        mask[idx[torch.randperm(idx.numel(), generator=g)[:k]]] = True
    return mask


def load_imagefolder(*, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                     image_size: tuple[int, int] | None = None, seed: int = 0,
                     mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                     test_fraction: float | None = None, name: str = "imagefolder",
                     empty_classes: str = "error") -> ImageData:
    """Load an image folder into memory.

    Args:
        root: the folder with one sub-folder per class (or with ``train/`` and ``test/``/``val/``).
        train: the training split (True) or the test split.
        download: ignored (nothing to download).
        image_size: (H, W) to resize to; None keeps the size, which must then be the same for all.
        seed: seed of the ``test_fraction`` split.
        mean, std: normalisation constants (0-1 scale); computed from the training images if None.
        test_fraction: on a folder without ``train/``/``test/``, hold out this share of each class
            as the test split (None: both splits are all images).
        name: the dataset name recorded in the result.
        empty_classes: a class folder without images: ``"error"`` (default) or ``"drop"`` it with a
            warning (see :func:`find_images`).

    Returns:
        :class:`ImageData` with uint8 images (N, 3, H, W) and labels in sorted-class-name order.
    """
    del download
    if root is None:
        raise ValueError("root is required for imagefolder: the folder with one sub-folder per class")
    if test_fraction is not None and not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1) or None, got {test_fraction!r}")
    if (mean is None) != (std is None):
        raise ValueError("mean and std must be given together (or both left None to compute them)")
    root_path = Path(root).expanduser()
    dirs = split_dirs(root_path) if root_path.is_dir() else None
    if dirs is not None:
        if test_fraction is not None:
            raise ValueError(f"test_fraction={test_fraction} cannot be used: {str(root_path)!r} already has "
                             "train/ and test/ (or val/) folders")
        train_index = scan_layout(root_path, train=True, layout="imagefolder", empty_classes=empty_classes)
        index = train_index if train else scan_layout(root_path, train=False, layout="imagefolder",
                                                      empty_classes=empty_classes)
        train_paths = [train_index.path(i) for i in range(len(train_index))]
        paths = train_paths if train else [index.path(i) for i in range(len(index))]
        labels, classes = index.labels.tolist(), list(index.classes)
        split_info = f"{dirs[0 if train else 1].name}/"
    else:
        all_paths, all_labels, classes = find_images(root_path, empty_classes=empty_classes)
        if test_fraction is None:
            train_paths, train_labels = all_paths, all_labels
            paths, labels = all_paths, all_labels
            split_info = "all"
        else:
            hold = _holdout(all_labels, float(test_fraction), seed).tolist()
            train_paths = [p for p, h in zip(all_paths, hold) if not h]
            train_labels = [lab for lab, h in zip(all_labels, hold) if not h]
            paths = train_paths if train else [p for p, h in zip(all_paths, hold) if h]
            labels = train_labels if train else [lab for lab, h in zip(all_labels, hold) if h]
            split_info = f"{'train' if train else 'test'} (test_fraction={test_fraction}, seed={seed})"
    images = read_images(paths, image_size)
    if image_size is None and dirs is not None and not train:
        # The test split must match the training images' size, which the loader and models assume.
        ref = read_images(train_paths[:1])
        if ref.shape[2:] != images.shape[2:]:
            raise ValueError(f"test images are {tuple(images.shape[2:])} but training images are "
                             f"{tuple(ref.shape[2:])}; pass image_size=(H, W)")
    if mean is None:
        stats_images = images if paths is train_paths else read_images(train_paths, tuple(images.shape[2:]))
        mean_t, std_t = image_stats(stats_images)
    else:
        mean_t, std_t = tuple(mean), tuple(std)  # type: ignore[arg-type]
    return ImageData(images=images, labels=torch.tensor(labels, dtype=torch.int64), classes=classes,
                     mean=mean_t, std=std_t, name=name,  # type: ignore[arg-type]
                     info={"root": str(root_path), "split": split_info, "files": [str(p) for p in paths]})


def _imagefolder(**kw: Any) -> ImageData:
    return load_imagefolder(**kw)


register_dataset("imagefolder", _imagefolder)
