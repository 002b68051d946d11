"""Puzzle Mix at large image sizes: the relative transport cell, devices, layouts, one transfer."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("gco")

from sagemix.functional.puzzlemix import puzzle_mix, transport_cell  # noqa: E402
from sagemix.mixers.puzzlemix import PuzzleMix  # noqa: E402


def test_transport_cell_rules():
    # "auto" is the research code's 4 px cell up to 39 px images ...
    for size in (8, 16, 32, 36):
        for block in (1, 2, 4, 8, 16):
            if size % block == 0 or block <= size:
                cell = (block, block)
                assert transport_cell(size, size, cell, "auto") == transport_cell(size, size, cell, 4)
    # ... and 1/8 of the side beyond: at most an 8 x 8 grid, or the block grid when that is finer.
    assert transport_cell(224, 224, (14, 14)) == (14, 14)
    assert transport_cell(224, 224, (112, 112)) == (28, 28)
    assert transport_cell(64, 64, (32, 32)) == (8, 8)
    assert transport_cell(224, 224, (56, 56), "block") == (56, 56)
    assert transport_cell(224, 224, (14, 14), 4) == (2, 2)
    for bad in (0, -1, 2.5, "fine", True):
        with pytest.raises(ValueError, match="t_size"):
            transport_cell(32, 32, (4, 4), bad)
    with pytest.raises(ValueError, match="t_size"):
        PuzzleMix(num_classes=3, t_size="fine")


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_cifar_behaviour_unchanged(n):
    g = torch.Generator().manual_seed(n)
    x, s = torch.randn(4, 3, 32, 32, generator=g), torch.rand(4, 32, 32, generator=g)
    idx = torch.tensor([2, 3, 0, 1])
    kw = dict(grid_size=n, mean=[0.5] * 3, std=[0.25] * 3)
    a = puzzle_mix(x, s, idx, 0.4, **kw)               # default: "auto"
    b = puzzle_mix(x, s, idx, 0.4, t_size=4, **kw)     # the research code's CIFAR cell
    assert torch.equal(a.images, b.images) and torch.equal(a.lam, b.lam)


def test_224_grid16_is_bounded_and_differs_only_in_transport_cell():
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(2, 3, 224, 224, generator=g), torch.rand(2, 224, 224, generator=g)
    idx = torch.tensor([1, 0])
    out = puzzle_mix(x, s, idx, 0.5, grid_size=16, mean=[0.5] * 3, std=[0.25] * 3)
    assert out.images.shape == x.shape and out.mask.shape == (2, 16, 16)
    # with the relative cell the transport grid is the 16 x 16 block grid (one cell per block), so
    # each mixed block is a block of one of the two images, moved whole.
    blk = out.images.reshape(2, 3, 16, 14, 16, 14)
    src = torch.cat([x, x[idx]]).reshape(4, 3, 16, 14, 16, 14).permute(0, 2, 4, 1, 3, 5).reshape(4, 256, -1)
    z = out.mask
    for b in range(2):
        for i in range(16):
            for j in range(16):
                if z[b, i, j] in (0.0, 1.0):
                    v = blk[b, :, i, :, j, :].reshape(-1)
                    assert ((src == v).all(-1) | (v == 0).all()).any()


def test_channels_last_is_preserved():
    g = torch.Generator().manual_seed(1)
    x, s = torch.randn(4, 3, 16, 16, generator=g), torch.rand(4, 16, 16, generator=g)
    xl = x.contiguous(memory_format=torch.channels_last)
    out = PuzzleMix(num_classes=4, grid_sizes=(4,), generator=torch.Generator().manual_seed(0))(xl, torch.arange(4), s)
    ref = PuzzleMix(num_classes=4, grid_sizes=(4,), generator=torch.Generator().manual_seed(0))(x, torch.arange(4), s)
    assert out.images.is_contiguous(memory_format=torch.channels_last)
    assert ref.images.is_contiguous()
    torch.testing.assert_close(out.images, ref.images)


def test_one_transfer_each_way(cpu_transfers):
    """The graph-cut inputs leave the images' device in one .cpu() call per batch."""
    x, s = torch.randn(8, 3, 32, 32), torch.rand(8, 32, 32)
    puzzle_mix(x, s, torch.randperm(8), 0.5, grid_size=8, mean=[0.5] * 3, std=[0.25] * 3)
    big = [c for c in cpu_transfers if len(c) >= 2 and c[0] == 8]
    assert len(big) == 1, cpu_transfers


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_saliency_on_another_device_cuda():
    x, s = torch.randn(4, 3, 16, 16, device="cuda"), torch.rand(4, 16, 16)
    mixer = PuzzleMix(num_classes=4, grid_sizes=(4,), generator=torch.Generator().manual_seed(0))
    out = mixer(x, torch.arange(4, device="cuda"), s)
    ref = PuzzleMix(num_classes=4, grid_sizes=(4,), generator=torch.Generator().manual_seed(0))
    out_cpu = ref(x.cpu(), torch.arange(4), s)
    assert out.images.device.type == "cuda"
    torch.testing.assert_close(out.images.cpu(), out_cpu.images, atol=1e-5, rtol=1e-5)


def test_saliency_on_another_device_meta_images_rejected_cleanly():
    """Saliency on another device than the images is moved, not a device-mismatch crash: checked with
    float64 saliency on CPU for float32 images (same code path: ``saliency.to(images.device)``)."""
    x, s = torch.randn(4, 3, 16, 16), torch.rand(4, 16, 16, dtype=torch.float64)
    mixer = PuzzleMix(num_classes=4, grid_sizes=(4,), generator=torch.Generator().manual_seed(0))
    out = mixer(x, torch.arange(4), s)
    assert out.images.dtype == torch.float32 and torch.isfinite(out.images).all()
