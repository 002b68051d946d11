"""Small shared utilities: atomic file writes, the device rule, train/eval-mode switching, a timer and
the pyplot import.

Each of these has exactly one definition in the package:

- :func:`atomic_write` (and its text/JSON/torch forms): temp file + fsync + ``os.replace``; a disk
  that is full or not writable raises :class:`DiskWriteError`, one line naming the path and what to
  do, and the previous file stays as it was.

- :func:`resolve_device`: the one rule that turns a device setting into a ``torch.device``.
- :func:`train_mode` / :func:`eval_mode`: set a module's mode for a block and restore it after.
- :class:`Stopwatch`: wall-clock (``time.perf_counter``) and process-CPU time of a block.
- :func:`pyplot`: ``matplotlib.pyplot`` on the non-interactive Agg backend, or a clear ImportError.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import torch
from torch import nn

from .checks import is_int

__all__ = ["derive_seed", "DiskWriteError", "DownloadError", "disk_error_reason", "disk_write_error", "folder_write_error", "atomic_write", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "resolve_device",
           "train_mode", "eval_mode", "Stopwatch", "pyplot"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


#: The errors of a disk that is full or cannot be written, and what each means.
_DISK_ERRNOS = {errno.ENOSPC: "no space left on the disk", errno.EDQUOT: "the disk quota is exceeded",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted", errno.EFBIG: "the file is too large for the file system",
                errno.ENOTDIR: "a part of the path is a file, not a folder",
                errno.EEXIST: "it is a file, not a folder"}


class DiskWriteError(OSError, ValueError):
    """A file could not be written: the disk is full or not writable.

    The message is one line naming the path, the cause and what to do; ``errno`` is the original
    error's. It is a ValueError too, so the CLI reports it as a one-line error.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DownloadError(FileNotFoundError, RuntimeError):
    """A dataset is not on disk and could not be downloaded (no network, a server error).

    The message is one line saying where to put the files by hand; a FileNotFoundError (the data are
    not there), so the CLI reports it as a one-line error, and a RuntimeError as before.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def folder_write_error(folder: str | os.PathLike) -> OSError | None:
    """Create ``folder`` and write a small file there; the OSError when that fails, else None.

    A file at ``folder`` is an ``EEXIST`` error, a file above it ``ENOTDIR``; a read-only or full disk
    gives its own error (the test file is written and flushed, so a full disk shows).
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sagemix-write-check-") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return e
    return None


def disk_error_reason(err: OSError) -> str:
    """What a failed write's error means, in words (``"no space left on the disk"``, ...)."""
    return _DISK_ERRNOS.get(getattr(err, "errno", None), getattr(err, "strerror", None) or str(err))


