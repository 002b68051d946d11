"""Tests for image decoding (every PIL mode to 8-bit RGB, clear errors) and empty class folders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sagemix.data import load_dataset
from sagemix.data.decode import ImageDecodeError, open_rgb
from sagemix.data.imagefolder import find_images


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(open_rgb(path))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 1000, 32768], [40000, 65000, 65535, 128]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode.startswith("I")  # really a 16-bit image
    out = _rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (2, 4, 3)
    expected = np.rint(values / 257.0).astype(np.uint8)
    assert np.array_equal(out[..., 0], expected) and np.array_equal(out[..., 2], expected)
    assert expected[1, 0] == 156  # 40000 / 257, where convert("RGB") would give 255


def test_other_modes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    alpha = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(grey.astype(np.int32) * 200, "I").save(tmp_path / "i.tif")
    Image.fromarray(grey.astype(np.float32), "F").save(tmp_path / "f.tif")
    pal = Image.fromarray(grey, "L").convert("P")
    pal.save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    g3 = np.repeat(grey[..., None], 3, axis=2)
    assert np.array_equal(_rgb(tmp_path / "l.png"), g3)
    assert np.array_equal(_rgb(tmp_path / "la.png"), g3)  # alpha dropped
    assert np.array_equal(_rgb(tmp_path / "rgba.png"), rgb)
    assert np.array_equal(_rgb(tmp_path / "i.tif")[..., 1], np.rint(grey.astype(np.float64) * 200 / 257.0).astype(np.uint8))
    assert np.array_equal(_rgb(tmp_path / "f.tif"), g3)  # float on the 0-255 scale
    assert np.array_equal(_rgb(tmp_path / "p.png"), np.asarray(pal.convert("RGB")))
    cmyk = _rgb(tmp_path / "cmyk.jpg")
    assert cmyk.shape == (5, 6, 3) and np.abs(cmyk.astype(int) - rgb).mean() < 12


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "text.png").write_text("this is not a png")
    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 40, 3), 7, np.uint8)).save(good)
    raw = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(raw[: len(raw) // 2])
    for name in ("text.png", "cut.png"):
        with pytest.raises(ImageDecodeError, match=rf"{name}.*truncated/damaged") as info:
            open_rgb(tmp_path / name)
        assert "\n" not in str(info.value) and isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError):
        open_rgb(tmp_path / "missing.png")


def test_imagefolder_bad_file_and_modes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(np.full((3, 3), 65535, np.uint16)).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.full((3, 3, 4), 100, np.uint8), "RGBA").save(tmp_path / "b" / "y.png")
    data = load_dataset("imagefolder", root=str(tmp_path))
    assert torch.equal(data.images[0], torch.full((3, 3, 3), 255, dtype=torch.uint8))
    assert torch.equal(data.images[1], torch.full((3, 3, 3), 100, dtype=torch.uint8))
    (tmp_path / "b" / "z.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"z\.png"):
        load_dataset("imagefolder", root=str(tmp_path))


def test_empty_class_folder(tmp_path: Path) -> None:
    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / c / "1.png")
    (tmp_path / "bird").mkdir()
    (tmp_path / "bird" / "readme.txt").write_text("no images here")
    (tmp_path / "eel").mkdir()
    with pytest.raises(ValueError, match=r"class folder '.*bird' holds no image.*1 other.*empty_classes='drop'"):
        load_dataset("imagefolder", root=str(tmp_path))
    with pytest.warns(UserWarning, match=r"dropped 2 empty class folder\(s\) \['bird', 'eel'\]"):
        data = load_dataset("imagefolder", root=str(tmp_path), empty_classes="drop")
    assert data.classes == ["cat", "dog"] and data.labels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="empty_classes must be 'error' or 'drop', got 'skip'"):
        find_images(tmp_path, empty_classes="skip")
