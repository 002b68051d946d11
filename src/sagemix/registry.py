"""One name -> object registry, shared by the mixers, the models and the datasets.

Each registry knows the modules that register into it and imports them on first use, so that
``import sagemix`` stays light and a missing optional extra only matters to what needs it.
Names are case-insensitive and ``-`` equals ``_``.
"""
from __future__ import annotations

import difflib
import importlib
from typing import Generic, Iterable, TypeVar

__all__ = ["Registry", "did_you_mean"]

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``name`` (difflib), else ``""``.

    >>> did_you_mean("sagee", ["mixup", "sage"])
    " (did you mean 'sage'?)"
    """
    close = difflib.get_close_matches(Registry.key(str(name)), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Registered objects of one kind (``"mixer"``, ``"model"``, ``"dataset"``).

    Args:
        kind: the word used in error messages.
        modules: modules imported on first lookup; importing them registers their objects.
    """

    def __init__(self, kind: str, modules: list[str]) -> None:
        self.kind = kind
        self.modules = list(modules)
        self._items: dict[str, T] = {}
        self._loaded = False

    @staticmethod
    def key(name: str) -> str:
        return name.lower().replace("-", "_")

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` under ``name``; the same object again is a no-op, another one an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty str, got {name!r}")
        key = self.key(name)
        if key in self._items and self._items[key] is not obj:
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self._items[key] = obj
        return obj

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for mod in self.modules:
                importlib.import_module(mod)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> T:
        """The object registered under ``name``; a ValueError naming the choices otherwise."""
        self._load()
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a str, got {type(name).__name__}")
        key = self.key(name)
        if key not in self._items:
            raise ValueError(f"unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                             f"expected one of {sorted(self._items)}")
        return self._items[key]
