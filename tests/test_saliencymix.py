"""SaliencyMix: boxes centred on the partner's saliency peak, OpenCV against a per-image reference."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch

from sagemix import create_mixer
from sagemix.functional.saliencymix import denormalize_to_uint8, opencv_saliency, saliency_argmax, saliency_boxes
from sagemix.mixers.saliencymix import CIFAR10_MEAN, CIFAR10_STD, SaliencyMix

MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x.float().mean(dim=1)


def _blob_batch(b: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose only bright pixel (the saliency peak) is at a known place, plus index fill.

    Channel 0 holds the sample's index (the label=index trick), channel 1 a single bright pixel.
    Returns the images and the (B, 2) peak positions.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(b, 2, h, w)
    x[:, 0] = torch.arange(b, dtype=torch.float32).view(b, 1, 1)
    rows, cols = torch.randint(0, h, (b,), generator=g), torch.randint(0, w, (b,), generator=g)
    x[torch.arange(b), 1, rows, cols] = 100.0
    return x, torch.stack([rows, cols], 1)


def _box_with_side(r: int, c: int, ch: int, cw: int, h: int, w: int) -> list[int]:
    y0, x0 = r - ch // 2, c - cw // 2
    return [min(max(x0, 0), w), min(max(y0, 0), h), min(max(x0 + cw, 0), w), min(max(y0 + ch, 0), h)]


def _naive_box(r: int, c: int, lam: float, h: int, w: int) -> list[int]:
    return _box_with_side(r, c, int(h * np.sqrt(1 - lam) + 1e-9), int(w * np.sqrt(1 - lam) + 1e-9), h, w)


def _naive_cv2_saliency(x: torch.Tensor, mean, std) -> np.ndarray:
    """Per-image OpenCV saliency of the de-normalised uint8 image, in BGR order, float64 loops."""
    import cv2

    det = cv2.saliency.StaticSaliencyFineGrained_create()
    out = []
    for img in x.double().numpy():
        u8 = np.empty(img.shape[1:] + (3,), np.uint8)
        for ch in range(3):
            u8[..., 2 - ch] = np.clip(np.round((img[ch] * std[ch] + mean[ch]) * 255.0), 0, 255)
        ok, sal = det.computeSaliency(u8)
        assert ok
        out.append(np.asarray(sal, np.float64))
    return np.stack(out)


@pytest.mark.parametrize("b,h,w", [(1, 9, 9), (5, 12, 20), (6, 17, 11)])
def test_box_centred_on_partner_peak_and_lam_is_clipped_share(b, h, w):
    x, peaks = _blob_batch(b, h, w, seed=b + h)
    y = torch.arange(b) % 3
    mixer = SaliencyMix(prob=1.0, saliency_fn=brightness, num_classes=3, generator=torch.Generator().manual_seed(b))
    for _ in range(4):
        out = mixer(x, y)
        assert out.extras["applied"] is True
        boxes = out.extras["boxes"]
        # The boxes are the naive ones centred on each partner's peak, with one side for the batch
        # that follows the sqrt rule (some lam gives int(h*sqrt(1-lam)), int(w*sqrt(1-lam))).
        partner_peaks = peaks[out.index]
        sides = [(ch, cw) for ch in range(h + 1) for cw in range(w + 1)
                 if all(boxes[i].tolist() == _box_with_side(*partner_peaks[i].tolist(), ch, cw, h, w)
                        for i in range(b))]
        assert any(max(ch / h, cw / w) < min((ch + 1) / h, (cw + 1) / w) for ch, cw in sides), sides
        for i in range(b):
            p = int(out.index[i])
            x0, y0, x1, y1 = boxes[i].tolist()
            r, c = peaks[p].tolist()
            assert 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h
            if x1 > x0 and y1 > y0:
                assert y0 <= r < y1 and x0 <= c < x1  # the partner's peak is inside its box
            area = (x1 - x0) * (y1 - y0)
            assert abs(float(out.lam[i]) - (1 - area / (h * w))) < 1e-6
            own_share = (out.images[i, 0] == i).double().mean().item()
            if p != i:
                assert abs(own_share - float(out.lam[i])) < 1e-6
                m = torch.zeros(h, w, dtype=torch.bool)
                m[y0:y1, x0:x1] = True
                assert torch.equal(out.images[i][:, m], x[p][:, m])  # same location in the partner
                assert torch.equal(out.images[i][:, ~m], x[i][:, ~m])
        onehot = torch.nn.functional.one_hot(y, 3).float()
        torch.testing.assert_close(out.targets, out.lam[:, None] * onehot + (1 - out.lam[:, None]) * onehot[out.index])
        torch.testing.assert_close(out.targets.sum(1), torch.ones(b))


def test_boxes_match_naive_centring_for_given_lam():
    x, peaks = _blob_batch(7, 13, 21, seed=3)
    for lam in (0.0, 0.3, 0.77, 1.0):
        got = saliency_boxes(brightness(x), lam)
        ref = [_naive_box(int(r), int(c), lam, 13, 21) for r, c in peaks.tolist()]
        assert got.tolist() == ref
    rows, cols = saliency_argmax(torch.tensor([[[0.0, 2.0], [2.0, 1.0]]]))  # ties: first in row-major
    assert (int(rows[0]), int(cols[0])) == (0, 1)


def test_per_batch_box_uses_the_first_partner_only():
    b, h, w = 5, 12, 12
    x, peaks = _blob_batch(b, h, w, seed=4)
    calls = []

    def fn(imgs: torch.Tensor) -> torch.Tensor:
        calls.append(imgs.shape[0])
        return brightness(imgs)

    out = SaliencyMix(prob=1.0, per_batch_box=True, saliency_fn=fn, num_classes=5,
                      generator=torch.Generator().manual_seed(0))(x, torch.arange(b))
    assert calls == [1]
    boxes = out.extras["boxes"]
    assert bool((boxes == boxes[0]).all()) and torch.all(out.lam == out.lam[0])
    r, c = peaks[int(out.index[0])].tolist()
    x0, y0, x1, y1 = boxes[0].tolist()
    if x1 > x0 and y1 > y0:
        assert y0 <= r < y1 and x0 <= c < x1


def test_precomputed_saliency_argument():
    x, peaks = _blob_batch(4, 10, 10, seed=5)
    sal = brightness(x)
    a = SaliencyMix(prob=1.0, saliency_fn=brightness, num_classes=4, generator=torch.Generator().manual_seed(1))
    b = SaliencyMix(prob=1.0, saliency_fn=lambda t: pytest.fail("saliency_fn must not run"), num_classes=4,
                    generator=torch.Generator().manual_seed(1))
    oa, ob = a(x, torch.arange(4)), b(x, torch.arange(4), sal)
    assert torch.equal(oa.images, ob.images) and torch.equal(oa.lam, ob.lam)
    with pytest.raises(ValueError, match="saliency"):
        b(x, torch.arange(4), sal[:, :5])


def test_denormalize_to_uint8_matches_naive():
    g = torch.Generator().manual_seed(6)
    u8 = torch.randint(0, 256, (3, 3, 5, 7), generator=g, dtype=torch.uint8)
    m, s = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    x = (u8.double() / 255 - m) / s
    assert torch.equal(denormalize_to_uint8(x.float(), MEAN, STD), u8)
    assert torch.equal(denormalize_to_uint8(x.half(), MEAN, STD).int().sub(u8.int()).abs().le(2),
                       torch.ones_like(u8, dtype=torch.bool))
    with pytest.raises(ValueError, match="mean and std"):
        denormalize_to_uint8(x.float(), MEAN[:2], STD)


def test_opencv_path_matches_per_image_reference():
    pytest.importorskip("cv2", reason="needs the saliencymix extra")
    b, h, w = 4, 16, 20
    g = torch.Generator().manual_seed(7)
    u8 = torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)
    u8[:, :, 4:9, 10:15] = 255
    x = ((u8.double() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).float()
    ref_sal = _naive_cv2_saliency(x, MEAN, STD)
    got_sal = opencv_saliency(denormalize_to_uint8(x, MEAN, STD))
    assert got_sal.dtype == torch.float32 and got_sal.shape == (b, h, w)
    np.testing.assert_allclose(got_sal.numpy(), ref_sal, rtol=0, atol=1e-6)
    assert 0.0 <= float(got_sal.min()) and float(got_sal.max()) <= 1.0
    mixer = SaliencyMix(prob=1.0, mean=MEAN, std=STD, num_classes=4, generator=torch.Generator().manual_seed(8))
    out = mixer(x, torch.arange(b))
    lam_sides = {(bx[2] - bx[0], bx[3] - bx[1]) for bx in out.extras["boxes"].tolist()
                 if 0 < bx[0] and bx[2] < w and 0 < bx[1] and bx[3] < h}
    assert len(lam_sides) <= 1  # one lam, one side for the batch
    for i in range(b):
        p = int(out.index[i])
        r, c = np.unravel_index(int(np.argmax(ref_sal[p])), (h, w))
        box = out.extras["boxes"][i].tolist()
        x0, y0, x1, y1 = box
        cut_w, cut_h = x1 - x0, y1 - y0
        if cut_w and cut_h:
            assert y0 <= r < y1 and x0 <= c < x1
        area = cut_w * cut_h
        assert abs(float(out.lam[i]) - (1 - area / (h * w))) < 1e-6


def test_default_stats_are_cifar10_and_channel_mismatch_is_clear():
    m = SaliencyMix()
    assert m.mean == CIFAR10_MEAN and m.std == CIFAR10_STD and m.prob == 0.5 and m.alpha == 1.0
    assert abs(CIFAR10_MEAN[0] - 125.3 / 255) < 1e-12 and abs(CIFAR10_STD[2] - 66.7 / 255) < 1e-12
    with pytest.raises(ValueError, match="channels"):
        SaliencyMix(prob=1.0, num_classes=2)(torch.randn(2, 4, 8, 8), torch.tensor([0, 1]))


def test_missing_opencv_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "cv2" or name.startswith("cv2."):
            raise ImportError("No module named 'cv2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    # refused when created (it used to be created and fail at the first batch that mixed)
    with pytest.raises(ImportError, match=r'pip install "sagemix\[saliencymix\]"'):
        SaliencyMix(prob=1.0, num_classes=2)
    # the saliency_fn path needs no OpenCV at all
    out = SaliencyMix(prob=1.0, saliency_fn=brightness, num_classes=2)(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert out.extras["applied"] is True


def test_prob():
    x, _ = _blob_batch(6, 10, 14, seed=9)
    y = torch.arange(6) % 2
    m = SaliencyMix(saliency_fn=brightness, num_classes=2, generator=torch.Generator().manual_seed(0))
    outs = [m(x, y) for _ in range(300)]
    n = sum(o.extras["applied"] for o in outs)
    assert 110 < n < 190  # prob 0.5
    clean = next(o for o in outs if not o.extras["applied"])
    assert torch.equal(clean.images, x) and torch.all(clean.lam == 1) and torch.equal(clean.index, torch.arange(6))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_and_soft_targets(dtype):
    x, peaks = _blob_batch(5, 8, 12, seed=10)
    soft = torch.softmax(torch.randn(5, 3), 1)
    out = SaliencyMix(prob=1.0, saliency_fn=brightness, generator=torch.Generator().manual_seed(1))(x.to(dtype), soft)
    ref = SaliencyMix(prob=1.0, saliency_fn=brightness, generator=torch.Generator().manual_seed(1))(x, soft)
    assert out.images.dtype == dtype
    assert torch.equal(out.images.float(), ref.images) and torch.equal(out.lam, ref.lam)
    torch.testing.assert_close(out.targets.sum(1), torch.ones(5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        SaliencyMix(alpha=-1.0)
    with pytest.raises(ValueError, match="prob"):
        SaliencyMix(prob=1.01)
    with pytest.raises(ValueError, match="std"):
        SaliencyMix(std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="same length"):
        SaliencyMix(mean=(0.5, 0.5), std=(0.2, 0.2, 0.2))
    with pytest.raises(TypeError, match="saliency_fn"):
        SaliencyMix(saliency_fn=3)
    with pytest.raises(TypeError, match="per_batch_box"):
        SaliencyMix(per_batch_box="no")
    bad = SaliencyMix(prob=1.0, saliency_fn=lambda t: t.mean(1)[:, :3], num_classes=2)
    with pytest.raises(ValueError, match="saliency_fn output"):
        bad(torch.randn(2, 3, 8, 8), torch.tensor([0, 1]))
    assert isinstance(create_mixer("saliencymix", per_batch_box=True), SaliencyMix)


def test_docstring_examples_run():
    import doctest

    import sagemix.mixers.saliencymix as msal

    for mod in (msal,):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__

