"""The model registry: ``register_model``, ``create_model``, ``list_models``, ``get_model_fn``.

The CIFAR networks and ``smallnet`` register themselves (their modules are imported on first use);
``tv_<name>`` and ``timm_<name>`` resolve to torchvision's and timm's models
(:mod:`sagemix.models.external`). Every model built here is a :class:`sagemix.models.staged.StagedNet`
where the architecture allows (the stage protocol of Manifold Mixup).
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..registry import Registry

__all__ = ["register_model", "create_model", "list_models", "get_model_fn"]

# Modules that register models on import; imported lazily (they import this module).
_MODELS: Registry[Callable[..., nn.Module]] = Registry("model", [
    "sagemix.models.preact_resnet",
    "sagemix.models.wide_resnet",
    "sagemix.models.resnext",
    "sagemix.models.smallnet",
])


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a model constructor ``fn(num_classes, **kw) -> nn.Module`` under ``name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        return _MODELS.add(name, fn)

    return deco


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return _MODELS.names()


def get_model_fn(name: str) -> Callable[..., nn.Module]:
    """The constructor registered under ``name`` (case and ``-``/``_`` insensitive).

    ``tv_<name>`` and ``timm_<name>`` are torchvision's and timm's models
    (:mod:`sagemix.models.external`); they are not listed by :func:`list_models`.
    """
    if isinstance(name, str):
        from .external import external_model_fn

        fn = external_model_fn(_MODELS.key(name))
        if fn is not None:
            return fn
    return _MODELS.get(name)


def create_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
    """Create a model by registry name, e.g. ``create_model("preactresnet18", 100)``.

    Args:
        name: one of :func:`list_models` (``preactresnet18``, ``wrn16_8``, ``resnext29_4_24``,
            ``smallnet``), ``tv_<torchvision name>`` (e.g. ``tv_resnet50``) or ``timm_<timm name>``
            (:mod:`sagemix.models.external`).
        num_classes: the number of output logits.
        **kwargs: keyword options of that model (e.g. ``final_bn=True`` for PreActResNet18).

    Returns:
        The model (train mode, float32, on the CPU): a :class:`StagedNet` for the registry names and
        torchvision's ResNet family, the library's module for other ``tv_``/``timm_`` models.

    Example:
        >>> import torch
        >>> model = create_model("smallnet", 10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    return get_model_fn(name)(num_classes, **kwargs)
