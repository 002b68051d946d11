"""Tests for the CIFAR loaders on tiny archives in the real python-pickle format."""
from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sagemix.data import load_dataset


def _write_pickle(path: Path, obj: dict) -> None:
    # The official files were written by Python 2: str keys come back as bytes under encoding="bytes".
    path.write_bytes(pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=2))


def _make_cifar10(folder: Path, per_batch: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _write_pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": per_batch,
                                            "num_vis": 3072})
    out: dict[str, list] = {"train_x": [], "train_y": [], "test_x": [], "test_y": []}
    for fname in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        _write_pickle(folder / fname, {"batch_label": fname.encode(), "labels": y, "data": x,
                                       "filenames": [b"f.png"] * per_batch})
        split = "test" if fname == "test_batch" else "train"
        out[f"{split}_x"].append(x)
        out[f"{split}_y"].append(y)
    return {k: np.concatenate(v) for k, v in out.items()}


def _make_cifar100(folder: Path, n: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    fine = [f"class{i:03d}".encode() for i in range(100)]
    _write_pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": [b"c"] * 20})
    out = {}
    for split in ("train", "test"):
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 100, n)]
        _write_pickle(folder / split, {"filenames": [b"f"] * n, "batch_label": b"b", "fine_labels": y,
                                       "coarse_labels": [v // 5 for v in y], "data": x})
        out[f"{split}_x"], out[f"{split}_y"] = x, np.array(y)
    return out


def _tar(src: Path, dest: Path) -> None:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(src, arcname=src.name)


def _check(data, x: np.ndarray, y: np.ndarray, name: str) -> None:
    assert data.name == name
    assert data.images.dtype == torch.uint8 and data.images.shape == (len(y), 3, 32, 32)
    # Row-major 3072 = 3 x 32 x 32 (R plane, G plane, B plane), as in the official description.
    assert torch.equal(data.images, torch.from_numpy(x).view(-1, 3, 32, 32))
    assert data.images[0, 1, 2, 5] == x[0, 1024 + 2 * 32 + 5]
    assert torch.equal(data.labels, torch.as_tensor(y, dtype=torch.int64))


@pytest.mark.parametrize("layout", ["folder", "parent", "archive", "archive_parent"])
def test_cifar10_layouts(tmp_path: Path, layout: str) -> None:
    ref = _make_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    if layout == "folder":
        root = tmp_path / "src" / "cifar-10-batches-py"
    elif layout == "parent":
        root = tmp_path / "src"
    else:
        (tmp_path / "arch").mkdir()
        _tar(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "arch" / "cifar-10-python.tar.gz")
        root = tmp_path / "arch" / "cifar-10-python.tar.gz" if layout == "archive" else tmp_path / "arch"
    train = load_dataset("cifar10", root=str(root), train=True)
    test = load_dataset("cifar10", root=str(root), train=False)
    _check(train, ref["train_x"], ref["train_y"], "cifar10")
    _check(test, ref["test_x"], ref["test_y"], "cifar10")
    assert train.classes[0] == "airplane" and train.num_classes == 10
    torch.testing.assert_close(torch.tensor(train.mean), torch.tensor([125.3, 123.0, 113.9]) / 255)
    torch.testing.assert_close(torch.tensor(train.std), torch.tensor([63.0, 62.1, 66.7]) / 255)


@pytest.mark.parametrize("archive", [False, True])
def test_cifar100_fine_labels(tmp_path: Path, archive: bool) -> None:
    ref = _make_cifar100(tmp_path / "cifar-100-python")
    root = tmp_path
    if archive:
        _tar(tmp_path / "cifar-100-python", tmp_path / "c100.tar.gz")
        root = tmp_path / "c100.tar.gz"
    for train in (True, False):
        split = "train" if train else "test"
        data = load_dataset("cifar100", root=str(root), train=train)
        _check(data, ref[f"{split}_x"], ref[f"{split}_y"], "cifar100")
        assert data.num_classes == 100 and data.classes[7] == "class007"
        torch.testing.assert_close(torch.tensor(data.mean), torch.tensor([129.3, 124.1, 112.4]) / 255)


def test_classes_subset_relabels(tmp_path: Path) -> None:
    ref = _make_cifar10(tmp_path / "cifar-10-batches-py", per_batch=8)
    data = load_dataset("cifar10", root=str(tmp_path), classes=["cat", "airplane"])
    keep = np.isin(ref["train_y"], [3, 0])
    assert data.classes == ["cat", "airplane"]
    assert torch.equal(data.images, torch.from_numpy(ref["train_x"][keep]).view(-1, 3, 32, 32))
    assert torch.equal(data.labels, torch.from_numpy(np.where(ref["train_y"][keep] == 3, 0, 1)))
    by_index = load_dataset("cifar10", root=str(tmp_path), classes=[3, 0])
    assert torch.equal(by_index.labels, data.labels)
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        load_dataset("cifar10", root=str(tmp_path), classes=["zebra"])


def test_image_size_resizes(tmp_path: Path) -> None:
    _make_cifar10(tmp_path / "cifar-10-batches-py")
    data = load_dataset("cifar10", root=str(tmp_path), train=False, image_size=(40, 24))
    assert data.images.shape == (3, 3, 40, 24) and data.images.dtype == torch.uint8


def test_missing_files_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cifar-10-batches-py.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="cifar-100-python"):
        load_dataset("cifar100", root=str(tmp_path))


def test_download_failure_says_where_to_put_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    with pytest.raises(RuntimeError, match=r"could not download cifar10.*copy cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=str(tmp_path), download=True)


def test_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'cifar11'"):
        load_dataset("cifar11")


def test_crafted_pickle_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _make_cifar10(folder)
    marker = tmp_path / "pwned"
    # A protocol-0 pickle that calls os.system (posix.system) when loaded by plain pickle.loads.
    crafted = f"cposix\nsystem\n(S'touch {marker}'\ntR.".encode()
    (folder / "batches.meta").write_bytes(crafted)
    with pytest.raises(ValueError, match=r"batches\.meta.*posix\.system is not allowed"):
        load_dataset("cifar10", root=str(folder))
    assert not marker.exists()  # refused before anything ran
    # Other callables are refused too (builtins.eval via protocol 4's STACK_GLOBAL).
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": eval}, protocol=4))
    with pytest.raises(ValueError, match="builtins.eval is not allowed"):
        load_dataset("cifar10", root=str(folder))


def test_numpy1_style_pickles_load(tmp_path: Path) -> None:
    # Files written by numpy 1.x (as the official ones) name numpy.core.multiarray._reconstruct.
    folder = tmp_path / "cifar-10-batches-py"
    ref = _make_cifar10(folder)
    for f in folder.iterdir():
        raw = f.read_bytes()
        assert b"numpy._core.multiarray" in raw or f.name == "batches.meta"
        f.write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert b"numpy.core.multiarray\n" in (folder / "data_batch_1").read_bytes()
    _check(load_dataset("cifar10", root=str(folder)), ref["train_x"], ref["train_y"], "cifar10")


@pytest.mark.parametrize("cut", [0, 10, 2000])
def test_truncated_batch_names_the_file(tmp_path: Path, cut: int) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _make_cifar10(folder, per_batch=2)
    raw = (folder / "data_batch_1").read_bytes()
    (folder / "data_batch_1").write_bytes(raw[:cut])
    with pytest.raises(ValueError, match=r"data_batch_1.*(truncated|damaged)"):
        load_dataset("cifar10", root=str(folder))
    # In an archive, the message names the archive and the member.
    (folder / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    _tar(folder, tmp_path / "cifar-10-python.tar.gz")
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz:data_batch_1.*(truncated|damaged)"):
        load_dataset("cifar10", root=str(tmp_path / "cifar-10-python.tar.gz"))
