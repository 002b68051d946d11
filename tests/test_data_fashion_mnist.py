"""Fashion-MNIST from small idx files in the real format (gzipped and not), written by the tests."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sagemix.data import load_dataset
from sagemix.data import fashion_mnist as fm

NAMES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: two zero bytes, type 0x08 (uint8), the number of dims, big-endian int32 sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fmnist(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, seed: int = 0) -> dict:
    """Four idx files with random images and labels; returns the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for train, n in ((True, n_train), (False, n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[train] = (images, labels)
        for name, arr in zip(NAMES[train], (images, labels)):
            data = _idx_bytes(arr)
            if gz:
                with gzip.open(folder / f"{name}.gz", "wb") as f:
                    f.write(data)
            else:
                (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files_as_three_equal_channels(tmp_path: Path, gz: bool) -> None:
    arrays = write_fmnist(tmp_path, gz=gz)
    for train in (True, False):
        data = load_dataset("fashion_mnist", root=str(tmp_path), train=train)
        images, labels = arrays[train]
        assert data.images.shape == (len(labels), 3, 28, 28) and data.images.dtype == torch.uint8
        for c in range(3):  # grayscale replicated: every channel is the file's image
            assert np.array_equal(data.images[:, c].numpy(), images)
        assert np.array_equal(data.labels.numpy(), labels.astype(np.int64))
        assert data.classes == fm.FASHION_MNIST_CLASSES and data.num_classes == 10
        assert data.mean == (fm.MEAN,) * 3 and data.std == (fm.STD,) * 3


def test_pad_adds_a_black_border(tmp_path: Path) -> None:
    arrays = write_fmnist(tmp_path)
    data = load_dataset("fashion_mnist", root=str(tmp_path), train=False, pad=2)
    assert data.images.shape[-2:] == (32, 32)
    assert np.array_equal(data.images[:, 1, 2:30, 2:30].numpy(), arrays[False][0])
    border = data.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert int(border.sum()) == 0
    for bad in (-1, 1.5, True, 100):
        with pytest.raises(ValueError, match="pad"):
            load_dataset("fashion_mnist", root=str(tmp_path), pad=bad)


@pytest.mark.parametrize("sub", ["FashionMNIST/raw", "fashion-mnist"])
def test_finds_torchvision_and_debian_layouts_below_root(tmp_path: Path, sub: str) -> None:
    write_fmnist(tmp_path / sub, gz=False)
    assert fm.find_fashion_mnist(tmp_path) == tmp_path / sub
    assert len(load_dataset("fashion_mnist", root=str(tmp_path), train=False)) == 10


def test_default_root_is_the_debian_package_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fmnist(tmp_path / "debian")
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    assert len(load_dataset("fashion_mnist", train=True)) == 20


def test_missing_files_name_the_package_and_the_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nothing")
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("fashion_mnist")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and fm.OFFICIAL_URL in msg and "nothing" in msg
    (tmp_path / "partial").mkdir()
    write_fmnist(tmp_path / "partial")
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte.gz").unlink()  # three of four: not found either
    with pytest.raises(FileNotFoundError, match="t10k-labels"):
        load_dataset("fashion_mnist", root=str(tmp_path / "partial"))


@pytest.mark.parametrize("damage", ["truncated_gz", "bad_magic", "short_data"])
def test_damaged_file_is_one_clear_error(tmp_path: Path, damage: str) -> None:
    write_fmnist(tmp_path)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(target.read_bytes())
    if damage == "truncated_gz":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "bad_magic":
        target.write_bytes(gzip.compress(b"\x00\x00\x08\x09" + raw[4:]))
    else:
        target.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.*not a valid idx images file"):
        load_dataset("fashion_mnist", root=str(tmp_path))


def test_labels_and_images_must_agree(tmp_path: Path) -> None:
    write_fmnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(ValueError, match="disagree"):
        load_dataset("fashion_mnist", root=str(tmp_path), train=False)


def test_download_without_root_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nothing")
    with pytest.raises(ValueError, match="download=True needs root"):
        load_dataset("fashion_mnist", download=True)


def test_grayscale_batches_work_with_every_mixer_and_the_corruptions(tmp_path: Path) -> None:
    """The 3-equal-channel layout flows through each registered mixer and the CIFAR-C generator."""
    from sagemix import create_mixer, list_mixers

    write_fmnist(tmp_path, n_train=8, n_test=4)
    data = load_dataset("fashion_mnist", root=str(tmp_path), pad=2)
    x = data.images[:8].float() / 255
    y = data.labels[:8]
    saliency = x.mean(1) + 0.01
    for name in list_mixers():
        if name == "manifold_mixup":
            continue  # mixes hidden features inside the model, not images (covered by the training test below)
        try:
            mixer = create_mixer(name, num_classes=10, generator=torch.Generator().manual_seed(0))
        except ImportError as e:  # an extra that is not installed (CI installs them all)
            assert "sagemix[" in str(e)
            continue
        out = mixer(x, y, saliency)
        assert out.images.shape == x.shape and torch.isfinite(out.images).all()
        assert torch.allclose(out.targets.sum(1), torch.ones(8))
    corrupt = pytest.importorskip("sagemix.evaluate.corruptions").corrupt
    hwc = data.images[:4].permute(0, 2, 3, 1).numpy()
    y8 = corrupt(hwc, "gaussian_noise", 3, rng=np.random.default_rng(0))
    assert y8.shape == (4, 32, 32, 3)


@pytest.mark.parametrize("method", ["manifold_mixup", "sage"])
def test_the_recipe_trains_from_a_data_dir(tmp_path: Path, method: str) -> None:
    """``sagemix train fashion_mnist --data-dir`` end to end: the recipe's 32x32 padding, any method."""
    import json

    from sagemix.train import TrainConfig, Trainer
    from sagemix.train.config import load_recipe

    write_fmnist(tmp_path / "fm", n_train=24, n_test=8)
    cfg = load_recipe("fashion_mnist")
    cfg.update(method=method, data_dir=str(tmp_path / "fm"), epochs=1, milestones=[], device="cpu",
               model_kwargs={"width": 4}, batch_size=8, progress=False, out=str(tmp_path / "run"), threads=1)
    summary = Trainer(TrainConfig(**cfg), log=None).fit()
    assert summary["epochs_done"] == 1 and 0 <= summary["final_acc"] <= 100
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset"] == "fashion_mnist" and saved["dataset_kwargs"] == {"pad": 2}
