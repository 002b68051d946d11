"""Tests for the image-folder dataset and ImageData itself, on real PNG/JPEG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sagemix.data import ImageData, load_dataset
from sagemix.data.imagefolder import image_stats


def _write(folder: Path, classes: dict[str, int], size: tuple[int, int] | list[tuple[int, int]], seed: int = 0,
           ext: str = ".png") -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {}
    i = 0
    for c, n in classes.items():
        (folder / c).mkdir(parents=True, exist_ok=True)
        out[c] = []
        for j in range(n):
            h, w = size[i % len(size)] if isinstance(size, list) else size
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / c / f"img{j:02d}{ext}")
            out[c].append(arr)
            i += 1
    (folder / next(iter(classes)) / "notes.txt").write_text("not an image")
    return out


def test_flat_folder_sorted_classes_exact_pixels(tmp_path: Path) -> None:
    ref = _write(tmp_path, {"zebra": 2, "ant": 3, "moth": 1}, (5, 7))
    data = load_dataset("imagefolder", root=str(tmp_path))
    assert data.classes == ["ant", "moth", "zebra"]
    assert data.labels.tolist() == [0, 0, 0, 1, 2, 2]
    expected = np.stack(ref["ant"] + ref["moth"] + ref["zebra"]).transpose(0, 3, 1, 2)
    assert torch.equal(data.images, torch.from_numpy(expected))
    # mean/std from the images (population std), float64 reference
    x = expected.astype(np.float64) / 255
    np.testing.assert_allclose(data.mean, x.mean((0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(data.std, x.std((0, 2, 3)), rtol=1e-9)


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2}, [(6, 6), (9, 4)])
    with pytest.raises(ValueError, match="different sizes.*image_size"):
        load_dataset("imagefolder", root=str(tmp_path))
    data = load_dataset("imagefolder", root=str(tmp_path), image_size=(8, 10))
    assert data.images.shape == (4, 3, 8, 10)
    # Resizing is PIL's bilinear resize of each RGB image.
    first = sorted((tmp_path / "a").glob("*.png"))[1]
    expected = np.array(Image.open(first).convert("RGB").resize((10, 8), Image.BILINEAR))
    assert torch.equal(data.images[1], torch.from_numpy(expected).permute(2, 0, 1))


def test_train_test_subfolders_and_stats_from_train(tmp_path: Path) -> None:
    tr = _write(tmp_path / "train", {"cat": 2, "dog": 2}, (4, 4), seed=1)
    te = _write(tmp_path / "val", {"dog": 1}, (4, 4), seed=2, ext=".jpg")
    train = load_dataset("imagefolder", root=str(tmp_path), train=True)
    test = load_dataset("imagefolder", root=str(tmp_path), train=False)
    assert train.classes == test.classes == ["cat", "dog"]
    assert test.labels.tolist() == [1]  # 'dog' keeps the training label
    assert test.mean == train.mean and test.std == train.std
    x = np.stack(tr["cat"] + tr["dog"]).astype(np.float64) / 255
    np.testing.assert_allclose(train.mean, x.mean((0, 1, 2)), rtol=1e-9)
    assert test.images.shape == (1, 3, 4, 4) and len(te["dog"]) == 1


def test_given_mean_std(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 1}, (3, 3))
    data = load_dataset("imagefolder", root=str(tmp_path), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert data.mean == (0.5, 0.5, 0.5) and data.std == (0.25, 0.25, 0.25)


def test_test_fraction_split(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 10, "b": 5}, (3, 3))
    kw = {"root": str(tmp_path), "test_fraction": 0.4, "seed": 3}
    train = load_dataset("imagefolder", train=True, **kw)
    test = load_dataset("imagefolder", train=False, **kw)
    assert torch.bincount(test.labels).tolist() == [4, 2]  # per class, stratified
    assert torch.bincount(train.labels).tolist() == [6, 3]
    assert not set(train.info["files"]) & set(test.info["files"])
    assert test.mean == train.mean
    again = load_dataset("imagefolder", train=False, **kw)
    assert again.info["files"] == test.info["files"]
    other = load_dataset("imagefolder", train=False, **{**kw, "seed": 4})
    assert other.info["files"] != test.info["files"]


def test_classes_subset_relabels(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 1, "b": 2, "c": 3}, (3, 3))
    data = load_dataset("imagefolder", root=str(tmp_path), classes=["c", "a"])
    assert data.classes == ["c", "a"] and sorted(data.labels.tolist()) == [0, 0, 0, 1]


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root is required"):
        load_dataset("imagefolder")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("imagefolder", root=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load_dataset("imagefolder", root=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("imagefolder", root=str(tmp_path), test_fraction=1.5)
    with pytest.raises(TypeError, match="image_size"):
        load_dataset("imagefolder", root=str(tmp_path), image_size="big")


def test_image_stats_matches_numpy() -> None:
    x = torch.randint(0, 256, (5, 3, 4, 6), dtype=torch.uint8)
    mean, std = image_stats(x, chunk=2)
    ref = x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean((0, 2, 3)), rtol=1e-9)
    np.testing.assert_allclose(std, ref.std((0, 2, 3)), rtol=1e-9)


def test_imagedata_validation() -> None:
    imgs = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    ok = ImageData(imgs, torch.tensor([0, 1]), ["a", "b"], (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), "t")
    assert ok.num_classes == 2 and len(ok) == 2 and ok.image_size == (4, 4)
    with pytest.raises(ValueError, match="uint8"):
        ImageData(imgs.float(), torch.tensor([0, 1]), ["a", "b"], (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(ValueError, match="labels must lie"):
        ImageData(imgs, torch.tensor([0, 2]), ["a", "b"], (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(ValueError, match="labels must be an int64"):
        ImageData(imgs, torch.tensor([0]), ["a", "b"], (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(ValueError, match="std must hold finite numbers > 0"):
        ImageData(imgs, torch.tensor([0, 1]), ["a", "b"], (0.5,) * 3, (0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="3 values"):
        ImageData(imgs, torch.tensor([0, 1]), ["a", "b"], (0.5,) * 2, (0.2,) * 3)
    with pytest.raises(ValueError, match="repeat"):
        ok.select_classes(["a", "a"])
    with pytest.raises(ValueError, match="out of range"):
        ok.select_classes([5])
