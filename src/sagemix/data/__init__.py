"""Datasets and the device-resident loader for sagemix.

``load_dataset(name, *, root=None, train=True, download=False, image_size=None, seed=0,
classes=None, **kw) -> ImageData`` with names ``cifar10``, ``cifar100``, ``imagefolder``,
``offline`` (and any added with ``register_dataset``); ``make_loader(data, *, batch_size, train,
device, ...)`` serves normalised, augmented batches with the data resident on the device
(the SAGE recipe, Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113, docs/SAGE.md §7).

Image sets too large for memory stream from disk: ``load_image_data(name, ..., stream="auto")``
returns an ``ImageData`` or a ``StreamingImageFolder`` (``open_image_folder``), and
``make_any_loader`` serves either with the same batch contract (``make_stream_loader`` decoding
in DataLoader workers). ``decide_stream`` is the one rule of ``stream="auto"``, and
``random_subset(data, limit, seed)`` the one seeded subset of a split.
"""
from __future__ import annotations

from .loader import EpochPlan, ImageLoader, flip_crop, make_loader
from .registry import ImageData, get_dataset_fn, list_datasets, load_dataset, random_subset, register_dataset
from .stream_loader import decide_stream, load_image_data, make_any_loader, make_stream_loader, open_image_folder
from .streaming import StreamingImageFolder, estimate_mean_std, should_stream

__all__ = ["ImageData", "load_dataset", "random_subset", "list_datasets", "register_dataset", "get_dataset_fn",
           "make_loader", "ImageLoader", "EpochPlan", "flip_crop", "load_image_data", "make_any_loader",
           "make_stream_loader", "open_image_folder", "decide_stream", "StreamingImageFolder", "estimate_mean_std", "should_stream"]
