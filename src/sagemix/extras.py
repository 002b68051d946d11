"""Which mixing methods need an optional extra, and whether it is installed (checked up front).

SaliencyMix's default saliency needs OpenCV's contrib build (``cv2.saliency``), Puzzle Mix and
Co-Mixup need the graph-cut library ``gco-wrapper``. The commands that run many methods (``bench``,
``show``, ``compare``) ask :func:`missing_extras` before doing any work, skip the methods it names,
and say so, instead of failing when the method first mixes.
"""
from __future__ import annotations

from typing import Any, Iterable

__all__ = ["EXTRAS", "import_extra", "missing_extras", "short_hint"]

# method -> (the pip extra, what it provides)
EXTRAS: dict[str, tuple[str, str]] = {
    "saliencymix": ("saliencymix", "OpenCV's contrib build (cv2.saliency)"),
    "puzzlemix": ("puzzlemix", "the graph-cut library gco-wrapper"),
    "comixup": ("comixup", "the graph-cut library gco-wrapper"),
}


def import_extra(method: str) -> Any:
    """Import what ``method`` needs beyond the core install; returns the module (None when nothing).

    Raises:
        ImportError: the extra is not installed.
    """
    if method == "saliencymix":
        import cv2  # noqa: PLC0415 (optional extra)

        if not hasattr(cv2, "saliency"):
            raise ImportError("cv2 has no 'saliency' module (the contrib build is needed)")
        return cv2.saliency
    if method in ("puzzlemix", "comixup"):
        from .functional.graphcut import import_gco  # noqa: PLC0415

        return import_gco(method)
    return None


def short_hint(method: str) -> str:
    """A short install hint for ``method`` (fits a figure label): ``pip install "sagemix[puzzlemix]"``."""
    extra = EXTRAS.get(method, (method, ""))[0]
    return f'pip install "sagemix[{extra}]"'


def missing_extras(methods: Iterable[str]) -> dict[str, str]:
    """The methods among ``methods`` whose optional extra is missing, each with a one-line reason.

    Args:
        methods: registry names of mixers.

    Returns:
        ``{method: "needs <what> (pip install "sagemix[<extra>]")"}``, in the order given; empty when all
        can run.
    """
    if isinstance(methods, str):
        raise TypeError(f"methods must be a list of method names, got the string {methods!r}")
    missing: dict[str, str] = {}
    for m in methods:
        if m not in EXTRAS or m in missing:
            continue
        try:
            import_extra(m)
        except ImportError:
            missing[m] = f"needs {EXTRAS[m][1]} ({short_hint(m)})"
    return missing
