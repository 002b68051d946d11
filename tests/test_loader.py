"""Tests for sagemix.data.loader: batched flip/crop vs a per-image loop, epochs, seeds, shards."""
from __future__ import annotations

import pytest
import torch

from sagemix.data import ImageData, flip_crop, make_loader


def _data(n: int = 23, h: int = 6, w: int = 9, k: int = 5, seed: int = 0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % k
    return ImageData(images, labels, [f"c{i}" for i in range(k)], (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), "toy")


def _naive_augment(img: torch.Tensor, flip: bool, dy: int, dx: int, p: int) -> torch.Tensor:
    """One image (C, H, W): flip, zero-pad by p, crop at (dy, dx) -- explicit loops, float64."""
    c, h, w = img.shape
    src = img.double()
    out = torch.zeros(c, h, w, dtype=torch.float64)
    for ch in range(c):
        for i in range(h):
            for j in range(w):
                pi, pj = i + dy - p, j + dx - p  # position in the unpadded (flipped) image
                if 0 <= pi < h and 0 <= pj < w:
                    sj = w - 1 - pj if flip else pj
                    out[ch, i, j] = src[ch, pi, sj]
    return out


def _naive_normalise(x: torch.Tensor, data: ImageData) -> torch.Tensor:
    out = torch.empty_like(x)
    for ch in range(3):
        out[ch] = (x[ch] / 255.0 - data.mean[ch]) / data.std[ch]
    return out


@pytest.mark.parametrize("p", [0, 1, 2, 4])
def test_flip_crop_matches_loop(p: int) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (5, 3, 7, 4), generator=g, dtype=torch.uint8)
    flip = torch.rand(5, generator=g) < 0.5
    offs = torch.randint(0, 2 * p + 1, (5, 2), generator=g)
    out = flip_crop(x, flip, offs, p)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(5):
        ref = _naive_augment(x[i], bool(flip[i]), int(offs[i, 0]), int(offs[i, 1]), p)
        assert torch.equal(out[i].double(), ref)
    assert torch.equal(flip_crop(x, None, None, p), x)


def test_flip_crop_matches_torchvision() -> None:
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    x = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    flip = torch.tensor([True, False, True])
    offs = torch.tensor([[0, 4], [2, 2], [3, 1]])
    out = flip_crop(x, flip, offs, 2)
    for i in range(3):
        img = tvf.horizontal_flip(x[i]) if flip[i] else x[i]
        img = tvf.pad(img, [2, 2, 2, 2], fill=0)
        img = tvf.crop(img, int(offs[i, 0]), int(offs[i, 1]), 8, 8)
        assert torch.equal(out[i], img)


@pytest.mark.parametrize("resident", [True, False])
def test_batches_equal_naive_reference(resident: bool) -> None:
    data = _data()
    loader = make_loader(data, batch_size=4, train=True, device="cpu", resident=resident,
                         generator=torch.Generator().manual_seed(3))
    loader.set_epoch(2)
    plan = loader.plan(2)
    batches = list(loader)
    assert len(batches) == len(loader) == 6  # 23 images, batch 4 -> 5 full + 1 of 3
    assert [b[0].shape[0] for b in batches] == [4, 4, 4, 4, 4, 3]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(y, data.labels[plan.indices])
    for pos, idx in enumerate(plan.indices.tolist()):
        ref = _naive_augment(data.images[idx], bool(plan.flip[pos]), int(plan.offsets[pos, 0]),
                             int(plan.offsets[pos, 1]), 2)
        torch.testing.assert_close(x[pos].double(), _naive_normalise(ref, data), rtol=1e-5, atol=1e-5)


def test_resident_and_dataloader_paths_agree() -> None:
    data = _data(n=17)
    a = make_loader(data, batch_size=5, train=True, device="cpu", resident=True,
                    generator=torch.Generator().manual_seed(7))
    b = make_loader(data, batch_size=5, train=True, device="cpu", resident=False,
                    generator=torch.Generator().manual_seed(7))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_every_image_once_per_epoch_and_epochs_differ() -> None:
    data = _data(n=31)
    data.labels = torch.arange(31) % 5
    loader = make_loader(data, batch_size=8, train=True, device="cpu", generator=torch.Generator().manual_seed(0))
    orders = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        idx = loader.plan().indices
        assert sorted(idx.tolist()) == list(range(31))
        orders.append(idx)
        assert sum(b[1].numel() for b in loader) == 31
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    # Without set_epoch, each pass advances the epoch.
    loader.set_epoch(0)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert loader.epoch == 2
    assert torch.equal(first, data.labels[orders[0]]) and torch.equal(second, data.labels[orders[1]])


def test_same_seed_same_batches_different_seed_differs() -> None:
    data = _data()

    def run(seed: int) -> list[torch.Tensor]:
        loader = make_loader(data, batch_size=6, train=True, device="cpu",
                             generator=torch.Generator().manual_seed(seed))
        loader.set_epoch(1)
        return [x for x, _ in loader]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))


def test_eval_loader_in_order_unaugmented() -> None:
    data = _data(n=10)
    loader = make_loader(data, batch_size=4, train=False, device="cpu")
    x = torch.cat([b[0] for b in loader])
    y = torch.cat([b[1] for b in loader])
    assert len(loader) == 3
    assert torch.equal(y, data.labels)
    ref = torch.stack([_naive_normalise(data.images[i].double(), data) for i in range(10)])
    torch.testing.assert_close(x.double(), ref, rtol=1e-5, atol=1e-5)


