"""Cutout: the hole kernel against a naive loop, and the mixer's properties."""
from __future__ import annotations

import pytest
import torch

from sagemix import create_mixer
from sagemix.functional.boxes import erase_boxes
from sagemix.mixers.cutout import Cutout


def _naive_erase(x: torch.Tensor, boxes: torch.Tensor, value: float) -> torch.Tensor:
    out = x.double().clone()
    b, _, h, w = x.shape
    for i in range(b):
        x0, y0, x1, y1 = (int(v) for v in boxes[i if boxes.shape[0] > 1 else 0])
        for r in range(h):
            for c in range(w):
                if y0 <= r < y1 and x0 <= c < x1:
                    out[i, :, r, c] = value
    return out


@pytest.mark.parametrize("shared", [True, False])
def test_erase_boxes_matches_naive(shared):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 7, 10, generator=g)
    boxes = torch.tensor([[1, 2, 4, 6], [0, 0, 10, 7], [3, 3, 3, 5], [8, 5, 10, 7], [0, 6, 2, 7]])
    boxes = boxes[:1] if shared else boxes
    got = erase_boxes(x, boxes, -1.5)
    assert torch.equal(got.double(), _naive_erase(x, boxes, -1.5))


def _holes(out: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool: pixels zero in every channel (the test images have no zeros of their own)."""
    return (out == 0).all(dim=1)


@pytest.mark.parametrize("b,h,w", [(1, 20, 20), (7, 12, 30), (4, 32, 16)])
@pytest.mark.parametrize("per_sample", [False, True])
def test_hole_is_clipped_square_zero_filled_and_labels_unchanged(b, h, w, per_sample):
    g = torch.Generator().manual_seed(b + h)
    x = torch.rand(b, 3, h, w, generator=g) + 0.5  # no zeros anywhere
    y = torch.arange(b) % 4
    out = Cutout(size=8, per_sample=per_sample, num_classes=4, generator=g)(x, y)
    assert out.images.shape == x.shape and out.images.dtype == x.dtype
    assert torch.equal(out.lam, torch.ones(b)) and torch.equal(out.index, torch.arange(b))
    assert torch.equal(out.targets, torch.nn.functional.one_hot(y, 4).float())
    holes = _holes(out.images)
    boxes = out.extras["boxes"]
    for i in range(b):
        x0, y0, x1, y1 = boxes[i].tolist()
        assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
        assert x1 - x0 <= 8 and y1 - y0 <= 8
        if 0 < x0 and x1 < w:
            assert x1 - x0 == 8  # unclipped side is exactly `size`
        if 0 < y0 and y1 < h:
            assert y1 - y0 == 8
        m = torch.zeros(h, w, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        assert torch.equal(holes[i], m)
        assert torch.equal(out.images[i][:, ~m], x[i][:, ~m])
        assert abs(float(out.extras["erased"][i]) - m.double().mean().item()) < 1e-6
    if not per_sample:
        assert bool((boxes == boxes[0]).all())


def test_centre_uniform_and_per_sample_positions_differ():
    g = torch.Generator().manual_seed(1)
    m = Cutout(size=4, per_sample=True, generator=g, num_classes=2)
    x = torch.ones(64, 1, 10, 10)
    centres = []
    for _ in range(40):
        boxes = m(x, torch.zeros(64, dtype=torch.long)).extras["boxes"]
        # recover the centre row from the box: y0 = cy - 2 unless clipped at the top
        cy = torch.where(boxes[:, 1] > 0, boxes[:, 1] + 2, boxes[:, 3] - 2)
        centres.append(cy)
    counts = torch.bincount(torch.cat(centres), minlength=10)
    assert counts.shape[0] == 10 and counts.min() > 180 and counts.max() < 340  # 256 expected each
    one = m(x, torch.zeros(64, dtype=torch.long)).extras["boxes"]
    assert len({tuple(b) for b in one.tolist()}) > 20


def test_hole_larger_than_image_erases_everything_and_default_size():
    out = Cutout(size=50, num_classes=2)(torch.ones(2, 3, 6, 9), torch.tensor([0, 1]))
    assert bool((out.images == 0).all()) and torch.allclose(out.extras["erased"], torch.ones(2))
    assert Cutout().size == 16
    assert create_mixer("cutout", size=8).size == 8


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_no_in_place(dtype):
    x = (torch.rand(3, 3, 12, 12) + 0.5).to(dtype)
    x0 = x.clone()
    out = Cutout(size=6, num_classes=3, generator=torch.Generator().manual_seed(0))(x, torch.tensor([0, 1, 2]))
    assert out.images.dtype == dtype and torch.equal(x, x0)
    assert torch.equal(out.images.double(), _naive_erase(x, out.extras["boxes"], 0.0))


def test_prob_and_bad_arguments():
    x = torch.rand(2, 3, 8, 8) + 0.5
    off = Cutout(prob=0.0, num_classes=2)(x, torch.tensor([0, 1]))
    assert torch.equal(off.images, x) and off.extras["applied"] is False
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="size"):
            Cutout(size=bad)
    with pytest.raises(ValueError, match="prob"):
        Cutout(prob=2)
    with pytest.raises(ValueError, match="value"):
        erase_boxes(x, torch.zeros(1, 4, dtype=torch.long), float("nan"))


def test_docstring_examples_run():
    import doctest

    import sagemix.mixers.cutout as mcout

    for mod in (mcout,):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
