"""The streaming loader and the entry point that chooses between streaming and in-memory data.

- :func:`open_image_folder` scans an image dataset on disk (ImageFolder, ImageNet or Tiny-ImageNet
  layout, :mod:`sagemix.data.layouts`) into a :class:`~.streaming.StreamingImageFolder`, with the
  mean/std given, ImageNet's for the ImageNet layouts, or estimated from a seeded sample.
- :func:`make_stream_loader` serves it like :func:`sagemix.data.make_loader`: an iterable of
  normalised float32 ``(images, labels)`` batches on ``device`` with ``len()`` and
  ``set_epoch(e)``. Images are decoded in persistent DataLoader worker processes (prefetching,
  pinned memory on CUDA); the uint8 batch is copied with ``non_blocking=True`` and converted and
  normalised on the device.
- :func:`load_image_data` is what a trainer calls with the ``stream`` config key
  (``auto | true | false``): it returns an in-memory :class:`~.registry.ImageData` (for
  :func:`make_loader`) or a streaming dataset (for :func:`make_stream_loader`);
  :func:`make_any_loader` builds the matching loader.

Sharding (torchrun): each epoch's order is that of ``torch.utils.data.DistributedSampler``
(:func:`sagemix.data.loader.shard_order`): a permutation seeded by ``(seed, epoch)``, padded to a
multiple of ``world_size``, rank ``r`` taking positions ``r, r + world_size, ...``; so each rank
opens only its own files. Every rank must pass the same ``seed``.
"""
from __future__ import annotations

import os
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from ..checks import check_bool, check_int, is_int
from .layouts import IMAGENET_MEAN, IMAGENET_STD, scan_layout
from .loader import Normalizer, epoch_generator, make_loader, shard_order
from .registry import ImageData, _check_image_size, load_dataset
from .streaming import StreamingImageFolder, estimate_mean_std, resolve_stream, should_stream

__all__ = ["open_image_folder", "make_stream_loader", "StreamLoader", "ShardBatchSampler", "load_image_data",
           "make_any_loader", "decide_stream", "STREAMABLE"]

# Dataset names load_image_data can stream, and the scan layout of each.
STREAMABLE = {"imagefolder": "auto", "imagenet": "imagenet", "tiny_imagenet": "tiny_imagenet"}