def test_flip_only_and_crop_only_options() -> None:
    data = _data(n=9)
    lo = make_loader(data, batch_size=9, train=True, device="cpu", flip=False, crop_padding=0,
                     generator=torch.Generator().manual_seed(0))
    plan = lo.plan()
    assert plan.flip is None and plan.offsets is None
    x, _ = next(iter(lo))
    ref = torch.stack([_naive_normalise(data.images[i].double(), data) for i in plan.indices.tolist()])
    torch.testing.assert_close(x.double(), ref, rtol=1e-5, atol=1e-5)
    lo2 = make_loader(data, batch_size=9, train=True, device="cpu", flip=True, crop_padding=0,
                      generator=torch.Generator().manual_seed(0))
    assert lo2.plan().offsets is None and lo2.plan().flip is not None


@pytest.mark.parametrize("n,world", [(23, 4), (8, 2), (5, 8), (1, 3)])
def test_distributed_shards_disjoint_and_covering(n: int, world: int) -> None:
    data = _data(n=n)
    loaders = [make_loader(data, batch_size=3, train=True, device="cpu", distributed=(r, world),
                           generator=torch.Generator().manual_seed(5)) for r in range(world)]
    for lo in loaders:
        lo.set_epoch(4)
    shards = [lo.plan().indices for lo in loaders]
    per = -(-n // world)
    assert all(s.numel() == per for s in shards)  # equal sizes
    assert all(len(lo) == -(-per // 3) for lo in loaders)
    cat = torch.cat(shards)
    assert set(cat.tolist()) == set(range(n))  # covering
    if n % world == 0:  # disjoint: no position is served twice, so with no padding every index exactly once
        assert sorted(cat.tolist()) == list(range(n))
    else:  # the padding repeats the first (per * world - n) indices of the shuffled order, no more
        counts = torch.bincount(cat, minlength=n)
        assert int((counts - 1).sum()) == per * world - n and int(counts.max()) <= -(-per * world // n)
    # Positions (not indices) are disjoint: the interleaved shards rebuild one padded permutation.
    full = torch.stack(shards, 1).reshape(-1)
    assert sorted(full[:n].tolist()) == list(range(n))
    # Without generator, distributed ranks agree on the order (seed 0).
    r0 = make_loader(data, batch_size=3, train=True, device="cpu", distributed=(0, world)).plan(0).indices
    r1 = make_loader(data, batch_size=3, train=True, device="cpu", distributed=(0, world)).plan(0).indices
    assert torch.equal(r0, r1)


def test_distributed_eval_covers_exactly_once() -> None:
    data = _data(n=11)
    idx = [make_loader(data, batch_size=4, train=False, device="cpu", distributed=(r, 3)).plan().indices
           for r in range(3)]
    assert sorted(torch.cat(idx).tolist()) == list(range(11))


def test_drop_last_and_channels_last() -> None:
    data = _data(n=10)
    lo = make_loader(data, batch_size=4, train=True, device="cpu", drop_last=True, channels_last=True,
                     generator=torch.Generator().manual_seed(0))
    batches = list(lo)
    assert len(lo) == len(batches) == 2
    assert all(x.shape == (4, 3, 6, 9) for x, _ in batches)
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)


def test_batch_size_one() -> None:
    data = _data(n=3)
    lo = make_loader(data, batch_size=1, train=True, device="cpu", generator=torch.Generator().manual_seed(0))
    assert [x.shape[0] for x, _ in lo] == [1, 1, 1]


def test_bad_arguments() -> None:
    data = _data()
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(data, batch_size=0, train=True, device="cpu")
    with pytest.raises(ValueError, match="crop_padding"):
        make_loader(data, batch_size=2, train=True, device="cpu", crop_padding=-1)
    with pytest.raises(TypeError, match="data must be"):
        make_loader(data.images, batch_size=2, train=True, device="cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distributed"):
        make_loader(data, batch_size=2, train=True, device="cpu", distributed=(2, 2))
    with pytest.raises(ValueError, match="device"):
        make_loader(data, batch_size=2, train=True, device="nonsense")
    with pytest.raises(TypeError, match="train"):
        make_loader(data, batch_size=2, train=1, device="cpu")  # type: ignore[arg-type]
    lo = make_loader(data, batch_size=2, train=True, device="cpu")
    with pytest.raises(ValueError, match="epoch"):
        lo.set_epoch(-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("resident", [True, False])
def test_cuda_matches_cpu(resident: bool) -> None:
    data = _data(n=19)
    cpu = make_loader(data, batch_size=4, train=True, device="cpu", generator=torch.Generator().manual_seed(2))
    gpu = make_loader(data, batch_size=4, train=True, device="cuda", resident=resident,
                      generator=torch.Generator().manual_seed(2))
    assert gpu.resident is resident
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.device.type == "cuda" and yg.device.type == "cuda"
        torch.testing.assert_close(xg.cpu(), xc, rtol=1e-6, atol=1e-6)
        assert torch.equal(yg.cpu(), yc)
