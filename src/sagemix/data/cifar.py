"""CIFAR-10 and CIFAR-100 (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
2009, https://www.cs.toronto.edu/~kriz/cifar.html) from the official python-pickle archives, as
used by SAGE (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113, docs/SAGE.md §7).

``root`` may be the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``), its parent
folder, the ``.tar.gz`` archive itself, or a folder holding the archive (read in place, without
extracting). CIFAR-100 uses the 100 fine labels. The normalisation constants are the recipe's:
CIFAR-10 mean (125.3, 123.0, 113.9)/255, std (63.0, 62.1, 66.7)/255; CIFAR-100 mean
(129.3, 124.1, 112.4)/255, std (68.2, 65.4, 70.4)/255.
"""
from __future__ import annotations

import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .registry import ImageData, register_dataset, resize_images

__all__ = ["load_cifar", "CIFAR_SPECS", "default_data_root"]

def _spec(stem: str, folder: str, md5: str, **keys: Any) -> dict[str, Any]:
    """One release's files: ``<stem>-python.tar.gz`` from Alex Krizhevsky's page, extracted into ``folder``."""
    archive = f"{stem}-python.tar.gz"
    return {"folder": folder, "archive": archive, "url": f"https://www.cs.toronto.edu/~kriz/{archive}", "md5": md5,
            **keys}


CIFAR_SPECS: dict[str, dict[str, Any]] = {
    "cifar10": _spec("cifar-10", "cifar-10-batches-py", "c58f30108f718f92721af3b95e74349a",
                     train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta",
                     label_key="labels", names_key="label_names",
                     mean=(125.3 / 255, 123.0 / 255, 113.9 / 255), std=(63.0 / 255, 62.1 / 255, 66.7 / 255)),
    "cifar100": _spec("cifar-100", "cifar-100-python", "eb9058c3a382ffc7106e4002c42a8d85",
                      train=["train"], test=["test"], meta="meta", label_key="fine_labels", names_key="fine_label_names",
                      mean=(129.3 / 255, 124.1 / 255, 112.4 / 255), std=(68.2 / 255, 65.4 / 255, 70.4 / 255)),
}


def default_data_root() -> Path:
    """``$SAGEMIX_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("SAGEMIX_DATA", "data"))


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle may name: numpy array reconstruction and latin-1 bytes."""
    import codecs

    reconstruct = np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's multiarray._reconstruct, any numpy version
    scalar = np.float64(0).__reduce__()[0]  # numpy's multiarray.scalar
    table: dict[tuple[str, str], Any] = {("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
        table[(mod, "scalar")] = scalar
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "ndarray")] = np.ndarray
        table[(mod, "dtype")] = np.dtype
    return table


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only builtin containers, bytes/str/numbers and numpy arrays.

    The official CIFAR files are Python 2 pickles of dicts of lists, bytes and uint8 arrays; any
    other global (``os.system``, ``builtins.eval``, a class to instantiate, ...) is refused, so a
    crafted file in a data folder cannot run code.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR file (only numpy arrays, "
                                         "bytes and builtin containers are)") from None


def _unpickle(raw: bytes, fname: str = "<bytes>") -> dict[str, Any]:
    """Unpickle one CIFAR file's bytes with the restricted unpickler; ``fname`` names it in errors."""
    try:
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "truncated" in msg:
            msg = f"the file is truncated ({len(raw)} bytes)"
        raise ValueError(f"CIFAR file {fname!r} cannot be loaded: {msg}; replace it with the file of the official "
                         "archive") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as e:
        raise ValueError(f"CIFAR file {fname!r} cannot be loaded: it is damaged or truncated ({len(raw)} bytes; "
                         f"{type(e).__name__}: {e}); replace it with the file of the official archive") from None
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR file {fname!r}: expected a pickled dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _find_source(root: Path, spec: dict[str, Any]) -> tuple[str, Path]:
    """Locate the data: ('dir', folder with the batch files) or ('tar', archive path)."""
    if root.is_file():
        if tarfile.is_tarfile(root):
            return "tar", root
        raise ValueError(f"root={str(root)!r} is a file but not a tar archive; expected the CIFAR .tar.gz "
                         "or a folder")
    for cand in (root, root / spec["folder"]):
        if (cand / spec["meta"]).is_file():
            return "dir", cand
    if (root / spec["archive"]).is_file():
        return "tar", root / spec["archive"]
    raise FileNotFoundError(
        f"CIFAR files not found under root={str(root)!r}: expected the folder {spec['folder']}/ (with "
        f"{', '.join(spec['train'] + spec['test'] + [spec['meta']])}) in or at root, or the archive "
        f"{spec['archive']} (from {spec['url']}). Download it there (or pass download=True with network access).")


