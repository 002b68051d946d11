"""Datasets and the device-resident loader for sagemix.

``load_dataset(name, *, root=None, train=True, download=False, image_size=None, seed=0,
classes=None, **kw) -> ImageData`` with names ``cifar10``, ``cifar100``, ``imagefolder``,
``offline`` (and any added with ``register_dataset``); ``make_loader(data, *, batch_size, train,
device, ...)`` serves normalised, augmented batches with the data resident on the device
(the SAGE recipe, Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113, section 7).
"""
from __future__ import annotations

from .loader import EpochPlan, ImageLoader, flip_crop, make_loader
from .registry import ImageData, get_dataset_fn, list_datasets, load_dataset, register_dataset

__all__ = ["ImageData", "load_dataset", "list_datasets", "register_dataset", "get_dataset_fn",
           "make_loader", "ImageLoader", "EpochPlan", "flip_crop"]
