"""mini-ImageNet with the Ravi & Larochelle split, loaded into memory as uint8 84x84 images.

mini-ImageNet (Vinyals et al., "Matching Networks for One Shot Learning", NeurIPS 2016,
https://arxiv.org/abs/1606.04080) in the class split of Ravi & Larochelle ("Optimization as a Model
for Few-Shot Learning", ICLR 2017, https://openreview.net/forum?id=rJY0-Kcll): 100 ImageNet classes
with 600 images each, 64 base classes (``train.csv``), 16 validation classes (``val.csv``) and 20
novel test classes (``test.csv``). Used here for the few-shot transfer evaluation of backbones
trained with SAGE (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) and the other methods.

Layout (the common release)::

    ROOT/train.csv  ROOT/val.csv  ROOT/test.csv     # header "filename,label"
    ROOT/images/n0153282900000005.jpg ...           # or images/<label>/<filename>

``ROOT`` may also be a folder holding a ``mini_imagenet``, ``mini-imagenet`` or ``miniImageNet``
sub-folder with that layout; ``root=None`` looks in ``$SAGEMIX_DATA`` (default ``./data``). Images
are converted to RGB and resized to 84x84 with PIL's bilinear filter (antialiased when shrinking;
images already 84x84 are left untouched), decoded by a thread pool.

Splits (``load_dataset("mini_imagenet", split=...)``, or the ``train`` flag when ``split`` is None):

- ``"train"`` (``train=True``): the 64 base classes, minus ``base_holdout`` images per class;
- ``"base_test"`` (``train=False``): those held-out base-class images (the last ``base_holdout`` rows
  of each class in ``train.csv``), so that a backbone trained with ``--dataset mini_imagenet`` gets
  an honest per-epoch test accuracy on its own classes. ``base_holdout=50`` by default;
  ``base_holdout=0`` trains on all 600 images per class and makes ``"base_test"`` an error;
- ``"val"``, ``"test"``: the 16 / 20 novel-class splits, every image (the few-shot pools).

The names ``mini_imagenet_val`` and ``mini_imagenet_test`` load those splits directly. Labels are
``0..n-1`` in sorted synset order within each split; ``classes`` holds the synset ids. The
normalisation constants are mini-ImageNet's base-class pixel statistics as used by Tian et al.
(RFS, https://arxiv.org/abs/2003.11539), the same for every split (features of novel classes must
be computed with the backbone's training normalisation).

Example:
    >>> from sagemix.data import load_dataset
    >>> novel = load_dataset("mini_imagenet", root="data/mini-imagenet", split="test")  # doctest: +SKIP
    >>> novel.images.shape, novel.num_classes                                          # doctest: +SKIP
    (torch.Size([12000, 3, 84, 84]), 20)
"""
from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..checks import check_int, is_int
from .decode import open_rgb
from .registry import ImageData, register_dataset

__all__ = ["load_mini_imagenet", "find_mini_imagenet_root", "read_split_csv", "SPLITS", "MINI_IMAGENET_MEAN",
           "MINI_IMAGENET_STD"]

SPLITS = ("train", "base_test", "val", "test")
_CSV = {"train": "train.csv", "base_test": "train.csv", "val": "val.csv", "test": "test.csv"}
_SUBFOLDERS = ("", "mini_imagenet", "mini-imagenet", "miniImageNet", "miniimagenet")
MINI_IMAGENET_MEAN = (120.39586422 / 255.0, 115.59361427 / 255.0, 104.54012653 / 255.0)
MINI_IMAGENET_STD = (70.68188272 / 255.0, 68.27635443 / 255.0, 72.54505529 / 255.0)


def _expected_message(root: Path) -> str:
    return (f"mini-ImageNet not found under {str(root)!r}: expected the Ravi & Larochelle split files train.csv, "
            "val.csv and test.csv (header 'filename,label') and an images/ folder next to them (the common "
            "release), in that folder or in a mini_imagenet / mini-imagenet / miniImageNet sub-folder. Pass "
            "root=... (CLI: --data-dir) or set $SAGEMIX_DATA.")


def find_mini_imagenet_root(root: str | os.PathLike | None) -> Path:
    """The folder that holds ``train.csv``, ``val.csv``, ``test.csv`` and ``images/``.

    Raises:
        FileNotFoundError: naming the expected files when they are absent.
    """
    if root is None:
        root = Path(os.environ.get("SAGEMIX_DATA", "data"))
    base = Path(root).expanduser()
    for sub in _SUBFOLDERS:
        cand = base / sub if sub else base
        if all((cand / f).is_file() for f in ("train.csv", "val.csv", "test.csv")) and (cand / "images").is_dir():
            return cand
    raise FileNotFoundError(_expected_message(base))


