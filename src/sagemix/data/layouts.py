"""Compact file indexes of image datasets on disk, and the parsers of their folder layouts.

A :class:`FileIndex` holds the files of one split as a single uint8 array of encoded relative
paths plus an int64 offset array and an int64 label array (a few bytes per file, no Python object
per file), so a streaming dataset of a million images costs tens of MB, not GB, and forks cheaply
into DataLoader workers.

Layouts (:func:`scan_layout`, ``layout="auto"`` picks the first that matches):

- ``"tiny_imagenet"``: ``wnids.txt``, ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` with
  ``val/val_annotations.txt`` (tab-separated ``filename, wnid, x0, y0, x1, y1``);
- ``"imagenet"``: ``train/<wnid>/*.JPEG`` and ``val/`` either in class folders or flat
  (``val/*.JPEG``) with a labels file: ``val_labels`` if given, else the first found of
  ``LOC_val_solution.csv`` (Kaggle: ``ImageId,PredictionString`` whose first word is the wnid) or
  ``val_labels.txt`` (lines ``<filename> <wnid>``, comma or whitespace separated) in ``root`` or
  ``root/val``;
- ``"imagefolder"``: torchvision's ``ImageFolder`` layout, ``root/<class>/**/<image>``, or
  ``root/train/<class>/...`` with ``root/test/`` or ``root/val/`` (the same scanner as the
  in-memory image folder, :func:`find_images`, the one class-folder scanner, and :func:`split_dirs`).

Class names are sorted; labels are ``0..K-1`` in that order, those of the training split (a
validation file of a class without training images is an error).
"""
from __future__ import annotations

import csv
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


__all__ = ["FileIndex", "scan_layout", "detect_layout", "find_images", "split_dirs", "LAYOUTS", "IMAGE_EXTENSIONS",
           "IMAGENET_MEAN", "IMAGENET_STD"]

LAYOUTS = ("auto", "imagefolder", "imagenet", "tiny_imagenet")
# The usual ImageNet normalisation constants (0-1 scale), torchvision's reference recipes.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_VAL_LABEL_FILES = ("LOC_val_solution.csv", "val_labels.txt")


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".tif", ".tiff", ".webp")


def find_images(folder: str | os.PathLike, *, empty_classes: str = "error") -> tuple[list[Path], list[int], list[str]]:
    """Image files of ``folder`` (one sub-folder per class): (paths, labels, sorted class names).

    This is the one class-folder scanner of :mod:`sagemix.data` (the in-memory and the streaming
    image folders both use it). Files are found recursively in each class folder, sorted; hidden
    files and folders are skipped.

    Args:
        folder: the folder holding one sub-folder per class.
        empty_classes: what to do with a class folder that holds no image (e.g. only a ``.txt``):
            ``"error"`` (ValueError naming the folder) or ``"drop"`` (leave the class out, with a
            warning; the remaining classes are labelled ``0..K-1`` in sorted order).
    """
    if empty_classes not in ("error", "drop"):
        raise ValueError(f"empty_classes must be 'error' or 'drop', got {empty_classes!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist or is not a folder")
    names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise ValueError(f"image folder {str(folder)!r} has no class sub-folders; expected one folder per class")
    paths: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    empty: list[str] = []
    for c in names:
        files = sorted(p for p in (folder / c).rglob("*")
                       if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file())
        if not files:
            empty.append(c)
            continue
        paths += files
        labels += [len(classes)] * len(files)
        classes.append(c)
    if empty and empty_classes == "error":
        raise ValueError(f"class folder {str(folder / empty[0])!r} holds no image (extensions {IMAGE_EXTENSIONS})"
                         f"{f', nor do {len(empty) - 1} other class folder(s)' if len(empty) > 1 else ''}; "
                         "remove it, or pass empty_classes='drop' to leave such classes out")
    if not paths:
        raise ValueError(f"image folder {str(folder)!r} has class folders but no images with extensions "
                         f"{IMAGE_EXTENSIONS}")
    if empty:
        warnings.warn(f"image folder {str(folder)!r}: dropped {len(empty)} empty class folder(s) "
                      f"{empty[:5]}{'...' if len(empty) > 5 else ''}", stacklevel=2)
    return paths, labels, classes


def split_dirs(root: Path) -> tuple[Path, Path] | None:
    """(train folder, test folder) when ``root`` holds ``train/`` and ``test/`` (or ``val/``), else None."""
    test = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test is not None:
        return root / "train", test
    return None


