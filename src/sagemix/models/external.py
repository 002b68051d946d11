"""Models from torchvision and timm by name, for ImageNet-scale training.

Naming (what ``create_model`` and the config's ``model`` key accept besides the registry names):

- ``tv_<name>``: ``torchvision.models.get_model(<name>)``, any classification model of
  ``torchvision.models.list_models(module=torchvision.models)`` (``tv_resnet50``, ``tv_resnet18``,
  ``tv_wide_resnet50_2``, ``tv_convnext_tiny``, ``tv_vit_b_16``, ...);
- ``timm_<name>``: ``timm.create_model(<name>)`` when timm is installed
  (``pip install "sagemix[timm]"``), e.g. ``timm_resnet50``.

Models are built with random weights (``weights=None`` / ``pretrained=False``) and ``num_classes``
outputs: nothing is downloaded. ``pretrained=True`` asks the library for its default ImageNet
weights (a download, or its cache) and fails with a clear error when they cannot be fetched.

torchvision's ResNet family (ResNet, ResNeXt, Wide ResNet) comes as a :class:`TorchvisionResNet`,
a :class:`~sagemix.models.staged.StagedNet` over the same modules: stem (conv1, bn1, relu,
maxpool), the four stages ``layer1..layer4`` and the head (average pooling, ``fc``), so it follows
Manifold Mixup's stage protocol (layer 0 = input, layer k = output of ``layer<k>``) and its forward
is torchvision's. Other architectures are returned as the library builds them (no hidden-state
mixing; Manifold Mixup then reports that the model lacks the protocol).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .staged import StagedNet, check_num_classes

__all__ = ["TV_PREFIX", "TIMM_PREFIX", "TorchvisionResNet", "torchvision_model", "timm_model", "external_model_fn",
           "list_torchvision_models"]

TV_PREFIX = "tv_"
TIMM_PREFIX = "timm_"


class TorchvisionResNet(StagedNet):
    """A torchvision ResNet/ResNeXt/Wide ResNet as a :class:`StagedNet` (the stage protocol).

    The modules are torchvision's own (``self.stem[0]`` is its ``conv1``, ``self.stages[k - 1]`` its
    ``layer<k>``, ``self.fc`` its ``fc``), so the plain forward computes exactly what torchvision's does.

    Args:
        net: a ``torchvision.models.ResNet``.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.head = nn.Sequential(net.avgpool, nn.Flatten(1))
        self.fc = net.fc
        self._finish_init()


def list_torchvision_models() -> list[str]:
    """torchvision's classification model names (use them as ``tv_<name>``), sorted."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _check_pretrained(pretrained: Any) -> bool:
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be true or false, got {pretrained!r}")
    return pretrained


def _weights_error(lib: str, name: str, err: Exception) -> RuntimeError:
    return RuntimeError(f"pretrained=True: could not get the default weights of {lib} model {name!r} ({err}); "
                        "they are downloaded on first use, which needs network access (or a filled torch hub "
                        "cache). Use pretrained=false to train from random weights.")


def torchvision_model(name: str, num_classes: int, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """torchvision's classification model ``name`` with ``num_classes`` outputs.

    Args:
        name: a torchvision model name (without the ``tv_`` prefix), e.g. ``"resnet50"``.
        num_classes: the number of output logits.
        pretrained: load torchvision's default ImageNet weights (a download; the classifier is
            replaced when ``num_classes != 1000``, ResNet family only).
        **kwargs: options of the torchvision builder (e.g. ``zero_init_residual=True``).

    Returns:
        A :class:`TorchvisionResNet` for the ResNet family, otherwise torchvision's module.

    Raises:
        ValueError: an unknown name (the message lists torchvision's names).
    """
    import torchvision

    num_classes = check_num_classes(num_classes)
    names = list_torchvision_models()
    if name not in names:
        raise ValueError(f"unknown torchvision model {name!r} (model '{TV_PREFIX}{name}'); expected "
                         f"'{TV_PREFIX}<name>' with <name> one of {names}")
    if _check_pretrained(pretrained):
        try:
            net = torchvision.models.get_model(name, weights="DEFAULT", **kwargs)
        except (OSError, RuntimeError) as e:  # URLError is an OSError
            raise _weights_error("torchvision", name, e) from e
        if num_classes != 1000:
            if not isinstance(net, torchvision.models.ResNet):
                raise ValueError(f"pretrained=True with num_classes={num_classes} is supported for the ResNet "
                                 f"family only (its fc is replaced), not {name!r}")
            net.fc = nn.Linear(net.fc.in_features, num_classes)
    else:
        net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    if isinstance(net, torchvision.models.ResNet):
        return TorchvisionResNet(net)
    return net


def timm_model(name: str, num_classes: int, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's model ``name`` with ``num_classes`` outputs (needs ``pip install "sagemix[timm]"``).

    Args:
        name: a timm model name (without the ``timm_`` prefix), e.g. ``"resnet50"``.
        num_classes: the number of output logits.
        pretrained: load timm's default weights (a download from the Hugging Face hub).
        **kwargs: options of ``timm.create_model`` (e.g. ``drop_path_rate=0.1``).

    Raises:
        ImportError: timm is not installed.
        ValueError: an unknown name.
    """
    try:
        import timm
    except ImportError as e:
        raise ImportError(f"model '{TIMM_PREFIX}{name}' needs timm: pip install \"sagemix[timm]\"") from e
    num_classes = check_num_classes(num_classes)
    if not timm.is_model(name):
        raise ValueError(f"unknown timm model {name!r} (model '{TIMM_PREFIX}{name}'); see timm.list_models()")
    if not _check_pretrained(pretrained):
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **kwargs)
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, **kwargs)
    except (OSError, RuntimeError) as e:
        raise _weights_error("timm", name, e) from e


def external_model_fn(key: str) -> Any:
    """The constructor ``fn(num_classes, **kw)`` of a ``tv_``/``timm_`` name, or None for other names."""
    if key.startswith(TV_PREFIX):
        rest = key[len(TV_PREFIX):]
        return lambda num_classes, **kw: torchvision_model(rest, num_classes, **kw)
    if key.startswith(TIMM_PREFIX):
        rest = key[len(TIMM_PREFIX):]
        return lambda num_classes, **kw: timm_model(rest, num_classes, **kw)
    return None
