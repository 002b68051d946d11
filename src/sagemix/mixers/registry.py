"""The mixer registry: ``create_mixer(name, **kwargs)`` and ``list_mixers()``.

The CLI, the configs and the benchmarks use the same names.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from .base import Mixer

__all__ = ["register_mixer", "create_mixer", "list_mixers", "get_mixer_class"]

_REGISTRY: dict[str, type] = {}
# Modules that register mixers on import; imported lazily by the registry functions so that a
# missing optional extra only matters when that method is used.
_MODULES = [
    "sagemix.mixers.vanilla",
    "sagemix.mixers.sage",
    "sagemix.mixers.mixup",
    "sagemix.mixers.manifold_mixup",
    "sagemix.mixers.cutmix",
    "sagemix.mixers.cutout",
    "sagemix.mixers.saliencymix",
    "sagemix.mixers.puzzlemix",
    "sagemix.mixers.comixup",
]
_loaded = False


def register_mixer(name: str) -> Callable[[type], type]:
    """Class decorator that registers a mixer under ``name``."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a mixer named {name!r} is already registered ({_REGISTRY[name].__name__})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a method module not written yet, not a missing extra
            if e.name != mod:
                raise
    _loaded = True


def list_mixers() -> list[str]:
    """Names of all registered mixers, sorted."""
    _load()
    return sorted(_REGISTRY)


def get_mixer_class(name: str) -> type:
    """The class registered under ``name``; ValueError naming the choices otherwise."""
    _load()
    key = str(name).lower().replace("-", "_")
    if key not in _REGISTRY:
        raise ValueError(f"unknown mixer {name!r}; expected one of {sorted(_REGISTRY)}")
    return _REGISTRY[key]


def create_mixer(name: str, **kwargs: Any) -> Mixer:
    """Create a mixer by registry name with keyword options, e.g. ``create_mixer("sage", num_classes=10)``."""
    return get_mixer_class(name)(**kwargs)
