"""The mixer registry: ``create_mixer(name, **kwargs)`` and ``list_mixers()``.

The CLI, the configs and the benchmarks use the same names.
"""
from __future__ import annotations

from typing import Any, Callable

from ..registry import Registry, did_you_mean
from .base import Mixer

__all__ = ["register_mixer", "create_mixer", "list_mixers", "get_mixer_class", "method_names", "METHOD_ORDER"]

#: The order of the methods in tables and benchmarks: the baseline, the global mixers, the saliency-guided
#: ones (as in the SAGE paper's tables), SAGE last.
METHOD_ORDER = ["vanilla", "mixup", "manifold_mixup", "cutmix", "cutout", "saliencymix", "puzzlemix", "comixup",
                "sage"]

# Modules that register mixers on import; imported lazily so that a missing optional extra only
# matters when that method is used.
_MIXERS: Registry[type] = Registry("mixer", [
    "sagemix.mixers.vanilla",
    "sagemix.mixers.sage",
    "sagemix.mixers.mixup",
    "sagemix.mixers.manifold_mixup",
    "sagemix.mixers.cutmix",
    "sagemix.mixers.cutout",
    "sagemix.mixers.saliencymix",
    "sagemix.mixers.puzzlemix",
    "sagemix.mixers.comixup",
])


def register_mixer(name: str) -> Callable[[type], type]:
    """Class decorator that registers a mixer under ``name``."""

    def deco(cls: type) -> type:
        cls.name = name
        return _MIXERS.add(name, cls)

    return deco


def list_mixers() -> list[str]:
    """Names of all registered mixers, sorted."""
    return _MIXERS.names()


def get_mixer_class(name: str) -> type:
    """The class registered under ``name``; ValueError naming the choices otherwise."""
    return _MIXERS.get(name)


def create_mixer(name: str, **kwargs: Any) -> Mixer:
    """Create a mixer by registry name with keyword options, e.g. ``create_mixer("sage", num_classes=10)``."""
    return get_mixer_class(name)(**kwargs)


def method_names(methods: Any, where: str = "methods", known: list[str] | None = None) -> list[str]:
    """Registry names of ``methods`` (``-`` read as ``_``, any case), in order, without repeats.

    Args:
        methods: an iterable of method names (not a single string).
        where: how the caller's user names the argument (``"--methods"``, ``"methods"``), for the errors.
        known: the names allowed (default: :func:`list_mixers`).

    Raises:
        TypeError: ``methods`` is a string or not iterable.
        ValueError: an unknown name, listing the known ones.

    Example:
        >>> method_names(["SAGE", "manifold-mixup", "sage"])
        ['sage', 'manifold_mixup']
    """
    if isinstance(methods, str) or not hasattr(methods, "__iter__"):
        raise TypeError(f"{where} must be a list of method names, got {methods!r}")
    known = list_mixers() if known is None else known
    names: list[str] = []
    for m in methods:
        key = str(m).lower().replace("-", "_")
        if key not in known:
            raise ValueError(f"{where}: unknown method {m!r}{did_you_mean(key, known)}; expected some of {known}")
        if key not in names:
            names.append(key)
    return names
