"""The in-memory dataset type and the dataset registry: ``load_dataset``, ``list_datasets``.

Every sagemix dataset is an :class:`ImageData`: all images as one uint8 tensor (N, 3, H, W) kept
in memory (and, by :func:`sagemix.data.make_loader`, resident on the accelerator), int64 labels,
class names and the normalisation constants. This is the data layout of the fast CIFAR trainers
(airbench, Keller Jordan 2024, https://arxiv.org/abs/2404.00498) used for the SAGE reproduction
(Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113): a 50k-image CIFAR split is 150 MB of
uint8, so the augmentation runs in batch on the device with no per-image Python.

Datasets register a loader function with :func:`register_dataset`; :func:`load_dataset` calls it
and then, when ``classes=[...]`` is given, keeps those classes and relabels them ``0..n-1`` (the
base classes of a few-shot split).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..checks import check_bool, check_mean_std, is_int
from ..registry import Registry

__all__ = ["ImageData", "register_dataset", "load_dataset", "list_datasets", "get_dataset_fn", "tensor_hash",
           "random_subset"]

DatasetFn = Callable[..., "ImageData"]

# Modules that register datasets on import; imported lazily (they import this module).
_DATASETS: Registry[DatasetFn] = Registry("dataset", [
    "sagemix.data.cifar",
    "sagemix.data.imagefolder",
    "sagemix.data.offline",
    "sagemix.data.mini_imagenet",
    "sagemix.data.fashion_mnist",
])


@dataclass
class ImageData:
    """An image classification split held in memory.

    Attributes:
        images: (N, 3, H, W) uint8 tensor, RGB.
        labels: (N,) int64 tensor with values in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` is the name of label ``k``.
        mean: per-channel mean on the 0-1 scale (used by the loader's normalisation).
        std: per-channel standard deviation on the 0-1 scale (all positive).
        name: the dataset name (``"cifar10"``, ``"offline"``, ...).
        info: free-form provenance (split, source files, generation parameters).

    :attr:`data_hash` is a short sha256 of the images and labels, for recording with a run.
    """

    images: Tensor
    labels: Tensor
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.images, Tensor) or self.images.dtype != torch.uint8 or self.images.ndim != 4 \
                or self.images.shape[1] != 3:
            raise ValueError("images must be a uint8 tensor of shape (N, 3, H, W), got "
                             f"{type(self.images).__name__} {getattr(self.images, 'dtype', '')} "
                             f"{tuple(getattr(self.images, 'shape', ()))}")
        if not isinstance(self.labels, Tensor) or self.labels.dtype != torch.int64 \
                or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be an int64 tensor of shape ({self.images.shape[0]},), got "
                             f"{getattr(self.labels, 'dtype', type(self.labels).__name__)} "
                             f"{tuple(getattr(self.labels, 'shape', ()))}")
        self.classes = [str(c) for c in self.classes]
        if len(self.classes) < 1:
            raise ValueError("classes must name at least one class, got an empty list")
        if self.labels.numel() and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in [0, {len(self.classes) - 1}] for {len(self.classes)} classes, "
                             f"got values in [{int(self.labels.min())}, {int(self.labels.max())}]")
        self.mean, self.std = check_mean_std(self.mean, self.std, channels=3)  # type: ignore[assignment]

    @property
    def num_classes(self) -> int:
        """The number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def data_hash(self) -> str:
        """16 hex digits of the sha256 of the images (shape and uint8 bytes) and labels (int64 bytes).

        Computed once (about a second per GB on the CPU) and remembered; two splits with the same
        pixels and labels in the same order have the same hash, whatever their names. The images
        must not be modified in place afterwards.
        """
        if self._hash is None:
            self._hash = tensor_hash(self.images, self.labels)
        return self._hash

    def take(self, index: Tensor) -> "ImageData":
        """The same split with only the images and labels at ``index`` (an int64 tensor), in that order."""
        return replace(self, images=self.images[index], labels=self.labels[index])

    def select_classes(self, classes: Sequence[str | int]) -> "ImageData":
        """Keep only ``classes`` (names or label indices) and relabel them ``0..n-1`` in the given order.

        The normalisation constants are kept (those of the source dataset).
        """
        if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or len(classes) == 0:
            raise ValueError(f"classes must be a non-empty list of class names or indices, got {classes!r}")
        ids: list[int] = []
        for c in classes:
            if isinstance(c, str):
                if c not in self.classes:
                    raise ValueError(f"classes: unknown class {c!r} for dataset {self.name!r}; "
                                     f"expected names among {self.classes[:10]}{'...' if self.num_classes > 10 else ''}")
                ids.append(self.classes.index(c))
            elif is_int(c):
                if not 0 <= c < self.num_classes:
                    raise ValueError(f"classes: index {c} out of range [0, {self.num_classes - 1}]")
                ids.append(c)
            else:
                raise TypeError(f"classes must hold class names (str) or indices (int), got {c!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"classes must not repeat a class, got {list(classes)!r}")
        lut = torch.full((self.num_classes,), -1, dtype=torch.int64)
        lut[torch.tensor(ids)] = torch.arange(len(ids))
        new = lut[self.labels]
        keep = new >= 0
        return replace(self, images=self.images[keep], labels=new[keep],
                       classes=[self.classes[i] for i in ids], info={**self.info, "classes_kept": ids})


def random_subset(data: Any, limit: int | None, seed: int = 0) -> Any:
    """A seeded random subset of ``limit`` items of a split, in their original order.

    The one subset rule of the package (``train_limit``/``test_limit`` of a run, ``--limit`` of an
    evaluation): the first ``limit`` positions of ``torch.randperm(n)`` drawn from a CPU generator
    seeded with ``seed``, sorted. ``data`` is an :class:`ImageData` or a
    :class:`~sagemix.data.streaming.StreamingImageFolder` (anything with ``len`` and ``take(index)``);
    ``limit`` None or at least ``len(data)`` returns ``data`` itself.
    """
    if limit is None:
        return data
    if not is_int(limit) or limit < 1:
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    n = len(data)
    if limit >= n:
        return data
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return data.take(index)


def tensor_hash(images: Tensor, labels: Tensor, chunk_bytes: int = 1 << 26) -> str:
    """16 hex digits of the sha256 of ``images`` (shape, then uint8 bytes in C order) and ``labels`` (int64)."""
    h = hashlib.sha256()
    h.update(f"images{tuple(images.shape)}|".encode())
    flat = images.detach().cpu().contiguous().view(-1)
    for s in range(0, flat.numel(), chunk_bytes):
        h.update(flat[s:s + chunk_bytes].numpy())  # buffer protocol: no copy
    h.update(f"labels{tuple(labels.shape)}|".encode())
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def register_dataset(name: str, fn: DatasetFn) -> DatasetFn:
    """Register ``fn`` under ``name`` for :func:`load_dataset`.

    ``fn`` is called as ``fn(root=..., train=..., download=..., image_size=..., seed=..., **kwargs)``
    and returns an :class:`ImageData`. Re-registering the same function is a no-op; another
    function under a taken name is an error.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    return _DATASETS.add(name, fn)


def list_datasets() -> list[str]:
    """Names of all registered datasets, sorted."""
    return _DATASETS.names()


def get_dataset_fn(name: str) -> DatasetFn:
    """The loader function registered under ``name``; ValueError naming the choices otherwise."""
    return _DATASETS.get(name)


def load_dataset(name: str, *, root: str | None = None, train: bool = True, download: bool = False,
                 image_size: int | tuple[int, int] | None = None, seed: int = 0,
                 classes: Sequence[str | int] | None = None, **kwargs: Any) -> ImageData:
    """Load a dataset split into memory.

    Args:
        name: one of :func:`list_datasets` (``cifar10``, ``cifar100``, ``imagefolder``, ``offline``, ...).
        root: where the files are (the extracted folder, its parent or the archive for CIFAR; the
            folder with one sub-folder per class for ``imagefolder``; the cache folder for ``offline``).
        train: the training split (True) or the test split.
        download: fetch missing files (CIFAR only; needs network access).
        image_size: resize to this size (int or (H, W)); None keeps the native size.
        seed: seed of any random choice (the offline dataset's generation).
        classes: keep only these classes (names or indices) and relabel them ``0..n-1``.
        **kwargs: dataset-specific options (e.g. ``n_train``/``n_test`` for ``offline``).

    Returns:
        An :class:`ImageData`.

    Example:
        >>> data = load_dataset("offline", train=True)   # doctest: +SKIP
        >>> data.images.shape, data.num_classes           # doctest: +SKIP
        (torch.Size([10000, 3, 32, 32]), 10)
    """
    fn = get_dataset_fn(name)
    check_bool(train, "train")
    if image_size is not None:
        image_size = _check_image_size(image_size)
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    data = fn(root=root, train=train, download=download, image_size=image_size, seed=seed, **kwargs)
    if not isinstance(data, ImageData):
        raise TypeError(f"dataset {name!r} returned {type(data).__name__}, expected ImageData")
    if classes is not None:
        data = data.select_classes(classes)
    return data


def resize_images(images: Tensor, size: tuple[int, int], chunk: int = 1024) -> Tensor:
    """Resize uint8 (N, C, H, W) images to ``size`` (bilinear, antialiased when shrinking), in chunks."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    out = torch.empty((images.shape[0], images.shape[1], size[0], size[1]), dtype=torch.uint8)
    for s in range(0, images.shape[0], chunk):
        x = images[s:s + chunk].float()
        y = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[s:s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _check_image_size(image_size: Any) -> tuple[int, int]:
    """Normalise ``image_size`` (int or (H, W)) to a tuple of positive ints."""
    if is_int(image_size):
        size = (image_size, image_size)
    elif isinstance(image_size, (tuple, list)) and len(image_size) == 2 \
            and all(is_int(s) for s in image_size):
        size = (int(image_size[0]), int(image_size[1]))
    else:
        raise TypeError(f"image_size must be an int or a (H, W) pair of ints, got {image_size!r}")
    if min(size) < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return size
