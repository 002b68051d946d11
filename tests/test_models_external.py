"""Tests for sagemix.models.external: torchvision/timm models by name and the ResNet stage wrapper."""
from __future__ import annotations

import pytest
import torch
import torchvision

from sagemix import MixStep, create_mixer
from sagemix.models import TorchvisionResNet, create_model, list_models, supports_manifold_mixup
from sagemix.models.external import list_torchvision_models


def _by_hand(net: torchvision.models.ResNet, x: torch.Tensor, k: int, fn) -> torch.Tensor:
    """torchvision's ResNet forward written out, applying ``fn`` after layer k (0: the input)."""
    h = fn(x) if k == 0 else x
    h = net.maxpool(net.relu(net.bn1(net.conv1(h))))
    for i, layer in enumerate((net.layer1, net.layer2, net.layer3, net.layer4), start=1):
        h = layer(h)
        if i == k:
            h = fn(h)
    return net.fc(torch.flatten(net.avgpool(h), 1))


def test_tv_resnet_plain_forward_is_torchvisions() -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=5).eval()
    wrapped = TorchvisionResNet(net).eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), net(x), rtol=0, atol=0)
    assert wrapped.mix_layers == 5 and wrapped.num_classes == 5 and wrapped.num_features == 512


@pytest.mark.parametrize("k", range(5))
def test_tv_resnet_mixing_at_layer_k_equals_running_the_stages_by_hand(k: int) -> None:
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=3).eval()
    wrapped = TorchvisionResNet(net).eval()
    perm = torch.tensor([2, 0, 1])

    def fn(h: torch.Tensor) -> torch.Tensor:
        return 0.7 * h + 0.3 * h[perm]

    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = wrapped(x, mix_layer=k, mix_fn=fn)
        torch.testing.assert_close(out, _by_hand(net, x, k, fn), rtol=0, atol=0)
        assert not torch.allclose(out, wrapped(x))  # the mixing did something


def test_create_model_tv_names() -> None:
    torch.manual_seed(0)
    model = create_model("tv_resnet18", 7)
    assert isinstance(model, TorchvisionResNet) and supports_manifold_mixup(model)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    other = create_model("TV-MobileNet_V3_Small", 4)  # case and -/_ insensitive, like the registry
    assert not supports_manifold_mixup(other)
    assert other.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)
    assert "resnet50" in list_torchvision_models()
    assert not any(n.startswith("tv_") for n in list_models())  # the registry listing is unchanged


def test_tv_resnet50_parameter_count() -> None:
    model = create_model("tv_resnet50", 1000)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's ResNet-50


def test_bad_external_names_and_flags() -> None:
    with pytest.raises(ValueError, match="unknown torchvision model 'resnet_nope'.*tv_<name>"):
        create_model("tv_resnet_nope", 3)
    with pytest.raises(TypeError, match="pretrained must be true or false, got 'yes'"):
        create_model("tv_resnet18", 3, pretrained="yes")
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        create_model("tv_resnet18", 2.5)


def test_manifold_mixup_step_with_tv_resnet() -> None:
    torch.manual_seed(0)
    model = create_model("tv_resnet18", 4)
    mixer = create_mixer("manifold_mixup", num_classes=4, generator=torch.Generator().manual_seed(0))
    step = MixStep(model, mixer)
    out = step(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]))
    assert torch.isfinite(out.loss)
    assert all(p.grad is not None for p in model.stages[0].parameters())
    with pytest.raises(ValueError, match="stage protocol"):
        MixStep(create_model("tv_mobilenet_v3_small", 4), mixer)
    # A plain torchvision ResNet (the README's own-loop pattern): the message names what makes it work.
    with pytest.raises(ValueError, match=r"TorchvisionResNet\(model\).*create_model\('tv_resnet18'"):
        MixStep(torchvision.models.resnet18(num_classes=4), mixer)
    wrapped = TorchvisionResNet(torchvision.models.resnet18(num_classes=4))
    assert torch.isfinite(MixStep(wrapped, mixer)(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])).loss)


def test_timm_model() -> None:
    pytest.importorskip("timm")
    model = create_model("timm_resnet18", 6)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 6)
    with pytest.raises(ValueError, match="unknown timm model 'no_such_net'"):
        create_model("timm_no_such_net", 6)