@dataclass(frozen=True, eq=False)
class FileIndex:
    """The files of one split: relative paths under ``root``, labels and class names.

    Attributes:
        root: the folder the paths are relative to.
        blob: uint8 (total_bytes,) the relative paths, ``os.fsencode``-d, concatenated.
        offsets: int64 (N + 1,) path ``i`` is ``blob[offsets[i]:offsets[i + 1]]``.
        labels: int64 (N,) labels in ``[0, len(classes))``.
        classes: the class names, sorted.
        layout: the layout parsed (``"imagefolder"``, ``"imagenet"``, ``"tiny_imagenet"``).
        split: the split folder or description (``"train"``, ``"val"``, ``"all"``).
    """

    root: str
    blob: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    layout: str
    split: str

    @classmethod
    def from_paths(cls, root: str | os.PathLike, paths: Sequence[str | os.PathLike], labels: Sequence[int],
                   classes: Sequence[str], layout: str, split: str) -> "FileIndex":
        """Build an index from absolute (or ``root``-relative) paths and their labels."""
        root_s = os.path.abspath(os.fspath(root))
        encoded = [os.fsencode(os.path.relpath(os.path.abspath(os.fspath(p)), root_s)) for p in paths]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        lab = np.asarray(labels, dtype=np.int64)
        if lab.shape != (len(encoded),):
            raise ValueError(f"labels must hold one label per path ({len(encoded)}), got shape {lab.shape}")
        return cls(root_s, blob, offsets, lab, tuple(str(c) for c in classes), layout, split)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def relpath(self, i: int) -> str:
        """The path of file ``i`` relative to :attr:`root`."""
        return os.fsdecode(self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes())

    def path(self, i: int) -> str:
        """The full path of file ``i``."""
        return os.path.join(self.root, self.relpath(i))

    def subset(self, idx: Sequence[int] | np.ndarray, split: str | None = None) -> "FileIndex":
        """The files ``idx`` (in that order), with the same classes."""
        idx = np.asarray(idx, dtype=np.int64)
        return FileIndex.from_paths(self.root, [os.path.join(self.root, self.relpath(int(i))) for i in idx],
                                    self.labels[idx], self.classes, self.layout, split or self.split)

    def digest(self) -> str:
        """16 hex digits of the sha256 of the sorted ``(relative path, label)`` pairs and the class names."""
        order = sorted(range(len(self)), key=self.relpath)
        h = hashlib.sha256("\n".join(self.classes).encode() + b"\0")
        for i in order:
            h.update(self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes() + f"\0{self.labels[i]}\n".encode())
        return h.hexdigest()[:16]


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _flat_images(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image(e.name))


