"""Generating the corrupted test set in the layout of the official CIFAR-10-C release, and reading it.

:func:`generate_corrupted` writes ``<name>.npy`` (the 5 severities stacked) and ``labels.npy``, plus a
metadata file that makes a generated set resumable and records each file's SHA-256;
:func:`load_corrupted` reads it or the release, and refuses a generated file whose bytes changed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from ...utils import atomic_write, atomic_write_json
from .constants import ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, IMAGE_SIZE, SEVERITIES
from .common import corruption_rng, _check_frost_source, _check_name, _check_seed, _check_severity, _to_uint8
from .ops import _OPS, _as_uint8_images

__all__ = ["generate_corrupted", "load_corrupted"]

_META_FILE = "sagemix_corruptions.json"
#: Images per chunk in :func:`generate_corrupted`; part of what a seed reproduces.
_CHUNK = 1000


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype of a readable .npy file, or None when it is unreadable / truncated."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError):
        return None
    return tuple(arr.shape), arr.dtype


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _recorded_digests(folder: Path) -> dict[str, str]:
    """``{file name: sha256}`` recorded by :func:`generate_corrupted` ({} for the official release)."""
    meta_path = folder / _META_FILE
    if not meta_path.is_file():
        return {}
    try:
        files = json.loads(meta_path.read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """The record of a generated corrupted set; a one-line ValueError naming the file when it is damaged."""
    from ...run_folder import read_json

    try:
        meta = read_json(meta_path)
    except ValueError as e:
        raise ValueError(f"{e}; it is the record of the corrupted set in {str(meta_path.parent)!r}: delete that "
                         "folder to generate the set again, or choose another") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} must hold a JSON object (the record of the corrupted set), got "
                         f"{type(meta).__name__}; delete {str(meta_path.parent)!r} to generate the set again")
    return meta


def _record_digest(folder: Path, path: Path) -> None:
    meta_path = folder / _META_FILE
    meta = _read_meta(meta_path)
    meta.setdefault("files", {})[path.name] = _file_sha256(path)
    atomic_write_json(meta_path, meta)


def _check_labels(labels: Any, n: int) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"labels must be a 1-D sequence of {n} class indices (one per image), got shape {lab.shape}")
    if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0):
        raise ValueError(f"labels must be non-negative integers, got dtype {lab.dtype}"
                         + (f" and minimum {lab.min()}" if np.issubdtype(lab.dtype, np.integer) else ""))
    return lab.astype(np.int64)


def _check_names(corruptions: Iterable[str] | None, include_extra: bool) -> list[str]:
    if corruptions is None:
        return list(CORRUPTIONS) + (list(EXTRA_CORRUPTIONS) if include_extra else [])
    if isinstance(corruptions, str):
        raise TypeError(f"corruptions must be a sequence of names, not a single string ({corruptions!r}); "
                        f"wrap it in a list")
    names = list(corruptions)
    for nm in names:
        if nm not in ALL_CORRUPTIONS:
            raise ValueError(f"corruptions must hold names from {', '.join(ALL_CORRUPTIONS)}; got {nm!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"corruptions must not repeat a name, got {names}")
    if include_extra:  # as evaluate_corruptions does: the extras are added to an explicit list too
        names += [nm for nm in EXTRA_CORRUPTIONS if nm not in names]
    return names


def generate_corrupted(images: Any, labels: Any, out_dir: str | os.PathLike, *,
                       corruptions: Sequence[str] | None = None, include_extra: bool = False, seed: int = 0,
                       progress: bool = True, frost_source: str = "package") -> dict[str, Path]:
    """Write a CIFAR-C style folder: ``<name>.npy`` per corruption and ``labels.npy``.

    Layout of the official CIFAR-10-C / CIFAR-100-C release: ``<name>.npy`` is (5N, 32, 32, 3)
    uint8 whose row ``(s-1)*N + i`` is severity s of image i; ``labels.npy`` is the N labels
    repeated 5 times, uint8 (int64 when a label exceeds 255). Every file is written atomically
    (temp file + ``os.replace``); files already complete are skipped, so an interrupted run
    resumes. ``sagemix_corruptions.json`` records the seed, the frost source and digests of the
    inputs; resuming with different inputs or seed raises instead of mixing two sets.

    Args:
        images: uint8 (N, 32, 32, 3), in the order of the test set (torchvision ``.data``).
        labels: (N,) class indices.
        out_dir: the output folder (created).
        corruptions: names to generate; default the 15 benchmark ones.
        include_extra: also generate the 4 :data:`EXTRA_CORRUPTIONS` (after ``corruptions``).
        seed: one generator per (corruption, severity) comes from it (:func:`corruption_rng`).
        progress: show a tqdm bar.
        frost_source: see :func:`corrupt`.

    Returns:
        ``{name: path}`` for every requested corruption plus ``"labels"``.
    """
    batch, single = _as_uint8_images(images)
    if single:
        raise ValueError(f"images must be a batch (N, 32, 32, 3), got shape {batch.shape[1:]}")
    n = len(batch)
    lab = _check_labels(labels, n)
    names = _check_names(corruptions, include_extra)
    _check_seed(seed)
    _check_frost_source(frost_source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    meta = {
        "format": "CIFAR-C layout: <name>.npy (5N,32,32,3) uint8, row (s-1)*N+i = severity s of image i",
        "seed": int(seed), "num_images": n, "frost_source": frost_source,
        "images_sha256": hashlib.sha256(batch.tobytes()).hexdigest(),
        "labels_sha256": hashlib.sha256(lab.tobytes()).hexdigest(),
    }
    meta_path = out / _META_FILE
    if meta_path.exists():
        old = _read_meta(meta_path)
        diff = [k for k in ("seed", "num_images", "frost_source", "images_sha256", "labels_sha256")
                if old.get(k) != meta[k]]
        if diff:
            raise ValueError(f"out_dir {str(out)!r} holds corruptions generated with a different "
                             f"{', '.join(diff)}; use a new folder or delete it")
    else:
        atomic_write_json(meta_path, meta)

    label_dtype = np.uint8 if (lab.size == 0 or lab.max() <= 255) else np.int64
    labels5 = np.tile(lab, 5).astype(label_dtype)
    paths: dict[str, Path] = {"labels": out / "labels.npy"}
    if (out / "labels.npy").exists():
        try:
            old_labels = np.load(out / "labels.npy")
        except (OSError, ValueError, EOFError):
            old_labels = None
        if old_labels is None or not np.array_equal(old_labels, labels5):
            atomic_write(out / "labels.npy", lambda f: np.save(f, labels5))
    else:
        atomic_write(out / "labels.npy", lambda f: np.save(f, labels5))
    if _recorded_digests(out).get("labels.npy") != _file_sha256(out / "labels.npy"):
        _record_digest(out, out / "labels.npy")

    todo = []
    recorded = _recorded_digests(out)
    for nm in names:
        paths[nm] = out / f"{nm}.npy"
        if (_npy_header(paths[nm]) != ((5 * n, IMAGE_SIZE, IMAGE_SIZE, 3), np.dtype(np.uint8))
                or recorded.get(paths[nm].name) != _file_sha256(paths[nm])):  # damaged or unrecorded: redo
            todo.append(nm)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo) * 5, desc="corruptions", unit="sev")
    try:
        for nm in todo:
            result = np.empty((5 * n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
            for s in SEVERITIES:
                gen = corruption_rng(seed, nm, s)
                for i in range(0, n, _CHUNK):  # one generator per severity, consumed chunk after chunk
                    chunk = batch[i:i + _CHUNK]
                    res = _OPS[nm](chunk, s, gen, frost_source=frost_source)
                    result[(s - 1) * n + i:(s - 1) * n + i + len(chunk)] = res if res.dtype == np.uint8 else _to_uint8(res)
                if bar is not None:
                    bar.set_postfix_str(f"{nm} s{s}")
                    bar.update(1)
            atomic_write(paths[nm], lambda f: np.save(f, result))
            _record_digest(out, paths[nm])
    finally:
        if bar is not None:
            bar.close()
    return paths


def load_corrupted(c_dir: str | os.PathLike, name: str, *, severity: int | None = None,
                   mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Read one corruption of a CIFAR-10-C / CIFAR-100-C folder (official release or generated).

    Args:
        c_dir: the folder holding ``<name>.npy`` and ``labels.npy``.
        name: one of :data:`ALL_CORRUPTIONS`.
        severity: None for all 5 stacked (5N rows), or 1..5 for that severity's N rows.
        mmap: memory-map the images instead of reading them (the official files are 150 MB each).

    Returns:
        ``(images, labels)``: uint8 (M, H, W, 3) and int64 (M,).

    Raises:
        FileNotFoundError: naming the expected file when the folder or a file is missing.
        ValueError: when a file has the wrong shape or dtype, or a generated file's bytes changed since
            it was written (its SHA-256 is recorded in ``sagemix_corruptions.json``).
    """
    _check_name(name)
    if severity is not None:
        _check_severity(severity)
    folder = Path(c_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"c_dir {str(folder)!r} is not a folder; expected a CIFAR-10-C / CIFAR-100-C "
                                f"folder holding <corruption>.npy files and labels.npy")
    img_path, lab_path = folder / f"{name}.npy", folder / "labels.npy"
    for p in (img_path, lab_path):
        if not p.is_file():
            present = sorted(q.stem for q in folder.glob("*.npy") if q.stem in ALL_CORRUPTIONS)
            raise FileNotFoundError(f"expected {p.name} in {str(folder)!r} (CIFAR-C layout: <corruption>.npy and "
                                    f"labels.npy); corruptions present: {present or 'none'}")
    recorded = _recorded_digests(folder)  # a generated set records its files' SHA-256; check them
    for p in (img_path, lab_path):
        if p.name in recorded and _file_sha256(p) != recorded[p.name]:
            raise ValueError(f"{str(p)!r} is damaged: its SHA-256 differs from the one recorded when it was "
                             f"generated; delete it and generate it again (sagemix eval --generate-corruptions)")
    try:
        imgs = np.load(img_path, mmap_mode="r" if mmap else None, allow_pickle=False)
        labs = np.load(lab_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"could not read {img_path.name} / labels.npy in {str(folder)!r} as .npy arrays: {e}") from e
    if imgs.ndim != 4 or imgs.shape[-1] != 3 or imgs.dtype != np.uint8 or imgs.shape[0] % 5:
        raise ValueError(f"{img_path} must be uint8 (5N, H, W, 3) (5 severities stacked), "
                         f"got {imgs.dtype} {imgs.shape}")
    if labs.ndim != 1 or not np.issubdtype(labs.dtype, np.integer):
        raise ValueError(f"{lab_path} must be a 1-D integer array, got {labs.dtype} {labs.shape}")
    if labs.shape[0] != imgs.shape[0]:
        raise ValueError(f"{lab_path} has {labs.shape[0]} labels but {img_path.name} has {imgs.shape[0]} images")
    labs = labs.astype(np.int64)
    if severity is not None:
        n = imgs.shape[0] // 5
        imgs, labs = imgs[(severity - 1) * n:severity * n], labs[(severity - 1) * n:severity * n]
    return imgs, labs