def _reader(kind: str, path: Path, spec: dict[str, Any]) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    if kind == "dir":
        return (lambda name: (path / name).read_bytes()), (lambda: None)
    def damaged(e: BaseException) -> ValueError:
        return ValueError(f"CIFAR archive {str(path)!r} cannot be read: it is damaged or truncated "
                          f"({type(e).__name__}{': ' + str(e).splitlines()[0] if str(e) else ''}); delete it and "
                          f"download it again (md5 {spec['md5']}), or use the extracted folder {spec['folder']}/")

    # A truncated .tar.gz fails wherever the stream ends: listing the members or reading one.
    errors = (EOFError, OSError, tarfile.TarError, zlib.error)
    try:
        tf = tarfile.open(path, "r:*")
        members = {Path(m.name).name: m for m in tf.getmembers() if m.isfile()}
    except errors as e:
        raise damaged(e) from None

    def read(name: str) -> bytes:
        if name not in members:
            raise FileNotFoundError(f"{name} not found in the archive {str(path)!r} (expected the official "
                                    f"{spec['archive']} layout)")
        try:
            f = tf.extractfile(members[name])
            assert f is not None
            return f.read()
        except errors as e:
            raise damaged(e) from None

    return read, tf.close


def load_cifar(name: str, *, root: str | os.PathLike | None = None, train: bool = True, download: bool = False,
               image_size: tuple[int, int] | None = None, seed: int = 0) -> ImageData:
    """Load CIFAR-10 or CIFAR-100 (``name``) into memory as uint8.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: the extracted folder, its parent, the ``.tar.gz`` or its folder (default
            ``$SAGEMIX_DATA`` or ``./data``).
        train: the 50,000-image training split (True) or the 10,000-image test split.
        download: download the official archive into ``root`` (md5-checked) when not found.
        image_size: optional (H, W) to resize to (bilinear, antialiased).
        seed: unused (CIFAR involves no random choice); accepted for the common signature.

    Returns:
        :class:`ImageData` with images (N, 3, 32, 32) uint8 and the recipe's mean/std.
    """
    if name not in CIFAR_SPECS:
        raise ValueError(f"name must be one of {sorted(CIFAR_SPECS)}, got {name!r}")
    spec = CIFAR_SPECS[name]
    root_path = Path(root).expanduser() if root is not None else default_data_root()
    try:
        kind, path = _find_source(root_path, spec)
    except FileNotFoundError:
        if not download:
            raise
        from torchvision.datasets.utils import download_and_extract_archive

        from ..utils import DownloadError

        dl_root = root_path.parent if root_path.suffix == ".gz" else root_path
        try:
            download_and_extract_archive(spec["url"], download_root=str(dl_root), md5=spec["md5"])
        except Exception as e:  # network errors come in many types (URLError, OSError, RuntimeError, ...)
            raise DownloadError(
                f"could not download {name} from {spec['url']} ({type(e).__name__}: {e}). Without network "
                f"access, copy {spec['archive']} (md5 {spec['md5']}) or its extracted folder {spec['folder']}/ "
                f"into {str(dl_root)!r} and call again with root={str(dl_root)!r}.") from e
        kind, path = _find_source(dl_root, spec)
    read, close = _reader(kind, path, spec)
    try:
        meta = _unpickle(read(spec["meta"]), str(path / spec["meta"]) if kind == "dir" else f"{path}:{spec['meta']}")
        classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in meta[spec["names_key"]]]
        arrays, labels = [], []
        for fname in spec["train" if train else "test"]:
            batch = _unpickle(read(fname), str(path / fname) if kind == "dir" else f"{path}:{fname}")
            data = np.asarray(batch["data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072:
                raise ValueError(f"{fname}: expected 'data' of shape (N, 3072), got {data.shape}")
            arrays.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[spec["label_key"]], dtype=np.int64))
    finally:
        close()
    images = torch.from_numpy(np.concatenate(arrays))
    if image_size is not None:
        images = resize_images(images, image_size)
    return ImageData(images=images, labels=torch.from_numpy(np.concatenate(labels)), classes=classes,
                     mean=spec["mean"], std=spec["std"], name=name,
                     info={"split": "train" if train else "test", "source": str(path)})


def _cifar10(**kw: Any) -> ImageData:
    return load_cifar("cifar10", **kw)


def _cifar100(**kw: Any) -> ImageData:
    return load_cifar("cifar100", **kw)


register_dataset("cifar10", _cifar10)
register_dataset("cifar100", _cifar100)