def _has_class_dirs(folder: Path) -> bool:
    return any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(folder))


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of ``root``: ``"tiny_imagenet"``, ``"imagenet"`` (flat ``val/``) or ``"imagefolder"``."""
    r = Path(root)
    if (r / "wnids.txt").is_file() and (r / "val" / "val_annotations.txt").is_file():
        return "tiny_imagenet"
    if (r / "train").is_dir() and (r / "val").is_dir() and not _has_class_dirs(r / "val") \
            and _flat_images(r / "val"):
        return "imagenet"
    return "imagefolder"


def _read_val_labels(path: Path) -> dict[str, str]:
    """``{file name: class}`` from a Kaggle ``LOC_val_solution.csv`` or a ``<filename> <wnid>`` list."""
    out: dict[str, str] = {}
    with open(path, newline="") as f:
        if path.suffix == ".csv":
            rows = csv.reader(f)
            header = next(rows, None)
            if header is None or [h.strip() for h in header[:2]] != ["ImageId", "PredictionString"]:
                raise ValueError(f"{path}: expected the header 'ImageId,PredictionString', got {header!r}")
            for i, row in enumerate(rows, start=2):
                if len(row) < 2 or not row[1].split():
                    raise ValueError(f"{path}, line {i}: expected 'ImageId,<wnid> ...', got {row!r}")
                out[row[0].strip()] = row[1].split()[0]
        else:
            for i, line in enumerate(f, start=1):
                parts = line.replace(",", " ").replace("\t", " ").split()
                if not parts:
                    continue
                if len(parts) < 2:
                    raise ValueError(f"{path}, line {i}: expected '<filename> <class>', got {line.strip()!r}")
                out[parts[0]] = parts[1]
    if not out:
        raise ValueError(f"{path}: no labels listed")
    return out


def _label_flat(folder: Path, table: dict[str, str], classes: list[str], source: Path) -> tuple[list[str], list[int]]:
    """Label the images of a flat folder from ``table`` (keys with or without the extension)."""
    lut = {c: k for k, c in enumerate(classes)}
    paths, labels = [], []
    for name in _flat_images(folder):
        cls = table.get(name, table.get(os.path.splitext(name)[0]))
        if cls is None:
            raise ValueError(f"{str(folder / name)!r} has no label in {str(source)!r}")
        if cls not in lut:
            raise ValueError(f"{str(folder / name)!r} is labelled {cls!r} in {str(source)!r}, a class without "
                             "training images")
        paths.append(str(folder / name))
        labels.append(lut[cls])
    if not paths:
        raise ValueError(f"no images in {str(folder)!r}")
    return paths, labels


def _scan_tiny(r: Path, train: bool, empty_classes: str) -> FileIndex:
    wnids = sorted(w.strip() for w in (r / "wnids.txt").read_text().split() if w.strip())
    paths, labels, classes = find_images(r / "train", empty_classes=empty_classes)
    if empty_classes == "error" and classes != wnids:
        missing = sorted(set(wnids) ^ set(classes))
        raise ValueError(f"{str(r / 'wnids.txt')!r} and the class folders of {str(r / 'train')!r} differ: "
                         f"{missing[:5]}")
    if train:
        return FileIndex.from_paths(r, paths, labels, classes, "tiny_imagenet", "train")
    table: dict[str, str] = {}
    ann = r / "val" / "val_annotations.txt"
    for i, line in enumerate(ann.read_text().splitlines(), start=1):
        parts = line.split("\t")
        if len(parts) < 2:
            if line.strip():
                raise ValueError(f"{ann}, line {i}: expected '<filename>\\t<wnid>\\t...', got {line!r}")
            continue
        table[parts[0].strip()] = parts[1].strip()
    vpaths, vlabels = _label_flat(r / "val" / "images", table, classes, ann)
    return FileIndex.from_paths(r, vpaths, vlabels, classes, "tiny_imagenet", "val")


def _scan_imagenet(r: Path, train: bool, empty_classes: str, val_labels: str | os.PathLike | None) -> FileIndex:
    paths, labels, classes = find_images(r / "train", empty_classes=empty_classes)
    if train:
        return FileIndex.from_paths(r, paths, labels, classes, "imagenet", "train")
    if _has_class_dirs(r / "val"):
        vpaths, vlab, vclasses = find_images(r / "val", empty_classes=empty_classes)
        unknown = sorted(set(vclasses) - set(classes))
        if unknown:
            raise ValueError(f"validation classes {unknown[:5]} of {str(r / 'val')!r} have no training images")
        lut = [classes.index(c) for c in vclasses]
        return FileIndex.from_paths(r, vpaths, [lut[k] for k in vlab], classes, "imagenet", "val")
    if val_labels is not None:
        source = Path(val_labels)
    else:
        cands = [d / f for f in _VAL_LABEL_FILES for d in (r, r / "val")]
        source = next((c for c in cands if c.is_file()), None)  # type: ignore[arg-type]
        if source is None:
            raise FileNotFoundError(f"{str(r / 'val')!r} holds images without class folders and no labels file was "
                                    f"found (looked for {', '.join(str(c) for c in cands)}); pass val_labels=...")
    vpaths, vlab = _label_flat(r / "val", _read_val_labels(source), classes, source)
    return FileIndex.from_paths(r, vpaths, vlab, classes, "imagenet", "val")


def scan_layout(root: str | os.PathLike, *, train: bool = True, layout: str = "auto", empty_classes: str = "error",
                val_labels: str | os.PathLike | None = None) -> FileIndex:
    """Scan one split of an image dataset on disk into a :class:`FileIndex` (no image is opened).

    Args:
        root: the dataset folder (see the module docstring for the layouts).
        train: the training split (True) or the validation/test split.
        layout: ``"auto"``, ``"imagefolder"``, ``"imagenet"`` or ``"tiny_imagenet"``.
        empty_classes: a class folder without images: ``"error"`` or ``"drop"`` (with a warning).
        val_labels: the labels file of a flat ImageNet ``val/`` (default: looked up, see above).

    Returns:
        The split's index; on a plain class-folder root (no ``train/``) both splits are all images.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    r = Path(root).expanduser()
    if not r.is_dir():
        raise FileNotFoundError(f"image dataset folder {str(r)!r} does not exist or is not a folder")
    kind = detect_layout(r) if layout == "auto" else layout
    if kind == "tiny_imagenet":
        return _scan_tiny(r, train, empty_classes)
    if kind == "imagenet":
        for sub in ("train", "val"):
            if not (r / sub).is_dir():
                raise FileNotFoundError(f"layout 'imagenet' needs {str(r / sub)!r}")
        return _scan_imagenet(r, train, empty_classes, val_labels)
    dirs = split_dirs(r)
    if dirs is not None:
        test = dirs[1]
        paths, labels, classes = find_images(dirs[0], empty_classes=empty_classes)
        if train:
            return FileIndex.from_paths(r, paths, labels, classes, "imagefolder", "train")
        tpaths, tlab, tclasses = find_images(test, empty_classes=empty_classes)
        unknown = sorted(set(tclasses) - set(classes))
        if unknown:
            raise ValueError(f"test classes {unknown[:5]} of {str(test)!r} are not in {str(r / 'train')!r}")
        lut = [classes.index(c) for c in tclasses]
        return FileIndex.from_paths(r, tpaths, [lut[k] for k in tlab], classes, "imagefolder", test.name)
    paths, labels, classes = find_images(r, empty_classes=empty_classes)
    return FileIndex.from_paths(r, paths, labels, classes, "imagefolder", "all")
