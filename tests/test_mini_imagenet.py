"""mini-ImageNet loader: a tiny fake copy in the real layout (CSVs + images/), splits, resizing, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sagemix.data import list_datasets, load_dataset
from sagemix.data.mini_imagenet import MINI_IMAGENET_MEAN, find_mini_imagenet_root, load_mini_imagenet

SPLIT_CLASSES = {"train": ["n01000001", "n01000003", "n01000002", "n01000004"],
                 "val": ["n02000001", "n02000002"],
                 "test": ["n03000002", "n03000001", "n03000003"]}
PER_CLASS = {"train": 6, "val": 4, "test": 5}


def _pixel_value(synset: str, k: int) -> tuple[int, int, int]:
    s = int(synset[1:]) % 97
    return (3 * s + 10 * k) % 256, (50 + k) % 256, (200 - s) % 256


def make_fake_mini_imagenet(root: Path, *, nested: bool = False) -> Path:
    """Write CSVs in the Ravi & Larochelle format and small JPEG/PNG images of mixed sizes."""
    images = root / "images"
    images.mkdir(parents=True)
    for split, classes in SPLIT_CLASSES.items():
        rows = ["filename,label"]
        for synset in classes:
            for k in range(PER_CLASS[split]):
                ext = "png" if k % 2 else "jpg"
                name = f"{synset}{k:08d}.{ext}"
                size = (84, 84) if k == 0 else (50 + 7 * k, 40 + 5 * k)  # (W, H), some non-square
                img = Image.new("RGB" if k != 3 else "L", size, _pixel_value(synset, k)[0] if k == 3
                                else _pixel_value(synset, k))
                folder = images / synset if nested else images
                folder.mkdir(exist_ok=True)
                img.save(folder / name)
                rows.append(f"{name},{synset}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    return make_fake_mini_imagenet(tmp_path_factory.mktemp("mini") / "mini-imagenet")


def test_splits_shapes_labels(fake_root):
    test = load_mini_imagenet(fake_root, split="test", workers=2)
    assert test.images.dtype == torch.uint8 and test.images.shape == (15, 3, 84, 84)
    assert test.classes == sorted(SPLIT_CLASSES["test"])
    assert torch.equal(torch.bincount(test.labels), torch.tensor([5, 5, 5]))
    assert test.mean == pytest.approx(MINI_IMAGENET_MEAN) and test.name == "mini_imagenet"
    # labels follow the sorted synset order: row order is the CSV's (n03000002 first -> label 1)
    assert test.labels[:5].tolist() == [1] * 5
    val = load_mini_imagenet(fake_root, split="val")
    assert val.images.shape == (8, 3, 84, 84) and val.num_classes == 2
    # base classes disjoint from novel ones
    train = load_mini_imagenet(fake_root, split="train", base_holdout=2)
    assert not set(train.classes) & set(test.classes) and not set(train.classes) & set(val.classes)


def test_base_holdout(fake_root):
    tr = load_mini_imagenet(fake_root, split="train", base_holdout=2)
    te = load_mini_imagenet(fake_root, split="base_test", base_holdout=2)
    assert len(tr) == 4 * 4 and len(te) == 4 * 2
    assert torch.equal(torch.bincount(tr.labels), torch.full((4,), 4))
    assert torch.equal(torch.bincount(te.labels), torch.full((4,), 2))
    assert tr.classes == te.classes
    full = load_mini_imagenet(fake_root, split="train", base_holdout=0)
    assert len(full) == 24
    # held-out images are the last rows of each class: image k=5 (a PNG of a known colour) of the first class
    c0 = tr.classes.index("n01000001")
    expected = _pixel_value("n01000001", 5)
    held = te.images[te.labels == c0]
    assert held.shape[0] == 2
    assert tuple(held[1, :, 40, 40].tolist()) == expected
    with pytest.raises(ValueError, match="base_holdout"):
        load_mini_imagenet(fake_root, split="base_test", base_holdout=0)
    with pytest.raises(ValueError, match="base_holdout"):
        load_mini_imagenet(fake_root, split="train", base_holdout=6)


def test_resize_matches_pil_bilinear(fake_root):
    test = load_mini_imagenet(fake_root, split="test", image_size=(32, 40), workers=1)
    assert test.images.shape == (15, 3, 32, 40)
    # a textured image: compare with PIL's own bilinear resize
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8))
    tmp = fake_root.parent / "tex"
    make_fake_mini_imagenet(tmp)
    name = f"{SPLIT_CLASSES['val'][0]}{1:08d}.png"
    img.save(tmp / "images" / name)
    got = load_mini_imagenet(tmp, split="val", workers=1)
    files = (tmp / "val.csv").read_text().splitlines()[1:]
    row = [r.split(",")[0] for r in files].index(name)
    ref = np.asarray(img.resize((84, 84), Image.BILINEAR))
    assert np.array_equal(got.images[row].permute(1, 2, 0).numpy(), ref)
    # an image already 84x84 is untouched, and a greyscale one becomes RGB
    k0 = [r.split(",")[0] for r in files].index(f"{SPLIT_CLASSES['val'][0]}{0:08d}.jpg")
    jpg = np.asarray(Image.open(tmp / "images" / files[k0].split(",")[0]).convert("RGB"))
    assert np.array_equal(got.images[k0].permute(1, 2, 0).numpy(), jpg)


def test_registry_and_nested_layout(tmp_path, fake_root):
    assert {"mini_imagenet", "mini_imagenet_val", "mini_imagenet_test"} <= set(list_datasets())
    a = load_dataset("mini_imagenet", root=str(fake_root.parent), split="test")  # parent folder found too
    b = load_dataset("mini_imagenet_test", root=str(fake_root))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    tr = load_dataset("mini_imagenet", root=str(fake_root), train=True, base_holdout=1)
    te = load_dataset("mini_imagenet", root=str(fake_root), train=False, base_holdout=1)
    assert len(tr) == 20 and len(te) == 4 and te.info["split"] == "base_test"
    sub = load_dataset("mini_imagenet", root=str(fake_root), split="test", classes=[2, 0])
    assert sub.classes == [a.classes[2], a.classes[0]] and len(sub) == 10
    nested = make_fake_mini_imagenet(tmp_path / "nested", nested=True)
    n = load_dataset("mini_imagenet", root=str(nested), split="test")
    assert torch.equal(n.images, a.images)


def test_missing_files_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train\.csv, val\.csv and test\.csv"):
        load_mini_imagenet(tmp_path)
    with pytest.raises(FileNotFoundError, match="images/"):
        find_mini_imagenet_root(tmp_path / "nowhere")
    root = make_fake_mini_imagenet(tmp_path / "m")
    victim = (root / "test.csv").read_text().splitlines()[3].split(",")[0]
    (root / "images" / victim).unlink()
    with pytest.raises(FileNotFoundError, match=victim):
        load_mini_imagenet(root, split="test")
    (root / "val.csv").write_text("file,class\na.jpg,n1\n")
    with pytest.raises(ValueError, match="filename,label"):
        load_mini_imagenet(root, split="val")


def test_bad_arguments(fake_root):
    with pytest.raises(ValueError, match="split"):
        load_mini_imagenet(fake_root, split="novel")
    with pytest.raises(ValueError, match="image_size"):
        load_mini_imagenet(fake_root, split="test", image_size=0)
    with pytest.raises(ValueError, match="download"):
        load_dataset("mini_imagenet", root=str(fake_root), download=True)
