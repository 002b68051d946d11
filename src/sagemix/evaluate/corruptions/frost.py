"""Frost textures: the photographs of the ``imagecorruptions-imaug`` wheel, or procedural ones.

The procedural textures (``frost_source="procedural"``) are a documented deviation: frost results are
then not comparable with published CIFAR-C numbers.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .constants import _FROST_FILES, _FROST_MSG, _FROST_TEAL, _FROST_WHITE
from .common import _check_frost_source, _cv2
from .helpers import plasma_fractal

__all__ = ["load_frost_images"]

def _frost_package_paths() -> list[Path]:
    """Paths of frost1..5 inside the installed ``imagecorruptions`` package, without importing it."""
    candidates: list[Path] = []
    try:
        spec = importlib.util.find_spec("imagecorruptions")  # a top-level find_spec imports nothing
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates += [Path(loc) / "frost", Path(loc)]
    try:
        dist = importlib.metadata.distribution("imagecorruptions-imaug")
        candidates.append(Path(str(dist.locate_file("imagecorruptions/frost"))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for folder in candidates:
        paths = [folder / f for f in _FROST_FILES]
        if all(p.is_file() for p in paths):
            return paths
    raise ImportError("the frost corruption needs the frost photographs of the imagecorruptions-imaug wheel: "
                      f"{_FROST_MSG} (or pass frost_source='procedural' for procedural textures, a documented "
                      "deviation whose frost results are not comparable with published CIFAR-C numbers)")


@functools.lru_cache(maxsize=2)
def load_frost_images(source: str = "package") -> tuple[np.ndarray, ...]:
    """The 5 frost textures, ready to crop: RGB uint8 (H, W, 3), read-only.

    Args:
        source: ``"package"`` reads frost1.png..frost5.jpg from the installed
            ``imagecorruptions-imaug`` wheel (``pip install --no-deps imagecorruptions-imaug==1.1.5``),
            as 3-channel BGR (alpha dropped), resized x0.2 with ``cv2.resize`` INTER_LINEAR, then
            converted to RGB. Shapes (120, 180), (63, 112), (63, 112), (70, 105), (99, 132).
            ``"procedural"`` (a documented deviation) builds 5 seeded 128x128 textures: plasma plus
            thin bright streaks, lightly blurred, one tinted teal and four white-blue with the
            photographs' channel means and standard deviations.

    Raises:
        ImportError: for ``"package"`` when the wheel is not installed.
    """
    _check_frost_source(source)
    cv2 = _cv2()
    if source == "procedural":
        return _procedural_frost(cv2)
    out = []
    for path in _frost_package_paths():
        data = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"could not decode the frost image {path}")
        small = cv2.resize(bgr, (0, 0), fx=0.2, fy=0.2)  # INTER_LINEAR; exactly 1/5 is decimation
        rgb = np.ascontiguousarray(small[..., ::-1])
        rgb.setflags(write=False)
        out.append(rgb)
    return tuple(out)


def _procedural_frost(cv2: Any) -> tuple[np.ndarray, ...]:
    gen = np.random.default_rng(np.random.SeedSequence([2022, 5, 128]))  # fixed: same textures everywhere
    size = 128
    textures = []
    for k in range(5):
        base = plasma_fractal(size, 2.0, rng=gen)
        streaks = np.zeros((size, size), dtype=np.float32)
        count = 600
        length = gen.uniform(2, 10, count)
        angle = gen.uniform(0, 2 * np.pi, count)
        x0 = gen.uniform(0, size, count)
        y0 = gen.uniform(0, size, count)
        level = gen.uniform(0.5, 1.0, count)
        x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        for j in range(count):  # drawing primitives: one cv2 call per streak, done once and cached
            cv2.line(streaks, (int(x0[j]), int(y0[j])), (int(x1[j]), int(y1[j])), float(level[j]), 1, cv2.LINE_AA)
        tex = cv2.GaussianBlur((0.5 * base + streaks).astype(np.float32), (0, 0), 0.7)
        tex = (tex - tex.mean()) / tex.std()
        mean, std = _FROST_TEAL if k == 0 else _FROST_WHITE
        rgb = np.stack([mean[c] + std[c] * tex for c in range(3)], axis=-1)
        arr = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
        arr.setflags(write=False)
        textures.append(arr)
    return tuple(textures)
