"""Tests for sagemix.models: shapes, the stage protocol, parameter counts, errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from sagemix.models import create_model, list_models, supports_manifold_mixup
from sagemix.models.preact_resnet import PreActResNet
from sagemix.models.staged import StagedNet

PAPER_MODELS = ["preactresnet18", "wrn16_8", "resnext29_4_24"]
ALL_MODELS = PAPER_MODELS + ["smallnet"]


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: create_model(name, 7).eval() for name in ALL_MODELS}


def test_list_models() -> None:
    assert list_models() == sorted(ALL_MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 84, 84), (3, 3, 20, 36)])
def test_output_shape(models: dict, name: str, shape: tuple) -> None:
    with torch.no_grad():
        out = models[name](torch.randn(*shape))
    assert out.shape == (shape[0], 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_protocol_identity_matches_plain_forward(models: dict, name: str) -> None:
    model = models[name]
    assert supports_manifold_mixup(model)
    assert isinstance(model.mix_layers, int) and model.mix_layers == len(model.stages) + 1
    assert model.mix_layers >= 3  # Manifold Mixup draws k from {0, 1, 2}
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        for k in range(model.mix_layers):
            out = model(x, mix_layer=k, mix_fn=lambda h: h)
            torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_mix_fn_called_once_with_hidden_shape(models: dict, name: str) -> None:
    model = models[name]
    x = torch.randn(2, 3, 32, 32)
    # The expected hidden shapes: the input, then each stage's output, recorded with hooks.
    seen: list[tuple] = []
    hooks = [s.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for s in model.stages]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    expected = [tuple(x.shape)] + seen
    assert len(expected) == model.mix_layers
    for k in range(model.mix_layers):
        calls: list[tuple] = []

        def fn(h: torch.Tensor) -> torch.Tensor:
            calls.append(tuple(h.shape))
            return h

        with torch.no_grad():
            model(x, mix_layer=k, mix_fn=fn)
        assert calls == [expected[k]]


def test_mix_fn_changes_output_at_each_layer(models: dict) -> None:
    model = models["preactresnet18"]
    x = torch.randn(4, 3, 32, 32)
    perm = torch.tensor([1, 0, 3, 2])
    with torch.no_grad():
        ref = model(x)
        for k in range(model.mix_layers):
            out = model(x, mix_layer=k, mix_fn=lambda h: 0.5 * h + 0.5 * h[perm])
            assert not torch.allclose(out, ref)
        # Mixing the input at layer 0 is the same as feeding the mixed input.
        torch.testing.assert_close(model(x, mix_layer=0, mix_fn=lambda h: 0.5 * h + 0.5 * h[perm]),
                                   model(0.5 * x + 0.5 * x[perm]))


def test_gradients_flow_through_mix(models: dict) -> None:
    model = create_model("smallnet", 5)
    x = torch.randn(4, 3, 16, 16)
    out = model(x, mix_layer=2, mix_fn=lambda h: 0.3 * h + 0.7 * h.flip(0))
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name,lo,hi", [("preactresnet18", 11.1e6, 11.3e6), ("wrn16_8", 10.9e6, 11.1e6),
                                        ("resnext29_4_24", 4.7e6, 5.0e6), ("smallnet", 5e4, 2e5)])
def test_param_counts(name: str, lo: float, hi: float) -> None:
    assert lo <= _n_params(create_model(name, 10)) <= hi


def test_preactresnet_final_bn_option() -> None:
    plain = create_model("preactresnet18", 10)
    with_bn = create_model("preactresnet18", 10, final_bn=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.head.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.head.modules())
    assert _n_params(with_bn) - _n_params(plain) == 2 * 512
    assert isinstance(plain, PreActResNet) and isinstance(plain, StagedNet)


def test_preactresnet_structure() -> None:
    m = create_model("preactresnet18", 10)
    assert m.stem.kernel_size == (3, 3) and m.stem.stride == (1, 1) and m.stem.out_channels == 64
    assert [len(s) for s in m.stages] == [2, 2, 2, 2]
    assert [s[-1].conv2.out_channels for s in m.stages] == [64, 128, 256, 512]


def test_name_normalisation_and_kwargs() -> None:
    m = create_model("WRN16-8", 3)
    assert m.num_classes == 3
    assert create_model("smallnet", 4, width=8).num_features == 64


def test_unknown_model_error() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet9000'.*preactresnet18"):
        create_model("resnet9000", 10)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_num_classes(bad: object) -> None:
    with pytest.raises((ValueError, TypeError), match="num_classes"):
        create_model("smallnet", bad)  # type: ignore[arg-type]


def test_bad_mix_args(models: dict) -> None:
    model = models["smallnet"]
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="mix_layer must be in"):
        model(x, mix_layer=model.mix_layers, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="together"):
        model(x, mix_layer=1)
    with pytest.raises(TypeError, match="mix_layer must be an int"):
        model(x, mix_layer=1.0, mix_fn=lambda h: h)
    with pytest.raises(TypeError, match="mix_fn must be callable"):
        model(x, mix_layer=1, mix_fn=3)
    with pytest.raises(TypeError):
        create_model("smallnet", 10, depth=3)