def disk_write_error(err: OSError, path: str | os.PathLike, what: str = "file") -> OSError:
    """The :class:`DiskWriteError` for a full or unwritable disk, else ``err`` unchanged.

    Args:
        err: the OSError raised by the write.
        path: the file (or folder) being written.
        what: what it is, for the message (``"checkpoint"``, ``"run folder"``, ...).
    """
    if isinstance(err, DiskWriteError) or err.errno not in _DISK_ERRNOS:
        return err
    full = err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    if err.errno in (errno.ENOTDIR, errno.EEXIST):  # a file where a folder should be: nothing was written
        advice = "choose another folder (--out)"
    else:
        advice = ("free some space there or choose another folder (--out)" if full
                  else "choose a writable folder (--out), or fix its permissions")
        advice += " (any previous version of the file is unchanged)"
    out = DiskWriteError(f"cannot write {what} {str(path)!r}: {_DISK_ERRNOS[err.errno]}; {advice}")
    out.errno, out.filename = err.errno, os.fspath(path)
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any], *, what: str = "file") -> None:
    """Call ``write(f)`` on a temp file in the target folder, fsync it and ``os.replace`` it onto
    ``path``: readers see the old file or the complete new one, never a partial write.

    Args:
        path: the destination; its folder is created.
        write: writes the content to the binary file object it gets.
        what: what the file is, for the error message.

    Raises:
        DiskWriteError: the disk is full or not writable (the temp file is removed, ``path`` unchanged).
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            raise disk_write_error(e, path, what) from e
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike, *, what: str = "checkpoint") -> None:
    """``torch.save`` to ``path``, atomically: a crash never leaves a half-written checkpoint.

    The object is serialised in memory first, so a disk error surfaces as itself (a
    :class:`DiskWriteError`), not wrapped in torch's zip writer.
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()), what=what)


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """Turn a device setting into a ``torch.device``: the one rule of the package.

    The rule: ``None`` and ``"auto"`` mean CUDA when it is available, else the CPU; ``"cuda"`` (and
    ``"auto"`` on a CUDA machine) means ``cuda:<local_rank>`` (the process's GPU under ``torchrun``);
    ``"cuda:N"`` must name a visible GPU; anything else goes through ``torch.device`` (``"cpu"``,
    ``"mps"``, a ``torch.device``).

    Args:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a ``torch.device`` or None.
        local_rank: the index that a bare ``"cuda"`` picks.

    Returns:
        The torch.device.

    Raises:
        ValueError: a value torch does not understand, CUDA asked for but not available, or a GPU index
            that does not exist.
    """
    if not is_int(local_rank) or local_rank < 0:
        raise ValueError(f"local_rank must be a non-negative int, got {local_rank!r}")
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} was requested but CUDA is not available on this machine "
                         "(use device='cpu' or 'auto')")
    index = local_rank if dev.index is None else dev.index
    if index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    return torch.device("cuda", index)


@contextlib.contextmanager
def train_mode(model: nn.Module, mode: bool = True) -> Iterator[nn.Module]:
    """Put ``model`` in train (``mode=True``) or eval mode for the block; restore its mode after.

    Example:
        >>> net = torch.nn.BatchNorm1d(2)
        >>> with train_mode(net, False):
        ...     net.training
        False
        >>> net.training
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    was = model.training
    model.train(bool(mode))
    try:
        yield model
    finally:
        model.train(was)


def eval_mode(model: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """``train_mode(model, False)``: eval mode for the block, the previous mode after."""
    return train_mode(model, False)


class Stopwatch:
    """Wall-clock and process-CPU time of a block, in seconds.

    Attributes:
        wall_s: ``time.perf_counter`` time from entering to leaving the block (or to now, inside it).
        cpu_s: ``time.process_time`` (all threads of the process) over the same span.

    Example:
        >>> with Stopwatch() as sw:
        ...     _ = sum(range(1000))
        >>> sw.wall_s >= 0.0 and sw.cpu_s >= 0.0
        True
    """

    def __init__(self) -> None:
        self._t0 = self._c0 = 0.0
        self._t1: float | None = None
        self._c1: float | None = None

    def start(self) -> "Stopwatch":
        """(Re)start the clocks; returns self."""
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        self._t1 = self._c1 = None
        return self

    def stop(self) -> "Stopwatch":
        """Stop the clocks; returns self."""
        self._t1, self._c1 = time.perf_counter(), time.process_time()
        return self

    @property
    def wall_s(self) -> float:
        """Elapsed wall-clock seconds."""
        return (self._t1 if self._t1 is not None else time.perf_counter()) - self._t0

    @property
    def cpu_s(self) -> float:
        """Elapsed process-CPU seconds."""
        return (self._c1 if self._c1 is not None else time.process_time()) - self._c0

    def __enter__(self) -> "Stopwatch":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files only, no window).

    Raises:
        ImportError: matplotlib is not installed (it is the ``viz`` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError('the figures need matplotlib: pip install "sagemix[viz]"') from e
    return plt


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed for one randomness source, derived from the run seed and a purpose string.

    Separate sources (``"loader"``, ``"mixer:<rank>"``) get unrelated streams from one ``--seed``.
    """
    digest = hashlib.sha256(f"sagemix:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
