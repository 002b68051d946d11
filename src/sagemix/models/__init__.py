"""Models for sagemix: the paper's CIFAR networks and a small fast CPU network.

``create_model(name, num_classes, **kw)`` with names ``preactresnet18``, ``wrn16_8``,
``resnext29_4_24`` (SAGE, Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113; docs/SAGE.md §7) and
``smallnet``. All implement Manifold Mixup's stage protocol (``mix_layers``;
``forward(x, mix_layer=None, mix_fn=None)``) and accept any input size.

At ImageNet scale: ``tv_<name>`` is any torchvision classification model (``tv_resnet50``; the ResNet
family with the stage protocol) and ``timm_<name>`` any timm model when timm is installed
(``sagemix[timm]``); see :mod:`sagemix.models.external`. Weights are random unless ``pretrained=True``.
"""
from __future__ import annotations

from .protocol import supports_manifold_mixup, unwrap_model
from .external import TorchvisionResNet, list_torchvision_models
from .registry import create_model, get_model_fn, list_models, register_model
from .staged import StagedNet

__all__ = ["create_model", "list_models", "register_model", "get_model_fn", "StagedNet",
           "supports_manifold_mixup", "unwrap_model", "TorchvisionResNet", "list_torchvision_models"]
