"""Manifold Mixup: the mixer's draws, its mix_fn, and the step driving a stage-protocol model."""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

from sagemix import MixStep, create_mixer, soft_cross_entropy
from sagemix.functional.mixup import mixup
from sagemix.mixers.manifold_mixup import ManifoldMixup


class TinyStaged(nn.Module):
    """A 2-stage network implementing the stage protocol (layer 0 = input, 1 and 2 = stage outputs)."""

    mix_layers = 2

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1, stride=2), nn.ReLU())
        self.fc = nn.Linear(6, k)
        self.seen_shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor, mix_layer: int | None = None,
                mix_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        h = x
        for k, stage in enumerate((None, self.stage1, self.stage2)):
            if stage is not None:
                h = stage(h)
            if mix_layer == k:
                self.seen_shapes.append(tuple(h.shape))
                h = mix_fn(h)
        return self.fc(h.mean(dim=(2, 3)))


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


def test_mixer_output_and_mix_fn():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 6, 10, generator=g)
    y = torch.tensor([0, 1, 2, 1, 0])
    x0 = x.clone()
    out = ManifoldMixup(num_classes=3, generator=g)(x, y)
    assert ManifoldMixup.mixes_hidden is True
    assert torch.equal(out.images, x) and out.images.data_ptr() != x.data_ptr() and torch.equal(x, x0)
    assert out.extras["mix_layer"] in (0, 1, 2) and isinstance(out.extras["mix_layer"], int)
    lam, perm = out.lam, out.index
    assert torch.all(lam == lam[0]) and 0 <= float(lam[0]) <= 1
    onehot = torch.nn.functional.one_hot(y, 3).float()
    torch.testing.assert_close(out.targets, lam[:, None] * onehot + (1 - lam[:, None]) * onehot[perm])
    torch.testing.assert_close(out.targets.sum(1), torch.ones(5))
    # mix_fn on an arbitrary hidden shape, against a float64 loop.
    h = torch.randn(5, 4, 3, 5, generator=g)
    got = out.extras["mix_fn"](h)
    ref = torch.stack([float(lam[i]) * h[i].double() + (1 - float(lam[i])) * h[int(perm[i])].double() for i in range(5)])
    torch.testing.assert_close(got.double(), ref, rtol=1e-6, atol=1e-6)


def test_layer_and_lam_draws():
    x, y = torch.randn(3, 3, 4, 4), torch.tensor([0, 1, 0])
    m = ManifoldMixup(num_classes=2, generator=torch.Generator().manual_seed(1))
    draws = [m(x, y) for _ in range(1500)]
    layers = torch.tensor([d.extras["mix_layer"] for d in draws])
    counts = torch.bincount(layers, minlength=3)
    assert counts.shape[0] == 3 and bool((counts > 400).all())  # uniform over {0, 1, 2}
    lams = torch.stack([d.lam[0] for d in draws]).double()
    # Beta(2, 2): mean 1/2, variance 1/20.
    assert abs(lams.mean().item() - 0.5) < 0.03 and abs(lams.var().item() - 0.05) < 0.01
    only = ManifoldMixup(layers=(2,), num_classes=2)
    assert {only(x, y).extras["mix_layer"] for _ in range(20)} == {2}


def test_per_sample_lam():
    x, y = torch.randn(6, 3, 4, 4), torch.arange(6) % 2
    out = ManifoldMixup(per_sample=True, num_classes=2, generator=torch.Generator().manual_seed(2))(x, y)
    assert len(set(out.lam.tolist())) == 6
    h = torch.randn(6, 7)
    ref = out.lam[:, None] * h + (1 - out.lam[:, None]) * h[out.index]
    torch.testing.assert_close(out.extras["mix_fn"](h), ref)


def test_layer0_logits_equal_model_of_mixed_input():
    torch.manual_seed(0)
    model = TinyStaged().eval()
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    out = ManifoldMixup(layers=(0,), num_classes=3, generator=torch.Generator().manual_seed(3))(x, y)
    fn = out.extras["mix_fn"]
    logits = model(out.images, mix_layer=0, mix_fn=fn)
    torch.testing.assert_close(logits, model(mixup(x, out.index, float(out.lam[0]))))
    # At a hidden layer the result differs from input mixing (the network is non-linear).
    logits1 = model(out.images, mix_layer=1, mix_fn=fn)
    if float(out.lam[0]) not in (0.0, 1.0) and not torch.equal(out.index, torch.arange(4)):
        assert not torch.allclose(logits1, logits)


def test_step_drives_hidden_mixing_and_gradients_match():
    torch.manual_seed(0)
    model = TinyStaged()
    x, y = torch.randn(5, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1])
    mixer = ManifoldMixup(layers=(2,), num_classes=3, generator=torch.Generator().manual_seed(4))
    step = MixStep(model, mixer)
    out = step(x, y)
    assert model.seen_shapes == [(5, 6, 4, 4)]  # mixed at the output of stage 2
    grads = [p.grad.clone() for p in model.parameters()]
    # Recompute the same loss by hand and compare loss and gradients.
    model.zero_grad()
    fn = out.mix.extras["mix_fn"]
    ref_loss = soft_cross_entropy(model(x, mix_layer=2, mix_fn=fn), out.mix.targets)
    ref_loss.backward()
    torch.testing.assert_close(out.loss, ref_loss.detach())
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(g, p.grad)


def test_step_rejects_model_without_protocol():
    with pytest.raises(ValueError, match="stage protocol"):
        MixStep(Plain(), create_mixer("manifold_mixup", num_classes=2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mix_fn_half_precision_hidden_states(dtype):
    out = ManifoldMixup(num_classes=2, generator=torch.Generator().manual_seed(6))(
        torch.randn(4, 3, 4, 4).to(dtype), torch.tensor([0, 1, 1, 0]))
    assert out.images.dtype == dtype
    h = torch.randn(4, 5).to(dtype)
    got = out.extras["mix_fn"](h)
    assert got.dtype == dtype
    ref = out.lam[:, None] * h.float() + (1 - out.lam[:, None]) * h.float()[out.index]
    torch.testing.assert_close(got.float(), ref, rtol=1e-2, atol=1e-2)


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        ManifoldMixup(alpha=-2.0)
    with pytest.raises(ValueError, match="layers"):
        ManifoldMixup(layers=())
    with pytest.raises(ValueError, match="layers"):
        ManifoldMixup(layers=(0, -1))
    with pytest.raises(ValueError, match="layers"):
        ManifoldMixup(layers=(0, 1.5))
    with pytest.raises(TypeError, match="per_sample"):
        ManifoldMixup(per_sample="yes")
    m = create_mixer("manifold_mixup", num_classes=2)
    assert isinstance(m, ManifoldMixup) and m.alpha == 2.0 and m.layers == (0, 1, 2)


def test_docstring_examples_run():
    import doctest

    import sagemix.mixers.manifold_mixup as mman

    for mod in (mman,):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