class ShardBatchSampler:
    """Batch sampler of one rank's shard: yields lists of ``(index, sample_seed)`` pairs.

    The per-sample seeds drive the training transform's random crop and flip in the workers, so
    an epoch's batches are the same whatever the number of workers. Set :attr:`epoch` (or call
    :meth:`set_epoch`) before iterating; it lives in the main process, so persistent workers see
    the new order.
    """

    def __init__(self, n: int, batch_size: int, *, train: bool, rank: int = 0, world_size: int = 1, seed: int = 0,
                 drop_last: bool = False) -> None:
        self.n, self.batch_size, self.train, self.rank, self.world_size = n, batch_size, train, rank, world_size
        self.seed, self.drop_last, self.epoch = int(seed), drop_last, 0
        self.num_samples = -(-n // world_size) if train else len(range(rank, n, world_size))

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s order and draws next."""
        self.epoch = epoch

    def shard(self, epoch: int | None = None) -> tuple[Tensor, Tensor]:
        """(indices, sample seeds) of this rank for ``epoch`` (default: :attr:`epoch`)."""
        g = epoch_generator(self.seed, self.epoch if epoch is None else epoch)
        order, total = shard_order(self.n, self.rank, self.world_size, self.train, g)
        seeds = torch.randint(2 ** 62, (total,), generator=g)[self.rank:total:self.world_size] if self.train \
            else order
        return order, seeds

    def __len__(self) -> int:
        m = self.num_samples
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order, seeds = self.shard()
        pairs = list(zip(order.tolist(), seeds.tolist()))
        stop = len(self) * self.batch_size if self.drop_last else len(pairs)
        for s in range(0, stop, self.batch_size):
            yield pairs[s:s + self.batch_size]


class StreamLoader:
    """Iterable of normalised float32 ``(images, labels)`` batches on ``device``; see :func:`make_stream_loader`."""

    def __init__(self, dataset: StreamingImageFolder, *, batch_size: int, train: bool, device: str | torch.device,
                 rank: int = 0, world_size: int = 1, seed: int = 0, workers: int = 4, prefetch: int = 4,
                 drop_last: bool = False, channels_last: bool = False, pin_memory: bool | None = None) -> None:
        if not isinstance(dataset, StreamingImageFolder):
            raise TypeError(f"dataset must be a StreamingImageFolder (see open_image_folder), got "
                            f"{type(dataset).__name__}")
        for arg, val, lo in (("batch_size", batch_size, 1), ("world_size", world_size, 1), ("rank", rank, 0),
                             ("workers", workers, 0), ("prefetch", prefetch, 1), ("seed", seed, 0)):
            check_int(val, arg, lo)
        if rank >= world_size:
            raise ValueError(f"rank must be < world_size={world_size}, got {rank!r}")
        for arg, val in (("train", train), ("drop_last", drop_last), ("channels_last", channels_last)):
            check_bool(val, arg)
        if dataset.train != train:
            raise ValueError(f"train={train} but the dataset was opened with train={dataset.train} (its transform)")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"device must be a torch device or its name (e.g. 'cuda', 'cpu'), got {device!r}") from e
        self.data, self.batch_size, self.train = dataset, batch_size, train
        self.rank, self.world_size, self.workers = rank, world_size, workers
        self.sampler = ShardBatchSampler(len(dataset), batch_size, train=train, rank=rank, world_size=world_size,
                                         seed=seed, drop_last=drop_last)
        self.num_samples = self.sampler.num_samples
        pin = self.device.type == "cuda" if pin_memory is None else bool(pin_memory)
        self._normalise = Normalizer(dataset.mean, dataset.std, self.device, channels_last)
        self._loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=self.sampler, num_workers=workers, pin_memory=pin,
            persistent_workers=workers > 0, prefetch_factor=prefetch if workers > 0 else None)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch``'s shuffle and augmentation draws for the next pass."""
        if not is_int(epoch) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.sampler.set_epoch(self.epoch)
        self.epoch += 1
        for x, y in self._loader:
            x = x.to(self.device, non_blocking=True)
            yield self._normalise(x), y.to(self.device, non_blocking=True)

    def __repr__(self) -> str:
        return (f"StreamLoader({self.data.name!r}, n={len(self.data)}, batch_size={self.batch_size}, "
                f"train={self.train}, device={self.device}, workers={self.workers}, "
                f"rank={self.rank}/{self.world_size}, batches={len(self)})")


def make_stream_loader(dataset: StreamingImageFolder, *, batch_size: int, train: bool, device: str | torch.device,
                       rank: int = 0, world_size: int = 1, seed: int = 0, workers: int = 4, prefetch: int = 4,
                       drop_last: bool = False, channels_last: bool = False,
                       pin_memory: bool | None = None) -> StreamLoader:
    """Build the streaming loader of a split (the contract of :func:`sagemix.data.make_loader`).

    Args:
        dataset: from :func:`open_image_folder` (its ``train`` flag must match ``train``).
        batch_size: images per batch.
        train: shuffle (and the dataset's random crop/flip); False serves this rank's shard in order.
        device: where the batches are normalised and returned.
        rank, world_size: this process's shard (``torch.distributed`` rank and world size).
        seed: base seed of the shuffle and the augmentation draws (the same on every rank).
        workers: decoding worker processes (persistent; 0 decodes in this process).
        prefetch: batches prefetched per worker.
        drop_last: drop the last incomplete batch.
        channels_last: return batches in ``torch.channels_last`` memory format.
        pin_memory: page-locked host batches (default: when ``device`` is CUDA).

    Returns:
        A :class:`StreamLoader`; ``len(loader)`` batches, ``loader.set_epoch(e)`` before each epoch.
    """
    return StreamLoader(dataset, batch_size=batch_size, train=train, device=device, rank=rank,
                        world_size=world_size, seed=seed, workers=workers, prefetch=prefetch, drop_last=drop_last,
                        channels_last=channels_last, pin_memory=pin_memory)


def open_image_folder(root: str | os.PathLike, *, train: bool = True, image_size: int | tuple[int, int] = 224,
                      layout: str = "auto", mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                      stats_sample: int = 512, seed: int = 0, crop_ratio: float | None = 0.875,
                      empty_classes: str = "error", bad_files: str = "error",
                      val_labels: str | os.PathLike | None = None, name: str | None = None) -> StreamingImageFolder:
    """Open one split of an image dataset on disk for streaming (nothing is decoded but a stats sample).

    Args:
        root: the dataset folder (layouts: see :mod:`sagemix.data.layouts`).
        train: the training split (training transform) or the validation/test split.
        image_size: output (H, W) or int.
        layout: ``"auto"``, ``"imagefolder"``, ``"imagenet"`` or ``"tiny_imagenet"``.
        mean, std: normalisation constants (0-1 scale); default ImageNet's for the ImageNet and
            Tiny-ImageNet layouts, else estimated from ``stats_sample`` training images.
        stats_sample: size of the seeded sample of the estimate.
        seed: seed of that sample.
        crop_ratio: evaluation centre-crop ratio (None: plain resize, as the in-memory dataset).
        empty_classes: a class folder without images: ``"error"`` or ``"drop"``.
        bad_files: an undecodable file: ``"error"`` or ``"skip"`` (with a warning).
        val_labels: labels file of a flat ImageNet ``val/``.
        name: dataset name (default: the layout's).
    """
    if (mean is None) != (std is None):
        raise ValueError("mean and std must be given together (or both left None)")
    size = _check_image_size(image_size)
    index = scan_layout(root, train=train, layout=layout, empty_classes=empty_classes, val_labels=val_labels)
    kw: dict[str, Any] = {"image_size": size, "crop_ratio": crop_ratio, "bad_files": bad_files,
                          "name": name or index.layout}
    if mean is None and index.layout in ("imagenet", "tiny_imagenet"):
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    if mean is None:
        train_index = index if train else scan_layout(root, train=True, layout=index.layout,
                                                      empty_classes=empty_classes)
        probe = StreamingImageFolder(train_index, train=False, mean=(0.5,) * 3, std=(0.25,) * 3, **kw)
        mean, std = estimate_mean_std(probe, n=stats_sample, seed=seed)
    return StreamingImageFolder(index, train=train, mean=mean, std=std, **kw)  # type: ignore[arg-type]


def load_image_data(name: str, *, root: str | os.PathLike | None = None, train: bool = True,
                    image_size: int | tuple[int, int] | None = None, seed: int = 0, stream: Any = "auto",
                    budget_bytes: int | None = None, **kwargs: Any) -> ImageData | StreamingImageFolder:
    """Load a split in memory or open it for streaming, as :func:`decide_stream` says of ``stream``.

    Args:
        name: a dataset name of :func:`sagemix.data.load_dataset`; ``imagefolder``, ``imagenet`` and
            ``tiny_imagenet`` (the names in :data:`STREAMABLE`) can stream.
        root: the dataset folder.
        train: the training split or the test split.
        image_size: (H, W) or int (streaming default 224).
        seed: the dataset seed (stats sample when streaming).
        stream: ``"auto"``, ``True``/``"true"`` or ``False``/``"false"`` (:func:`decide_stream`: the
            same choice for both splits, made on the training split).
        budget_bytes: memory budget of ``"auto"``.
        **kwargs: options of :func:`open_image_folder` (streaming) or of the dataset (in memory).

    Returns:
        An :class:`ImageData` or a :class:`StreamingImageFolder`; :func:`make_any_loader` takes either.
    """
    streams = decide_stream(name, root, stream, image_size=image_size, budget_bytes=budget_bytes,
                            empty_classes=kwargs.get("empty_classes", "error"))
    if not streams and name not in STREAMABLE:
        return load_dataset(name, root=root, train=train, image_size=image_size, seed=seed, **kwargs)  # type: ignore[arg-type]
    if root is None:
        raise ValueError(f"root is required for {name!r}: the dataset folder")
    if streams:
        size = _check_image_size(224 if image_size is None else image_size)
        return open_image_folder(root, train=train, image_size=size, layout=STREAMABLE[name], seed=seed, **kwargs)
    mem_kw = {k: v for k, v in kwargs.items() if k in ("mean", "std", "empty_classes", "test_fraction")}
    return load_dataset("imagefolder", root=str(root), train=train, image_size=image_size, seed=seed, **mem_kw)


def decide_stream(name: str, root: str | os.PathLike | None, stream: Any = "auto", *,
                  image_size: int | tuple[int, int] | None = None, budget_bytes: int | None = None,
                  empty_classes: str = "error") -> bool:
    """Whether dataset ``name`` at ``root`` streams under the ``stream`` setting: the package's one rule.

    The trainer, the evaluator and :func:`load_image_data` all ask it. ``True`` streams (only the
    names of :data:`STREAMABLE`, else a ValueError), ``False`` does not (a ValueError for the
    ImageNet layouts, which have no in-memory loader); ``"auto"`` streams a streamable dataset whose
    training files, decoded at ``image_size`` (224 when None), exceed the memory budget
    (:func:`should_stream`; a directory scan, nothing decoded), and the ImageNet layouts always.
    Without a ``root`` ``"auto"`` says False for ``imagefolder`` (the in-memory loader reports the
    missing folder).

    Args:
        name: the dataset name.
        root: the dataset folder (or None).
        stream: ``"auto"``, True/False or their spellings (:func:`resolve_stream`).
        image_size: the training image size.
        budget_bytes: the memory budget of ``"auto"`` (None: the default).
        empty_classes: how the scan treats a class folder without images.
    """
    choice = resolve_stream(stream)
    if name not in STREAMABLE:
        if choice:
            raise ValueError(f"stream=true needs an image-folder dataset (one of {sorted(STREAMABLE)}), got {name!r}")
        return False
    if name != "imagefolder":
        if choice is False:
            raise ValueError(f"{name!r} is only available streamed: pass stream=true (or 'auto')")
        return True
    if choice is not None:
        return choice
    if root is None:
        return False
    index = scan_layout(root, train=True, layout=STREAMABLE[name], empty_classes=empty_classes)
    return should_stream(len(index), _check_image_size(224 if image_size is None else image_size), budget_bytes)


def make_any_loader(data: ImageData | StreamingImageFolder, *, batch_size: int, train: bool,
                    device: str | torch.device, seed: int = 0, rank: int = 0, world_size: int = 1,
                    workers: int | None = None, **kwargs: Any) -> Any:
    """The loader of a split, in memory or streamed: the one dispatcher of training and evaluation.

    :func:`make_stream_loader` for a :class:`StreamingImageFolder`, :func:`make_loader` for an
    :class:`ImageData`, with the same batch contract (normalised float32 batches on ``device``,
    ``len()``, ``set_epoch(e)``, ``num_samples``).

    Args:
        data: the split.
        batch_size: images per batch.
        train: shuffle and augment (training) or serve in order (evaluation).
        device: where the batches are normalised and returned.
        seed: the streaming order's seed, or the seed of the in-memory loader's generator.
        rank, world_size: this process's shard (the in-memory loader is sharded when ``world_size > 1``).
        workers: decoding workers of a stream; DataLoader workers of in-memory data that does not
            fit the device (None: each loader's default).
        **kwargs: options of the chosen builder (``drop_last``, ``channels_last``; ``flip`` and
            ``crop_padding`` for in-memory data, whose streaming counterparts are the dataset's).
    """
    if isinstance(data, StreamingImageFolder):
        if workers is not None:
            kwargs["workers"] = workers
        return make_stream_loader(data, batch_size=batch_size, train=train, device=device, rank=rank,
                                  world_size=world_size, seed=seed, **kwargs)
    if workers is not None:
        kwargs["num_workers"] = workers
    return make_loader(data, batch_size=batch_size, train=train, device=device,
                       generator=torch.Generator().manual_seed(seed),
                       distributed=(rank, world_size) if world_size > 1 else None, **kwargs)
