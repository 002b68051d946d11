"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, https://arxiv.org/abs/1708.07747): 70,000 grayscale
28x28 images of clothing in 10 classes (60,000 training, 10,000 test), from the four standard idx
files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each gzipped or not), read with torchvision's idx reader.

Where the files are looked for: ``root`` (``--data-dir``) itself, its ``FashionMNIST/raw`` (the
layout torchvision's ``FashionMNIST`` downloads into) or its ``fashion-mnist`` sub-folder; with no
``root``, where Debian's package ``dataset-fashion-mnist`` installs them
(``/usr/share/datasets/fashion-mnist``). ``download=True`` fetches the official files into ``root``
through torchvision when they are missing (network needed).

**Size.** The images are 28x28; ``pad=2`` (the recipe's setting) adds a 2-pixel black border to
make them 32x32, as LeNet-5 did for MNIST: the size the CIFAR networks and the CIFAR-C corruption
generator are defined for, without resampling the pixels (Fashion-MNIST's background is 0).

**One channel.** A grayscale image is stored as three identical channels (R = G = B), so every
mixer, the gradient saliency, OpenCV's saliency, the figures and the corruption generator see the
RGB uint8 layout that all sagemix data share; the network's first convolution sums the three
copies, which is the same function as one channel with the summed kernel. The normalisation
constants are the training split's mean and standard deviation of the pixel values, the same for
the three channels.
"""
from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
import torch

from ..checks import is_int
from .registry import ImageData, register_dataset, resize_images

__all__ = ["load_fashion_mnist", "FASHION_MNIST_CLASSES", "DEBIAN_DIR", "find_fashion_mnist"]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot"]
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # dpkg -L dataset-fashion-mnist
OFFICIAL_URL = "https://github.com/zalandoresearch/fashion-mnist"
# The training split's pixel mean and standard deviation on the 0-1 scale (all 60,000 images).
MEAN = 0.28604
STD = 0.35302
_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_SUBDIRS = (".", os.path.join("FashionMNIST", "raw"), "fashion-mnist")


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding the four idx files (gzipped or not), searched as the module docstring says.

    Raises:
        FileNotFoundError: naming where it looked, the Debian package and the official download.
    """
    bases = [Path(root).expanduser()] if root is not None else [DEBIAN_DIR]
    looked: list[str] = []
    for base in bases:
        for sub in _SUBDIRS:
            folder = (base / sub) if sub != "." else base
            looked.append(str(folder))
            if all(_find_file(folder, n) for names in _FILES.values() for n in names):
                return folder
    raise FileNotFoundError(
        f"Fashion-MNIST not found (looked in {', '.join(repr(p) for p in looked)} for "
        f"{', '.join(n for names in _FILES.values() for n in names)}, each gzipped or not). Install it with "
        f"'apt-get install dataset-fashion-mnist' (Debian/Ubuntu, into {str(DEBIAN_DIR)!r}), or download the four "
        f"files from {OFFICIAL_URL} and pass their folder as --data-dir (root=...).")


def _read_idx(path: Path, kind: str) -> torch.Tensor:
    """One idx file through torchvision's reader (``read_image_file``/``read_label_file``)."""
    from torchvision.datasets.mnist import read_image_file, read_label_file

    reader = read_image_file if kind == "images" else read_label_file
    try:
        if path.suffix == ".gz":
            # torchvision's reader opens a path; the gzipped file is decompressed into a private temp file.
            with tempfile.TemporaryDirectory(prefix="sagemix-fmnist-") as tmp:
                plain = Path(tmp) / path.stem
                with gzip.open(path, "rb") as src, open(plain, "wb") as dst:
                    while chunk := src.read(1 << 22):
                        dst.write(chunk)
                return reader(str(plain))
        return reader(str(path))
    except (AssertionError, EOFError, OSError, RuntimeError, ValueError, KeyError) as e:
        raise ValueError(f"Fashion-MNIST file {str(path)!r} is not a valid idx {kind} file ({type(e).__name__}"
                         f"{': ' + str(e) if str(e) else ''}); replace it with the official file from "
                         f"{OFFICIAL_URL}") from None


def load_fashion_mnist(*, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
                       image_size: tuple[int, int] | None = None, seed: int = 0, pad: int = 0) -> ImageData:
    """Load a Fashion-MNIST split into memory as (N, 3, 28, 28) uint8 (three equal channels).

    Args:
        root: the folder with the idx files (see the module docstring); None: the Debian package's folder.
        train: the 60,000-image training split (True) or the 10,000-image test split.
        download: fetch the official files into ``root`` with torchvision when they are not found.
        image_size: optional (H, W) to resize to (bilinear, antialiased).
        seed: unused (no random choice); accepted for the common signature.
        pad: black pixels added on each side (2: 32x32), before any ``image_size`` resize.

    Returns:
        :class:`ImageData` named ``"fashion_mnist"`` with the 10 class names.
    """
    del seed
    if not is_int(pad) or not 0 <= pad <= 64:
        raise ValueError(f"pad must be an int in [0, 64] (black pixels on each side; 2 makes 32x32), got {pad!r}")
    try:
        folder = find_fashion_mnist(root)
    except FileNotFoundError:
        if not download:
            raise
        if root is None:
            raise ValueError("download=True needs root (--data-dir): the folder to download Fashion-MNIST into") \
                from None
        from torchvision.datasets import FashionMNIST

        from ..utils import DownloadError

        try:
            FashionMNIST(str(Path(root).expanduser()), train=train, download=True)
        except Exception as e:  # network errors come in many types
            raise DownloadError(f"could not download Fashion-MNIST ({type(e).__name__}: {e}). Without network "
                               f"access, install 'apt-get install dataset-fashion-mnist' or copy the four idx files "
                               f"from {OFFICIAL_URL} into {str(root)!r}") from None
        folder = find_fashion_mnist(root)
    image_name, label_name = _FILES[train]
    image_path, label_path = _find_file(folder, image_name), _find_file(folder, label_name)
    assert image_path is not None and label_path is not None  # find_fashion_mnist checked all four
    images = _read_idx(image_path, "images")
    labels = _read_idx(label_path, "labels")
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"Fashion-MNIST files {str(image_path)!r} and {str(label_path)!r} disagree: images "
                         f"{tuple(images.shape)}, labels {tuple(labels.shape)}; expected (N, H, W) and (N,)")
    if labels.numel() and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"Fashion-MNIST labels in {str(label_path)!r} go up to {int(labels.max())}; expected 0-9")
    rgb = images.to(torch.uint8).unsqueeze(1).expand(-1, 3, -1, -1)
    rgb = torch.nn.functional.pad(rgb, (pad,) * 4) if pad else rgb.contiguous()
    if image_size is not None:
        rgb = resize_images(rgb, image_size)
    return ImageData(images=rgb, labels=labels.to(torch.int64), classes=list(FASHION_MNIST_CLASSES),
                     mean=(MEAN, MEAN, MEAN), std=(STD, STD, STD), name="fashion_mnist",
                     info={"split": "train" if train else "test", "source": str(folder),
                           "channels": "grayscale replicated to 3", "pad": pad})


register_dataset("fashion_mnist", load_fashion_mnist)
