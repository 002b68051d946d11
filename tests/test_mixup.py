"""Mixup: the kernel against a naive float64 reference, and the mixer's properties."""
from __future__ import annotations

import pytest
import torch

from sagemix import create_mixer
from sagemix.functional.mixup import mixup
from sagemix.mixers.mixup import Mixup


def _naive_mixup(x: torch.Tensor, perm: torch.Tensor, lam) -> torch.Tensor:
    """Loop reference in float64."""
    x = x.double()
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        li = float(lam[i]) if isinstance(lam, torch.Tensor) else float(lam)
        out[i] = li * x[i] + (1.0 - li) * x[int(perm[i])]
    return out


def _index_images(b: int, c: int = 3, h: int = 5, w: int = 7) -> torch.Tensor:
    """Sample i is filled with the value i (the label=index trick: the pixels say who was mixed)."""
    return torch.arange(b, dtype=torch.float32).view(b, 1, 1, 1).expand(b, c, h, w).contiguous()


@pytest.mark.parametrize("shape", [(1, 3, 4, 4), (5, 3, 6, 9), (4, 16), (3, 2, 5)])
@pytest.mark.parametrize("per_sample", [False, True])
def test_kernel_matches_naive_reference(shape, per_sample):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, generator=g)
    b = shape[0]
    perm = torch.randperm(b, generator=g)
    lam = torch.rand(b, generator=g) if per_sample else 0.3
    got = mixup(x, perm, lam)
    torch.testing.assert_close(got.double(), _naive_mixup(x, perm, lam), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_kernel_half_precision(dtype):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, 5, 7, generator=g).to(dtype)
    perm = torch.randperm(6, generator=g)
    got = mixup(x, perm, 0.37)
    assert got.dtype == dtype
    ref = _naive_mixup(x, perm, 0.37)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)


def test_kernel_lam_one_returns_input_and_zero_returns_partner():
    x = torch.randn(5, 3, 4, 6)
    perm = torch.tensor([4, 2, 0, 1, 3])
    out = mixup(x, perm, 1.0)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert torch.equal(mixup(x, perm, 0.0), x[perm])


def test_kernel_is_differentiable():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    perm = torch.tensor([1, 0, 3, 2])
    assert torch.autograd.gradcheck(lambda t: mixup(t, perm, 0.3), (x,))


def test_kernel_bad_arguments():
    x = torch.randn(4, 3, 2, 2)
    with pytest.raises(ValueError, match="lam"):
        mixup(x, torch.arange(4), 1.5)
    with pytest.raises(ValueError, match="lam"):
        mixup(x, torch.arange(4), torch.rand(3))
    with pytest.raises(ValueError, match="perm"):
        mixup(x, torch.arange(3), 0.5)
    with pytest.raises(TypeError, match="perm"):
        mixup(x, torch.arange(4).float(), 0.5)
    with pytest.raises(ValueError, match="floating"):
        mixup(torch.ones(4, 3, dtype=torch.long), torch.arange(4), 0.5)


@pytest.mark.parametrize("b", [1, 2, 7])
@pytest.mark.parametrize("per_sample", [False, True])
def test_mixer_pixels_and_labels_follow_lam_and_index(b, per_sample):
    x = _index_images(b, h=5, w=9)
    y = torch.arange(b) % 4
    mixer = Mixup(num_classes=4, per_sample=per_sample, generator=torch.Generator().manual_seed(b))
    out = mixer(x, y)
    assert out.images.shape == x.shape and out.images.dtype == x.dtype
    assert out.index.dtype == torch.int64 and sorted(out.index.tolist()) == list(range(b))
    assert bool(((out.lam >= 0) & (out.lam <= 1)).all())
    if not per_sample:
        assert torch.all(out.lam == out.lam[0])
    expected = out.lam.view(b, 1, 1, 1) * x + (1 - out.lam.view(b, 1, 1, 1)) * x[out.index]
    torch.testing.assert_close(out.images, expected)
    onehot = torch.nn.functional.one_hot(y, 4).float()
    torch.testing.assert_close(out.targets, out.lam[:, None] * onehot + (1 - out.lam[:, None]) * onehot[out.index])
    torch.testing.assert_close(out.targets.sum(1), torch.ones(b))


def test_mixer_lam_distribution_is_beta():
    # alpha=1: lam uniform (mean 1/2, var 1/12); alpha=0.2: U-shaped (var 0.2^2/(0.4^2*1.4) ~ 0.179).
    x, y = torch.zeros(2, 1, 2, 2), torch.tensor([0, 1])
    for alpha, var in ((1.0, 1 / 12), (0.2, 0.25 / 1.4)):
        m = Mixup(alpha=alpha, num_classes=2, generator=torch.Generator().manual_seed(0))
        lams = torch.stack([m(x, y).lam[0] for _ in range(2000)]).double()
        assert abs(lams.mean().item() - 0.5) < 0.03
        assert abs(lams.var().item() - var) < 0.02


def test_mixer_prob():
    x, y = torch.randn(4, 3, 4, 4), torch.tensor([0, 1, 0, 1])
    off = Mixup(prob=0.0, num_classes=2)(x, y)
    assert torch.equal(off.images, x) and torch.all(off.lam == 1) and torch.equal(off.index, torch.arange(4))
    assert off.extras["applied"] is False
    m = Mixup(prob=0.5, num_classes=2, generator=torch.Generator().manual_seed(0))
    applied = [m(x, y).extras["applied"] for _ in range(400)]
    assert 150 < sum(applied) < 250


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mixer_half_precision(dtype):
    x = _index_images(5, h=4, w=6).to(dtype)
    out = Mixup(num_classes=5, generator=torch.Generator().manual_seed(0))(x, torch.arange(5))
    assert out.images.dtype == dtype
    lam = out.lam.view(5, 1, 1, 1)
    ref = lam * x.float() + (1 - lam) * x.float()[out.index]
    torch.testing.assert_close(out.images.float(), ref, rtol=1e-2, atol=2e-2)


def test_mixer_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=-1.0)
    with pytest.raises(ValueError, match="alpha"):
        Mixup(alpha=0.0)
    with pytest.raises(ValueError, match="prob"):
        Mixup(prob=1.5)
    with pytest.raises(TypeError, match="per_sample"):
        Mixup(per_sample=1)
    with pytest.raises(TypeError):
        Mixup(1.0)  # keyword-only
    m = Mixup(num_classes=3)
    with pytest.raises(ValueError, match="images"):
        m(torch.randn(3, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="batch size"):
        m(torch.randn(3, 3, 4, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="num_classes"):
        Mixup()(torch.randn(3, 3, 4, 4), torch.tensor([0, 1, 2]))


def test_registry():
    m = create_mixer("mixup", alpha=0.2, num_classes=10)
    assert isinstance(m, Mixup) and m.alpha == 0.2 and m.name == "mixup"


def test_docstring_examples_run():
    import doctest

    import sagemix.functional.mixup as fmix
    import sagemix.mixers.mixup as mmix

    for mod in (fmix, mmix):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
