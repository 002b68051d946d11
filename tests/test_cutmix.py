"""CutMix: box kernels against naive loop references, and the mixer's properties."""
from __future__ import annotations

import math

import pytest
import torch

from sagemix import create_mixer
from sagemix.functional.boxes import (box_areas, box_masks, box_sides, centered_boxes, paste_boxes, rand_box)
from sagemix.mixers.cutmix import CutMix


def _index_images(b: int, c: int = 3, h: int = 8, w: int = 12, dtype=torch.float32) -> torch.Tensor:
    """Sample i is filled with the value i, so each pixel says which sample it came from."""
    return torch.arange(b, dtype=dtype).view(b, 1, 1, 1).expand(b, c, h, w).contiguous()


def _naive_box(cy: int, cx: int, ch: int, cw: int, h: int, w: int) -> tuple[int, int, int, int]:
    y0, x0 = cy - ch // 2, cx - cw // 2
    return (min(max(x0, 0), w), min(max(y0, 0), h), min(max(x0 + cw, 0), w), min(max(y0 + ch, 0), h))


def _naive_paste(x: torch.Tensor, perm: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    b, _, h, w = x.shape
    out = x.clone()
    lam = torch.empty(b, dtype=torch.float64)
    for i in range(b):
        x0, y0, x1, y1 = (int(v) for v in boxes[i if boxes.shape[0] > 1 else 0])
        own = 0
        for r in range(h):
            for c in range(w):
                if y0 <= r < y1 and x0 <= c < x1:
                    out[i, :, r, c] = x[int(perm[i]), :, r, c]
                else:
                    own += 1
        lam[i] = own / (h * w)
    return out, lam


def test_centered_boxes_and_masks_match_naive():
    g = torch.Generator().manual_seed(0)
    h, w, n = 7, 11, 50
    cy, cx = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
    ch, cw = torch.randint(0, h + 1, (n,), generator=g), torch.randint(0, w + 1, (n,), generator=g)
    boxes = centered_boxes(cy, cx, ch, cw, h, w)
    ref = [_naive_box(int(cy[i]), int(cx[i]), int(ch[i]), int(cw[i]), h, w) for i in range(n)]
    assert boxes.tolist() == [list(r) for r in ref]
    masks = box_masks(boxes, h, w)
    for i, (x0, y0, x1, y1) in enumerate(ref):
        m = torch.zeros(h, w, dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        assert torch.equal(masks[i], m)
    assert box_areas(boxes, h, w).tolist() == [(r[2] - r[0]) * (r[3] - r[1]) for r in ref]


def test_box_sides_follow_sqrt_rule_on_non_square_images():
    lam = torch.tensor([0.0, 0.19, 0.5, 0.75, 0.99, 1.0], dtype=torch.float64)
    ch, cw = box_sides(10, 30, lam)
    assert ch.tolist() == [int(10 * math.sqrt(1 - v)) for v in lam.tolist()]
    assert cw.tolist() == [int(30 * math.sqrt(1 - v)) for v in lam.tolist()]


def test_rand_box_inside_image_exact_side_when_unclipped_and_uniform_centre():
    h, w, lam = 12, 20, 0.75
    g = torch.Generator().manual_seed(1)
    boxes = rand_box(h, w, torch.full((4000,), lam), generator=g)
    x0, y0, x1, y1 = boxes.unbind(1)
    assert bool(((0 <= x0) & (x0 <= x1) & (x1 <= w) & (0 <= y0) & (y0 <= y1) & (y1 <= h)).all())
    inner = (x0 > 0) & (x1 < w) & (y0 > 0) & (y1 < h)
    assert bool(inner.any())
    assert set((x1 - x0)[inner].tolist()) == {int(w * 0.5)} and set((y1 - y0)[inner].tolist()) == {int(h * 0.5)}
    # centre uniform: the unclipped left edge x0 + cut//2 takes every column about equally often
    cut_w = int(w * 0.5)
    left = torch.where(x0 > 0, x0 + cut_w // 2, x1 - cut_w + cut_w // 2)  # recover the centre column
    counts = torch.bincount(left, minlength=w)
    assert counts.shape[0] == w and counts.min() > 120 and counts.max() < 290
    one = rand_box(h, w, 0.3, generator=g)
    assert one.shape == (1, 4)


@pytest.mark.parametrize("b,h,w", [(1, 5, 5), (5, 8, 13), (4, 16, 9)])
@pytest.mark.parametrize("shared", [True, False])
def test_paste_boxes_matches_naive(b, h, w, shared):
    g = torch.Generator().manual_seed(b * 100 + h)
    x = torch.randn(b, 2, h, w, generator=g)
    perm = torch.randperm(b, generator=g)
    boxes = rand_box(h, w, torch.rand(1 if shared else b, generator=g).double(), generator=g)
    mixed, lam = paste_boxes(x, perm, boxes)
    ref, ref_lam = _naive_paste(x, perm, boxes)
    assert torch.equal(mixed.double(), ref)
    torch.testing.assert_close(lam.double(), ref_lam, rtol=0, atol=1e-7)
    assert lam.dtype == torch.float32 and lam.shape == (b,)


def test_kernel_bad_arguments():
    x = torch.randn(3, 3, 4, 4)
    with pytest.raises(ValueError, match="lam"):
        rand_box(4, 4, 1.2)
    with pytest.raises(ValueError, match="h"):
        rand_box(0, 4, 0.5)
    with pytest.raises(ValueError, match="boxes"):
        paste_boxes(x, torch.arange(3), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="boxes"):
        paste_boxes(x, torch.arange(3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="perm"):
        paste_boxes(x, torch.arange(2), torch.zeros(3, 4, dtype=torch.long))


@pytest.mark.parametrize("b", [1, 2, 7])
@pytest.mark.parametrize("per_sample", [False, True])
def test_mixer_lam_is_realised_share_and_clipped_area(b, per_sample):
    h, w = 8, 13
    x = _index_images(b, h=h, w=w)
    y = torch.arange(b) % 3
    g = torch.Generator().manual_seed(10 + b)
    mixer = CutMix(num_classes=3, per_sample=per_sample, generator=g)
    for _ in range(5):
        out = mixer(x, y)
        boxes = out.extras["boxes"]
        assert boxes.shape == (b, 4)
        x0, y0, x1, y1 = boxes.unbind(1)
        assert bool(((0 <= x0) & (x0 <= x1) & (x1 <= w) & (0 <= y0) & (y0 <= y1) & (y1 <= h)).all())
        area = ((x1 - x0) * (y1 - y0)).double()
        torch.testing.assert_close(out.lam.double(), 1 - area / (h * w), rtol=0, atol=1e-7)
        own = torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1)
        partner = out.index.float().view(b, 1, 1, 1)
        from_partner = (out.images == partner) & (own != partner)
        own_share = (out.images[:, 0] == own[:, 0]).double().mean(dim=(1, 2))
        fixed = out.index != torch.arange(b)
        if bool(fixed.any()):  # a sample paired with itself has all pixels its own
            torch.testing.assert_close(own_share[fixed], out.lam.double()[fixed], rtol=0, atol=1e-7)
        assert bool((out.images == own).logical_or(from_partner).all())
        onehot = torch.nn.functional.one_hot(y, 3).float()
        torch.testing.assert_close(out.targets, out.lam[:, None] * onehot + (1 - out.lam[:, None]) * onehot[out.index])
        torch.testing.assert_close(out.targets.sum(1), torch.ones(b))
        if not per_sample:
            assert bool((boxes == boxes[0]).all())


def test_mixer_per_sample_draws_different_boxes():
    out = CutMix(num_classes=2, per_sample=True, generator=torch.Generator().manual_seed(0))(
        torch.randn(16, 3, 32, 32), torch.arange(16) % 2)
    assert len({tuple(b) for b in out.extras["boxes"].tolist()}) > 8


def test_mixer_int_and_soft_targets_agree():
    x = torch.randn(6, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    a = CutMix(num_classes=4, generator=torch.Generator().manual_seed(3))(x, y)
    b = CutMix(generator=torch.Generator().manual_seed(3))(x, torch.nn.functional.one_hot(y, 4).float())
    assert torch.equal(a.images, b.images)
    torch.testing.assert_close(a.targets, b.targets)


def test_mixer_boxes_vary_with_the_seed():
    x = torch.randn(5, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 1, 0])
    outs = [CutMix(num_classes=3, generator=torch.Generator().manual_seed(s))(x, y).extras["boxes"][0].tolist()
            for s in range(8)]
    assert len({tuple(o) for o in outs}) > 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixer_half_precision(dtype):
    x = _index_images(5, dtype=dtype)
    out = CutMix(num_classes=5, generator=torch.Generator().manual_seed(1))(x, torch.arange(5))
    assert out.images.dtype == dtype
    ref, ref_lam = _naive_paste(x.float(), out.index, out.extras["boxes"])
    assert torch.equal(out.images.double(), ref)
    torch.testing.assert_close(out.lam.double(), ref_lam, rtol=0, atol=1e-7)


def test_mixer_prob():
    x, y = torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 0, 1])
    off = CutMix(prob=0.0, num_classes=2)(x, y)
    assert torch.equal(off.images, x) and torch.all(off.lam == 1) and off.extras["applied"] is False
    m = CutMix(prob=0.3, num_classes=2, generator=torch.Generator().manual_seed(0))
    n = sum(m(x, y).extras["applied"] for _ in range(400))
    assert 80 < n < 160


def test_mixer_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        CutMix(alpha=-0.5)
    with pytest.raises(ValueError, match="prob"):
        CutMix(prob=-0.1)
    with pytest.raises(TypeError, match="per_sample"):
        CutMix(per_sample=None)
    with pytest.raises(ValueError, match="images"):
        CutMix(num_classes=2)(torch.randn(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="floating"):
        CutMix(num_classes=2)(torch.ones(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([0, 1]))
    m = create_mixer("cutmix", num_classes=10)
    assert isinstance(m, CutMix) and m.alpha == 1.0 and m.prob == 1.0


def test_docstring_examples_run():
    import doctest

    import sagemix.functional.boxes as fbox
    import sagemix.mixers.cutmix as mcut

    for mod in (fbox, mcut):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
