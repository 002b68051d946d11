"""The SAGE mixer: the shared call, the draws, determinism, options and errors."""
from __future__ import annotations

import pytest
import torch

import sagemix
from sagemix import SAGE, create_mixer
from sagemix.functional import sage as F


def _batch(b=6, h=10, w=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, h, w, generator=g), torch.randint(0, k, (b,), generator=g), torch.rand(b, h, w, generator=g)


def test_registry_and_top_level_names():
    assert "sage" in sagemix.list_mixers()
    m = create_mixer("sage", num_classes=5, upper_lambda=0.5)
    assert isinstance(m, SAGE) and m.upper_lambda == 0.5
    assert sagemix.SAGE is SAGE
    with pytest.raises(ValueError, match="unknown mixer"):
        create_mixer("sagex")


def test_realised_mix_and_lam_match_the_kernel():
    x, y, s = _batch()
    m = SAGE(num_classes=5, rand_pos=None, generator=torch.Generator().manual_seed(3))
    out = m(x, y, saliency=s)
    mixed, lam, chosen = F.sage_mix(x, s, out.index, out.extras["prior"], F.all_shifts(10, 12))
    assert torch.equal(out.images, mixed) and torch.equal(out.lam, lam)
    assert torch.equal(out.extras["shift"], chosen)
    mask = SAGE.mask(s, out)
    torch.testing.assert_close(out.lam, mask.mean((1, 2)))


def test_prior_distribution():
    m = SAGE(num_classes=5, upper_lambda=0.6, generator=torch.Generator().manual_seed(0))
    x, y, s = torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), torch.rand(4, 8, 8)
    priors = torch.tensor([m.make_params(x, y, s).prior for _ in range(400)])
    assert priors.min() >= 0 and priors.max() <= 0.6
    assert abs(priors.mean().item() - 0.3) < 0.03  # U(0, 0.6) for mixup_alpha = 1
    fixed = SAGE(num_classes=5, upper_lambda=0.6, mixup_alpha=0)
    assert fixed.make_params(x, y, s).prior == pytest.approx(0.3)


def test_candidate_count_and_force_zero():
    x, y, s = _batch(h=32, w=32)
    out = SAGE(num_classes=5, generator=torch.Generator().manual_seed(0))(x, y, saliency=s)
    assert out.extras["shifts"].shape == (39, 2)
    out = SAGE(num_classes=5, force_zero_shift=True, generator=torch.Generator().manual_seed(0))(x, y, saliency=s)
    assert torch.equal(out.extras["shifts"][0], torch.zeros(2, dtype=torch.int64))
    out = SAGE(num_classes=5, rand_pos=None)(x, y, saliency=s)
    assert out.extras["shifts"].shape == (63 * 63, 2)


def test_step_protocol_and_reduction():
    m = SAGE(update_ratio=0.7, saliency_reduce="mean_abs", blur_kernel_size=3, blur_sigma=0.5)
    assert m.needs_gradient_saliency and m.saliency_train_mode and m.saliency_loss == "train"
    assert m.clean_weight(10) == pytest.approx(0.3) and m.mixed_weight() == pytest.approx(0.7)
    g = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(m.reduce_saliency(g), F.gaussian_smooth(g.abs().mean(1), 3, 0.5))


@pytest.mark.parametrize("kwargs,match", [
    ({"upper_lambda": 1.2}, "upper_lambda"), ({"upper_lambda": -0.1}, "upper_lambda"),
    ({"mixup_alpha": -1}, "mixup_alpha"), ({"rand_pos": -0.1}, "rand_pos"), ({"rand_pos": 1.5}, "rand_pos"),
    ({"update_ratio": 2}, "update_ratio"), ({"saliency_reduce": "max"}, "saliency_reduce"),
    ({"blur_kernel_size": 4}, "blur_kernel_size"), ({"blur_sigma": 0}, "blur_sigma"),
    ({"num_classes": 0}, "num_classes"), ({"generator": 3}, "generator"),
])
def test_bad_options(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SAGE(**kwargs)


def test_generator_must_be_on_cpu(monkeypatch):
    class FakeCuda(torch.Generator):
        device = torch.device("cuda")

    with pytest.raises(ValueError, match="CPU torch.Generator"):
        SAGE(generator=FakeCuda())


def test_bad_calls():
    x, y, s = _batch()
    m = SAGE(num_classes=5)
    with pytest.raises(ValueError, match="needs saliency"):
        m(x, y)
    with pytest.raises(ValueError, match="saliency must have shape"):
        m(x, y, saliency=s[:, :4])
    with pytest.raises(ValueError, match="targets must lie"):
        m(x, y + 5, saliency=s)
    with pytest.raises(ValueError, match="num_classes is required"):
        SAGE()(x, y, saliency=s)
    with pytest.raises(ValueError, match="batch size"):
        m(x, y[:3], saliency=s)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        m(x[0], y, saliency=s)
    with pytest.raises(TypeError, match="floating"):
        m(x.long(), y, saliency=s)
