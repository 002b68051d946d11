"""The stage protocol that lets Manifold Mixup mix hidden states.

A model supports hidden-state mixing when it has the attribute ``mix_layers`` (the number of layers
at which it can mix; layer 0 is the input, layer k >= 1 the output of its k-th residual stage) and
its ``forward`` accepts two keyword arguments::

    logits = model(x, mix_layer=k, mix_fn=fn)

which runs the network up to layer ``k``, replaces the hidden state ``h`` by ``fn(h)`` and finishes
the forward. ``model(x)`` (no keywords) is the ordinary forward. Passing the mixing function through
``forward`` keeps the protocol working through ``DistributedDataParallel`` and ``torch.compile``
wrappers, which forward keyword arguments unchanged.
"""
from __future__ import annotations

from torch import nn

__all__ = ["unwrap_model", "supports_manifold_mixup"]


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DDP/DataParallel (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def supports_manifold_mixup(model: nn.Module) -> bool:
    """True when the (unwrapped) model implements the stage protocol."""
    return isinstance(getattr(unwrap_model(model), "mix_layers", None), int)