def read_split_csv(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Read a split file with columns ``filename,label``; returns (filenames, labels) in file order."""
    path = Path(path)
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:2]] != ["filename", "label"]:
            raise ValueError(f"{path}: expected a header 'filename,label', got {header!r}")
        files, labels = [], []
        for i, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise ValueError(f"{path}, line {i}: expected 'filename,label', got {row!r}")
            files.append(row[0].strip())
            labels.append(row[1].strip())
    if not files:
        raise ValueError(f"{path}: no images listed")
    return files, labels


def _resolve_image(images_dir: Path, filename: str, label: str) -> Path:
    for cand in (images_dir / filename, images_dir / label / filename):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"mini-ImageNet image {filename!r} (class {label}) not found in {str(images_dir)!r} "
                            f"(looked for images/{filename} and images/{label}/{filename})")


def _load_images(paths: Sequence[Path], size: tuple[int, int], workers: int) -> np.ndarray:
    h, w = size
    out = np.empty((len(paths), h, w, 3), dtype=np.uint8)

    def load(i: int) -> None:
        out[i] = np.asarray(open_rgb(paths[i], size), dtype=np.uint8)

    # PIL releases the GIL while decoding and resizing, so threads give a real speed-up.
    if workers <= 1:
        for i in range(len(paths)):
            load(i)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(load, range(len(paths))))
    return out


def load_mini_imagenet(root: str | os.PathLike | None = None, *, split: str = "train", image_size: Any = None,
                       base_holdout: int = 50, workers: int | None = None,
                       mean: Sequence[float] = MINI_IMAGENET_MEAN,
                       std: Sequence[float] = MINI_IMAGENET_STD) -> ImageData:
    """Load one split of mini-ImageNet into memory (see the module docstring).

    Args:
        root: the folder with the CSVs and ``images/`` (or its parent); None: ``$SAGEMIX_DATA``.
        split: ``"train"``, ``"base_test"``, ``"val"`` or ``"test"``.
        image_size: (H, W) or int; default 84x84.
        base_holdout: images per base class held out of ``"train"`` into ``"base_test"``.
        workers: decoding threads (default ``min(8, os.cpu_count())``).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation std (0-1 scale).

    Returns:
        :class:`sagemix.data.ImageData` with uint8 (N, 3, H, W) images, labels ``0..n-1`` in sorted
        synset order and the synset ids as class names.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size is None:
        size = (84, 84)
    elif is_int(image_size) and image_size > 0:
        size = (image_size, image_size)
    elif (isinstance(image_size, (tuple, list)) and len(image_size) == 2
          and all(is_int(s) and s > 0 for s in image_size)):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise ValueError(f"image_size must be a positive int or (H, W) pair, got {image_size!r}")
    check_int(base_holdout, "base_holdout", 0)
    if split == "base_test" and base_holdout == 0:
        raise ValueError("split 'base_test' (train=False) is empty with base_holdout=0: pass base_holdout > 0 "
                         "to hold out images of each base class, or load split='val'/'test' for novel classes")
    if workers is None:
        workers = min(8, os.cpu_count() or 1)
    if not is_int(workers) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    folder = find_mini_imagenet_root(root)
    files, synsets = read_split_csv(folder / _CSV[split])
    classes = sorted(set(synsets))
    lut = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([lut[s] for s in synsets], dtype=torch.int64)
    if split in ("train", "base_test"):
        # Rank of each row within its class (file order); the last `base_holdout` rows of a class are held out.
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=len(classes))
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.empty_like(labels)
        rank[order] = torch.arange(labels.numel()) - starts[labels[order]]
        if base_holdout >= int(counts.min()):
            raise ValueError(f"base_holdout={base_holdout} leaves no training image for a class with "
                             f"{int(counts.min())} images")
        held = rank >= (counts[labels] - base_holdout)
        keep = held if split == "base_test" else ~held
        idx = torch.nonzero(keep).squeeze(1).tolist()
        files = [files[i] for i in idx]
        synsets = [synsets[i] for i in idx]
        labels = labels[keep]
    images_dir = folder / "images"
    paths = [_resolve_image(images_dir, f, s) for f, s in zip(files, synsets)]
    arr = _load_images(paths, size, workers)
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    return ImageData(images=images, labels=labels, classes=classes, mean=tuple(mean), std=tuple(std),
                     name="mini_imagenet",
                     info={"split": split, "source": str(folder), "base_holdout": base_holdout,
                           "image_size": list(size)})


def _mini_imagenet(*, root: Any = None, train: bool = True, download: bool = False, image_size: Any = None,
                   seed: int = 0, split: str | None = None, **kwargs: Any) -> ImageData:
    """Registry adapter: ``split`` wins over ``train`` (True -> "train", False -> "base_test")."""
    if download:
        raise ValueError("mini_imagenet cannot be downloaded by sagemix (its images come from ImageNet under the "
                         "ImageNet terms); put the common release (train.csv, val.csv, test.csv, images/) in a "
                         "folder and pass root=... / --data-dir")
    if split is None:
        split = "train" if train else "base_test"
    return load_mini_imagenet(root, split=split, image_size=image_size, **kwargs)


def _fixed_split(split: str):
    def fn(*, root: Any = None, train: bool = True, download: bool = False, image_size: Any = None, seed: int = 0,
           **kwargs: Any) -> ImageData:
        return _mini_imagenet(root=root, train=train, download=download, image_size=image_size, seed=seed,
                              split=split, **kwargs)

    fn.__name__ = f"_mini_imagenet_{split}"
    fn.__doc__ = f"mini-ImageNet, split {split!r} whatever the train flag."
    return fn


register_dataset("mini_imagenet", _mini_imagenet)
register_dataset("mini_imagenet_val", _fixed_split("val"))
register_dataset("mini_imagenet_test", _fixed_split("test"))
