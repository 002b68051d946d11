"""Tests for ImageData.data_hash (issue 14: a hash of the data recorded with a run)."""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import torch

from sagemix.data import ImageData


def _data(seed: int = 0, n: int = 6) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    return ImageData(images=torch.randint(0, 256, (n, 3, 4, 5), generator=g, dtype=torch.uint8),
                     labels=torch.arange(n) % 3, classes=["a", "b", "c"], mean=(0.5,) * 3, std=(0.2,) * 3)


def test_hash_is_the_sha256_of_images_and_labels() -> None:
    d = _data()
    h = hashlib.sha256()
    h.update(b"images(6, 3, 4, 5)|")
    h.update(d.images.numpy().tobytes())
    h.update(b"labels(6,)|")
    h.update(d.labels.numpy().astype(np.int64).tobytes())
    assert d.data_hash == h.hexdigest()[:16]
    assert len(d.data_hash) == 16 and int(d.data_hash, 16) >= 0


def test_hash_tracks_content_not_names() -> None:
    a, b = _data(), _data()
    b.name, b.classes = "other", ["x", "y", "z"]
    assert a.data_hash == b.data_hash
    assert _data(seed=1).data_hash != a.data_hash
    relabelled = dataclasses.replace(a, labels=a.labels.flip(0))
    assert relabelled.data_hash != a.data_hash  # replace() does not carry the remembered hash
    one_pixel = a.images.clone()
    one_pixel[2, 1, 3, 4] ^= 1
    assert dataclasses.replace(a, images=one_pixel).data_hash != a.data_hash
    # Same bytes in another shape is other data.
    reshaped = ImageData(images=a.images.reshape(6, 3, 5, 4), labels=a.labels, classes=a.classes,
                         mean=a.mean, std=a.std)
    assert reshaped.data_hash != a.data_hash
    assert a.select_classes(["a", "b", "c"]).data_hash == a.data_hash
    assert a.select_classes(["b"]).data_hash != a.data_hash
