"""Tests for the streaming image folder: pixels and labels as the in-memory dataset, transforms,
sharding, bad files, the stream choice, the seeded subset and the JPEG-folder writer, on small generated files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sagemix.data import ImageData, decide_stream, load_dataset, make_loader, random_subset
from sagemix.data.imagefolder import image_stats
from sagemix.data.layouts import FileIndex, scan_layout
from sagemix.data.stream_loader import (ShardBatchSampler, load_image_data, make_any_loader, make_stream_loader,
                                        open_image_folder)
from sagemix.data.streaming import (StreamingImageFolder, estimate_mean_std, random_resized_crop_box,
                                    resolve_stream, should_stream)
from sagemix.data.synthetic import make_jpeg_folder


def _folder(root: Path, sizes: list[tuple[int, int]], classes: tuple[str, ...] = ("b", "a", "c"),
            seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for i, (h, w) in enumerate(sizes):
        d = root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")
    return root


def _indexed(root: Path, n: int, classes: int = 3, size: int = 6) -> Path:
    """PNGs of constant colour i (one per file): the pixel value tells which file a sample is."""
    for i in range(n):
        d = root / f"c{i % classes}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((size, size, 3), i, np.uint8)).save(d / f"{i:03d}.png")
    return root


def _ids(x: torch.Tensor) -> list[int]:
    return x[:, 0, 0, 0].tolist()


def test_same_labels_and_pixels_as_in_memory(tmp_path: Path) -> None:
    root = _folder(tmp_path, [(9, 7), (12, 12), (5, 11), (8, 8), (10, 6), (7, 9), (6, 6)])
    mem = load_dataset("imagefolder", root=str(root), image_size=(8, 10))
    ds = open_image_folder(root, train=False, image_size=(8, 10), crop_ratio=None, stats_sample=1000)
    assert ds.classes == mem.classes == ["a", "b", "c"]
    assert torch.equal(ds.labels, mem.labels)
    assert torch.equal(torch.stack([ds[i][0] for i in range(len(ds))]), mem.images)
    # the estimate over a sample covering the whole set is the in-memory statistics
    np.testing.assert_allclose(ds.mean, mem.mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std, mem.std, rtol=1e-12)
    # the loader's normalised eval batches equal make_loader's
    data = ImageData(images=mem.images, labels=mem.labels, classes=mem.classes, mean=ds.mean, std=ds.std)
    ref = list(make_loader(data, batch_size=3, train=False, device="cpu"))
    got = list(make_stream_loader(ds, batch_size=3, train=False, device="cpu", workers=0))
    assert len(got) == len(ref) == 3
    for (x, y), (rx, ry) in zip(got, ref):
        assert x.dtype == torch.float32 and torch.allclose(x, rx, atol=1e-6) and torch.equal(y, ry)


def test_centre_crop_eval_transform(tmp_path: Path) -> None:
    arr = np.random.default_rng(1).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    (tmp_path / "k").mkdir()
    Image.fromarray(arr).save(tmp_path / "k" / "x.png")
    same = open_image_folder(tmp_path, train=False, image_size=(12, 20), crop_ratio=1.0)[0][0]
    assert torch.equal(same, torch.from_numpy(arr).permute(2, 0, 1))  # no resize, no crop
    crop = open_image_folder(tmp_path, train=False, image_size=(8, 8), crop_ratio=1.0)[0][0]
    # shorter side 12 -> 8: resize to 8 x 13, centre crop columns 2..10
    ref = np.asarray(Image.fromarray(arr).resize((13, 8), Image.BILINEAR))[:, 2:10]
    assert torch.equal(crop, torch.from_numpy(ref.copy()).permute(2, 0, 1))


def test_random_resized_crop_box() -> None:
    rng = np.random.default_rng(0)
    areas = []
    for _ in range(300):
        left, top, w, h = random_resized_crop_box(40, 30, rng)
        assert 0 <= left and left + w <= 40 and 0 <= top and top + h <= 30 and w > 0 and h > 0
        areas.append(w * h / 1200)
    assert min(areas) < 0.2 and max(areas) > 0.8
    # impossible draws (scale > 1 of a thin image) fall back to the centre crop with a clamped ratio
    assert random_resized_crop_box(100, 10, rng, scale=(1.0, 1.0), ratio=(1.0, 1.0)) == (45, 0, 10, 10)


def test_training_draws_are_seeded_not_worker_dependent(tmp_path: Path) -> None:
    root = make_jpeg_folder(tmp_path / "j", 12, (20, 24), classes=3, seed=1)
    ds = open_image_folder(root, train=True, image_size=16, mean=(0.5,) * 3, std=(0.25,) * 3)
    runs = []
    for workers in (0, 2):
        loader = make_stream_loader(ds, batch_size=5, train=True, device="cpu", workers=workers, seed=7)
        assert len(loader) == 3
        loader.set_epoch(3)
        runs.append(list(loader))
    for (x0, y0), (x1, y1) in zip(*runs):
        assert torch.equal(x0, x1) and torch.equal(y0, y1)
    loader = make_stream_loader(ds, batch_size=5, train=True, device="cpu", workers=0, seed=7)
    loader.set_epoch(4)
    other = list(loader)
    assert not torch.equal(other[0][0], runs[0][0][0])
    assert ds[(0, 5)][0].shape == (3, 16, 16) and torch.equal(ds[(0, 5)][0], ds[(0, 5)][0])


@pytest.mark.parametrize("n,world", [(12, 3), (10, 4), (7, 2)])
def test_sharding_covers_every_index(n: int, world: int) -> None:
    for epoch in (0, 1):
        shards = []
        for rank in range(world):
            s = ShardBatchSampler(n, 3, train=True, rank=rank, world_size=world, seed=11)
            s.set_epoch(epoch)
            shards.append([i for batch in s for i, _ in batch])
        flat = sum(shards, [])
        assert len({len(sh) for sh in shards}) == 1 and len(flat) == -(-n // world) * world
        assert sorted(set(flat)) == list(range(n))  # every index; repeats only for the padding
        if n % world == 0:
            assert sorted(flat) == list(range(n))  # exactly once
        ev = [[i for b in ShardBatchSampler(n, 3, train=False, rank=r, world_size=world) for i, _ in b]
              for r in range(world)]
        assert sorted(sum(ev, [])) == list(range(n))
    a, b = ShardBatchSampler(n, 3, train=True, seed=11), ShardBatchSampler(n, 3, train=True, seed=11)
    b.set_epoch(1)
    assert [i for x in a for i, _ in x] != [i for x in b for i, _ in x]


def _ddp_worker(rank: int, world: int, root: str, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        ds = open_image_folder(root, train=True, image_size=6, mean=(0.5,) * 3, std=(0.25,) * 3)
        loader = make_stream_loader(ds, batch_size=4, train=True, device="cpu", rank=rank, world_size=world,
                                    seed=5, workers=0)
        loader.set_epoch(2)
        mine = [round(v * 0.25 * 255 + 0.5 * 255) for x, _ in loader for v in x[:, 0, 0, 0].tolist()]
        gathered: list = [None] * world
        dist.all_gather_object(gathered, mine)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_shards(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    root = _indexed(tmp_path / "d", 16)
    out = tmp_path / "shards.pt"
    mp.spawn(_ddp_worker, args=(2, str(root), f"file://{tmp_path / 'rdv'}", str(out)), nprocs=2, join=True)
    shards = torch.load(out)
    assert len(shards[0]) == len(shards[1]) == 8
    assert not set(shards[0]) & set(shards[1]) and sorted(shards[0] + shards[1]) == list(range(16))


def _imagenet(root: Path, flat_val: str | None) -> None:
    for k, wnid in enumerate(("n02", "n01")):
        for j in range(2):
            d = root / "train" / wnid
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((6, 6, 3), 10 * k + j, np.uint8)).save(d / f"{wnid}_{j}.JPEG")
    val = root / "val"
    val.mkdir()
    names = ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000003.JPEG"]
    wnids = ["n02", "n01", "n02"]
    if flat_val is None:
        for name, w in zip(names, wnids):
            (val / w).mkdir(exist_ok=True)
            Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(val / w / name)
        return
    for name in names:
        Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(val / name)
    if flat_val == "csv":
        rows = [f"{n[:-5]},{w} 1 2 3 4" for n, w in zip(names, wnids)]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    else:
        (val / "val_labels.txt").write_text("".join(f"{n}\t{w}\n" for n, w in zip(names, wnids)))


@pytest.mark.parametrize("flat_val", [None, "csv", "txt"])
def test_imagenet_layout(tmp_path: Path, flat_val: str | None) -> None:
    _imagenet(tmp_path, flat_val)
    tr = scan_layout(tmp_path, train=True)
    va = scan_layout(tmp_path, train=False)
    assert tr.classes == va.classes == ("n01", "n02")
    assert tr.layout == va.layout == ("imagefolder" if flat_val is None else "imagenet")
    assert [tr.relpath(i) for i in range(len(tr))][0] == "train/n01/n01_0.JPEG" and tr.labels.tolist() == [0, 0, 1, 1]
    assert sorted(zip([Path(va.relpath(i)).name for i in range(3)], va.labels.tolist())) == \
        [("ILSVRC2012_val_00000001.JPEG", 1), ("ILSVRC2012_val_00000002.JPEG", 0), ("ILSVRC2012_val_00000003.JPEG", 1)]
    ds = open_image_folder(tmp_path, train=False, image_size=4)
    assert ds.mean == (0.485, 0.456, 0.406) or flat_val is None  # ImageNet's constants for the ImageNet layout


def test_imagenet_flat_val_without_labels(tmp_path: Path) -> None:
    _imagenet(tmp_path, "txt")
    (tmp_path / "val" / "val_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="no labels file.*val_labels="):
        scan_layout(tmp_path, train=False)
    (tmp_path / "mine.txt").write_text("ILSVRC2012_val_00000001.JPEG n01\n")
    with pytest.raises(ValueError, match="ILSVRC2012_val_00000002.JPEG' has no label"):
        scan_layout(tmp_path, train=False, val_labels=tmp_path / "mine.txt")


def test_tiny_imagenet_layout(tmp_path: Path) -> None:
    wnids = ["n09", "n03"]
    (tmp_path / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        d = tmp_path / "train" / w / "images"
        d.mkdir(parents=True)
        for j in range(3):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d / f"{w}_{j}.JPEG")
        (tmp_path / "train" / w / f"{w}_boxes.txt").write_text(f"{w}_0.JPEG\t0\t0\t8\t8\n")
    (tmp_path / "val" / "images").mkdir(parents=True)
    ann = []
    for i, w in enumerate(["n09", "n03", "n03"]):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "val" / "images" / f"val_{i}.JPEG")
        ann.append(f"val_{i}.JPEG\t{w}\t0\t0\t8\t8")
    (tmp_path / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    tr, va = scan_layout(tmp_path, train=True), scan_layout(tmp_path, train=False)
    assert tr.layout == va.layout == "tiny_imagenet" and tr.classes == ("n03", "n09")
    assert len(tr) == 6 and tr.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert va.labels.tolist() == [1, 0, 0] and va.relpath(0) == "val/images/val_0.JPEG"
    ds = load_image_data("tiny_imagenet", root=tmp_path, train=False, image_size=8, stream="true")
    assert isinstance(ds, StreamingImageFolder) and ds[2][1] == 0 and ds.mean == (0.485, 0.456, 0.406)
    # one rule (decide_stream) for "auto": a small Tiny-ImageNet streams, as it has no in-memory loader
    assert decide_stream("tiny_imagenet", tmp_path, "auto", budget_bytes=10 ** 9) is True
    small = load_image_data("tiny_imagenet", root=tmp_path, train=False, image_size=8, stream="auto",
                            budget_bytes=10 ** 9)
    assert isinstance(small, StreamingImageFolder) and len(small) == 3
    for ask in (lambda: decide_stream("tiny_imagenet", tmp_path, False),
                lambda: load_image_data("tiny_imagenet", root=tmp_path, train=False, stream="false")):
        with pytest.raises(ValueError, match="'tiny_imagenet' is only available streamed: pass stream=true"):
            ask()


def test_file_index_is_compact_and_hashable(tmp_path: Path) -> None:
    root = _indexed(tmp_path, 30)
    idx = scan_layout(root)
    assert isinstance(idx, FileIndex) and len(idx) == 30
    per_file = (idx.blob.nbytes + idx.offsets.nbytes + idx.labels.nbytes) / len(idx)
    assert per_file < 40  # "c0/000.png" (10 bytes) + offset + label: no object per file
    assert idx.path(0) == str(root / "c0" / "000.png")
    ds = open_image_folder(root, train=False, image_size=6, mean=(0.5,) * 3, std=(0.25,) * 3)
    sub = idx.subset(list(range(29, -1, -1)))
    assert sub.digest() == idx.digest() == ds.data_hash and ds.info["sha256"] == ds.data_hash
    relabel = FileIndex(idx.root, idx.blob, idx.offsets, (idx.labels + 1) % 3, idx.classes, idx.layout, idx.split)
    assert relabel.digest() != idx.digest()


def test_bad_files_in_workers(tmp_path: Path) -> None:
    root = _indexed(tmp_path, 6)
    (root / "c1" / "zz_bad.png").write_text("not a png")
    ds = open_image_folder(root, train=False, image_size=6, mean=(0.5,) * 3, std=(0.25,) * 3)
    with pytest.raises(ValueError, match=r"zz_bad\.png"):
        list(make_stream_loader(ds, batch_size=7, train=False, device="cpu", workers=1))
    skip = open_image_folder(root, train=False, image_size=6, mean=(0.5,) * 3, std=(0.25,) * 3, bad_files="skip")
    bad = [i for i in range(len(skip)) if skip.index.relpath(i).endswith("zz_bad.png")][0]
    with pytest.warns(UserWarning, match=r"skipping a bad image file.*zz_bad\.png"):
        x, y = skip[bad]
    assert int(x[0, 0, 0]) == 2 and y == 2  # replaced by the next file of the index (c2/002.png)


def test_stream_choice(tmp_path: Path) -> None:
    assert should_stream(1000, 32, budget_bytes=1000 * 3 * 32 * 32) is False
    assert should_stream(1001, (32, 32), budget_bytes=1000 * 3 * 32 * 32) is True
    assert resolve_stream("auto") is None and resolve_stream("TRUE") is True and resolve_stream(False) is False
    with pytest.raises(ValueError, match="stream must be 'auto', true or false, got 'maybe'"):
        resolve_stream("maybe")
    root = _indexed(tmp_path, 9)
    small = load_image_data("imagefolder", root=root, train=False, image_size=6, stream="auto", budget_bytes=10 ** 6)
    big = load_image_data("imagefolder", root=root, train=False, image_size=6, stream="auto", budget_bytes=100)
    assert isinstance(small, ImageData) and isinstance(big, StreamingImageFolder)
    assert torch.equal(small.labels, big.labels)
    loaders = [make_any_loader(d, batch_size=4, train=False, device="cpu", workers=0) for d in (small, big)]
    assert [len(ld) for ld in loaders] == [3, 3]
    with pytest.raises(ValueError, match="stream=true needs an image-folder dataset"):
        load_image_data("cifar10", stream=True)


def test_estimate_mean_std_is_a_seeded_sample(tmp_path: Path) -> None:
    root = _folder(tmp_path, [(6, 6)] * 12)
    probe = open_image_folder(root, train=False, image_size=6, crop_ratio=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    a = estimate_mean_std(probe, n=5, seed=1)
    assert a == estimate_mean_std(probe, n=5, seed=1) and a != estimate_mean_std(probe, n=5, seed=2)
    pick = torch.randperm(12, generator=torch.Generator().manual_seed(1))[:5].sort().values.tolist()
    assert a == image_stats(torch.stack([probe[i][0] for i in pick]))


def test_make_jpeg_folder(tmp_path: Path) -> None:
    root = make_jpeg_folder(tmp_path / "j", 7, (10, 12), classes=3, seed=2)
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == 7 and sorted({f.parent.name for f in files}) == ["class_000", "class_001", "class_002"]
    with Image.open(files[0]) as im:
        assert im.size == (12, 10) and im.format == "JPEG"
    first = files[0].read_bytes()
    make_jpeg_folder(tmp_path / "j", 7, (10, 12), classes=3, seed=2)
    assert files[0].read_bytes() == first
    with pytest.raises(ValueError, match="classes must be <= n=2"):
        make_jpeg_folder(tmp_path / "k", 2, 8, classes=3)
    with pytest.raises(ValueError, match="processes must be an int >= 1, got 0"):
        make_jpeg_folder(tmp_path / "k", 4, 8, classes=2, processes=0)


def test_make_jpeg_folder_processes_write_seeded_slices(tmp_path: Path) -> None:
    # two processes write files [0, 3) with seed 5 and [3, 7) with seed 6: the same as two one-process slices
    par = make_jpeg_folder(tmp_path / "p", 7, 8, classes=3, seed=5, processes=2)
    make_jpeg_folder(tmp_path / "s", 3, 8, classes=3, seed=5)
    make_jpeg_folder(tmp_path / "s", 4, 8, classes=3, seed=6, start=3)
    names = sorted(f.relative_to(par).as_posix() for f in par.rglob("*.jpg"))
    assert len(names) == 7 and "class_000/000006.jpg" in names
    assert all((par / n).read_bytes() == (tmp_path / "s" / n).read_bytes() for n in names)


def test_random_subset_is_one_rule_for_both_kinds(tmp_path: Path) -> None:
    root = _indexed(tmp_path, 12)
    mem = load_dataset("imagefolder", root=str(root), train=True, test_fraction=None)
    streamed = open_image_folder(root, train=False, image_size=6, crop_ratio=None, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert torch.equal(mem.labels, streamed.labels)
    a, b = random_subset(mem, 5, seed=3), random_subset(streamed, 5, seed=3)
    pick = torch.randperm(12, generator=torch.Generator().manual_seed(3))[:5].sort().values
    assert torch.equal(a.images, mem.images[pick]) and torch.equal(b.labels, mem.labels[pick])
    assert _ids(a.images) == [int(b[i][0][0, 0, 0]) for i in range(5)]  # the same files, in their order
    assert b.index.split.endswith("[5]") and b.data_hash != streamed.data_hash and a.data_hash != mem.data_hash
    assert random_subset(mem, None) is mem and random_subset(streamed, 12) is streamed
    assert _ids(random_subset(mem, 5, seed=4).images) != _ids(a.images)
    with pytest.raises(ValueError, match="limit must be a positive int or None, got 0"):
        random_subset(mem, 0)


