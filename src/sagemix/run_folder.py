"""The run folder: its file names, reading a run, finding its checkpoint, telling its state.

One module owns the layout of a run folder (docs/ARCHITECTURE.md, "Runs")::

    <run>/config.json       the resolved config
    <run>/metrics.jsonl     one JSON row per epoch (metrics.csv: the same rows as CSV)
    <run>/summary.json      best/final accuracy, finished flag, timings
    <run>/checkpoint.pt     the latest checkpoint (with a SHA-256 of its contents, checked on load)
    <run>/.lock             the lock of the process training into the folder (:class:`RunLock`)
    <run>/eval/             what the evaluation stage writes (clean.json, corruptions.json|csv, ...)

Everything else (the trainer's logger, the evaluation stage, the report, ``compare``) takes the names
from here. This module reads; writing stays with the stage that produces a file. It also holds the
checkpoint *reading* that evaluation needs (:func:`load_checkpoint`, :func:`load_model`), so that
:mod:`sagemix.evaluate` never imports :mod:`sagemix.train`; it imports nothing from either.

Example:
    >>> from sagemix.run_folder import RunFolder
    >>> RunFolder("runs/nothing-here").state()
    'missing'
"""
from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import statistics
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

__all__ = ["CONFIG_FILE", "METRICS_JSONL", "METRICS_CSV", "SUMMARY_FILE", "CHECKPOINT_FILE", "EVAL_DIR",
           "EVAL_CLEAN", "EVAL_CLEAN_CSV", "EVAL_CORRUPTIONS", "EVAL_CORRUPTIONS_CSV", "EVAL_ADVERSARIAL", "EVAL_ADVERSARIAL_CSV",
           "EVAL_FEWSHOT", "EVAL_FEWSHOT_CSV", "EVAL_TRAIN_FIT", "EVAL_SUMMARY", "EVAL_SUMMARY_CSV", "EVAL_RESULTS",
           "LOCK_FILE", "RunLock", "RunFolderInUse", "state_digest", "STATES", "RunFolder", "read_json", "read_metrics", "resolve_checkpoint",
           "CheckpointError", "CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION", "load_checkpoint", "load_model",
           "nonfinite_weights"]

#: The resolved config of the run (written when it starts).
CONFIG_FILE = "config.json"
#: One JSON object per epoch.
METRICS_JSONL = "metrics.jsonl"
#: The same rows as CSV.
METRICS_CSV = "metrics.csv"
#: The run's summary (``finished``, ``best_acc``, ...).
SUMMARY_FILE = "summary.json"
#: The latest checkpoint.
CHECKPOINT_FILE = "checkpoint.pt"
#: The lock file of the process that trains into the folder (holds its pid).
LOCK_FILE = ".lock"
#: The evaluation stage's folder inside the run.
EVAL_DIR = "eval"
#: Files of ``<run>/eval/``.
EVAL_CLEAN = "clean.json"
EVAL_CLEAN_CSV = "clean.csv"
EVAL_CORRUPTIONS = "corruptions.json"
EVAL_CORRUPTIONS_CSV = "corruptions.csv"
EVAL_ADVERSARIAL = "adversarial.json"
EVAL_ADVERSARIAL_CSV = "adversarial.csv"
EVAL_FEWSHOT = "fewshot.json"
EVAL_FEWSHOT_CSV = "fewshot.csv"
EVAL_SUMMARY = "summary.json"
EVAL_SUMMARY_CSV = "summary.csv"
#: The result files of the evaluations, by evaluation name (what :meth:`RunFolder.read_eval` reads).
EVAL_TRAIN_FIT = "train_fit.json"
EVAL_RESULTS = {"clean": EVAL_CLEAN, "corruptions": EVAL_CORRUPTIONS, "adversarial": EVAL_ADVERSARIAL,
                "fewshot": EVAL_FEWSHOT, "train_fit": EVAL_TRAIN_FIT}
#: What :meth:`RunFolder.state` returns: no folder; a folder without a checkpoint or finished summary;
#: a checkpoint but no finished summary; the summary says finished.
STATES = ("missing", "new", "interrupted", "finished")


def accuracy_summary(metrics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Best (and its epoch), final and median-of-the-last-10-epochs test accuracy of metrics rows.

    Rows without a ``test_acc`` (None or "") are skipped. The median is over the evaluated epochs among
    the last 10 epochs: with ``eval_every > 1`` the last 10 *evaluations* would reach far back into
    training. All None without evaluations. The trainer's ``summary.json`` and the report both use this.

    >>> rows = [{"epoch": e, "test_acc": a} for e, a in [(80, 60.0), (90, 65.0), (93, 66.0), (96, 68.0), (100, 67.0)]]
    >>> accuracy_summary(rows + [{"epoch": 101, "test_acc": None}])
    {'best_acc': 68.0, 'best_epoch': 96, 'final_acc': 67.0, 'median_last10_acc': 67.0}
    """
    evaluated = [(int(r["epoch"]), float(r["test_acc"])) for r in metrics if r.get("test_acc") not in (None, "")]
    if not evaluated:
        return {"best_acc": None, "best_epoch": None, "final_acc": None, "median_last10_acc": None}
    best_epoch, best = max(evaluated, key=lambda t: t[1])
    last = evaluated[-1][0]
    return {"best_acc": best, "best_epoch": best_epoch, "final_acc": evaluated[-1][1],
            "median_last10_acc": statistics.median(a for e, a in evaluated if e > last - 10)}


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a ValueError naming the file when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    except UnicodeDecodeError as e:  # a binary file: say which, not only the codec's complaint
        raise ValueError(f"{path} is not valid JSON: it is not UTF-8 text (byte {e.start} cannot be decoded)") \
            from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a JSON file") from None


def _num(v: Any) -> Any:
    """A CSV cell as int or float when it reads as one, else unchanged."""
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f
    return v


def read_metrics(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """The per-epoch rows of a run: ``metrics.jsonl``, else ``metrics.csv`` (numbers parsed), else ``[]``."""
    folder = Path(folder)
    jl = folder / METRICS_JSONL
    if jl.is_file():
        rows = []
        with open(jl, encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{jl} line {i} is not valid JSON ({e})") from None
        return rows
    cs = folder / METRICS_CSV
    if cs.is_file():
        with open(cs, encoding="utf-8", newline="") as f:
            return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]
    return []


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(run folder, checkpoint file)`` of a run folder or of a checkpoint file.

    Raises:
        FileNotFoundError: a folder without ``checkpoint.pt``, or nothing at ``path``.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        ckpt = p / CHECKPOINT_FILE
        if not ckpt.is_file():
            raise FileNotFoundError(f"run folder {str(p)!r} has no {CHECKPOINT_FILE}")
        return p, ckpt
    if p.is_file():
        return p.parent, p
    raise FileNotFoundError(f"no run folder or checkpoint at {str(p)!r}")


def _run_file(name: str) -> property:
    """The read-only property ``<run>/<name>`` of a :class:`RunFolder`."""
    return property(lambda self: self.path / name, doc=f"``<run>/{name}``.")


@dataclass(frozen=True, init=False)
class RunFolder:
    """A run folder: paths of its files, and readers.

    Args:
        path: the folder (it need not exist; see :meth:`state`).
    """

    path: Path

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike run folder, got {type(path).__name__}")
        object.__setattr__(self, "path", Path(path))

    # -- paths (whether or not the files exist)
    config_path = _run_file(CONFIG_FILE)
    summary_path = _run_file(SUMMARY_FILE)
    metrics_path = _run_file(METRICS_JSONL)
    metrics_csv_path = _run_file(METRICS_CSV)
    checkpoint_path = _run_file(CHECKPOINT_FILE)
    eval_dir = _run_file(EVAL_DIR)

    # -- reading
    def is_run(self) -> bool:
        """The folder holds ``summary.json`` or ``config.json``."""
        return self.summary_path.is_file() or self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        """``config.json``, or ``{}`` when absent."""
        return read_json(self.config_path) if self.config_path.is_file() else {}

    def read_summary(self) -> dict[str, Any]:
        """``summary.json``, or ``{}`` when absent."""
        return read_json(self.summary_path) if self.summary_path.is_file() else {}

    def read_metrics(self) -> list[dict[str, Any]]:
        """The per-epoch rows (see :func:`read_metrics`)."""
        return read_metrics(self.path)

    def read_eval(self, eval_dir: str | os.PathLike | None = None) -> dict[str, Any]:
        """``{"clean": ..., "corruptions": ..., "adversarial": ..., "fewshot": ...}``, the files that exist.

        Args:
            eval_dir: the evaluation folder (default ``<run>/eval``).
        """
        folder = Path(eval_dir) if eval_dir is not None else self.eval_dir
        out: dict[str, Any] = {}
        for name, file in EVAL_RESULTS.items():
            f = folder / file
            if f.is_file():
                out[name] = read_json(f)
        return out

    def checkpoint(self) -> Path | None:
        """The checkpoint file, or None when the run has none."""
        return self.checkpoint_path if self.checkpoint_path.is_file() else None

    def finished(self) -> bool:
        """``summary.json`` exists, is readable and says ``finished: true``."""
        if not self.summary_path.is_file():
            return False
        try:
            return read_json(self.summary_path).get("finished") is True
        except (ValueError, OSError, AttributeError):
            return False

    def state(self) -> str:
        """One of :data:`STATES`: ``"missing"``, ``"new"``, ``"interrupted"`` or ``"finished"``."""
        if not self.path.is_dir():
            return "missing"
        if self.finished():
            return "finished"
        return "interrupted" if self.checkpoint_path.is_file() else "new"


# ---------------------------------------------------------------------------------------------------
# The run lock
# ---------------------------------------------------------------------------------------------------
class RunFolderInUse(ValueError):
    """Another process holds the run folder's lock (it is training or resuming into it)."""


class RunLock:
    """An exclusive OS lock on ``<run>/.lock``: one process at a time trains or resumes into a run folder.

    It is an ``fcntl.flock`` lock, which the operating system releases when the process ends however
    it ends (kill -9 included), so a stale lock file never blocks a later run; the file holds the
    holder's pid for the message. Where ``fcntl`` does not exist (Windows) the lock does nothing.
    Locks are per open file: two ``RunLock`` objects on one folder exclude each other in one process too.

    Args:
        folder: the run folder (created on :meth:`acquire`).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, RunLock(d):
        ...     RunLock(d).acquire()
        Traceback (most recent call last):
        ...
        sagemix.run_folder.RunFolderInUse: ...
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"folder must be a str or os.PathLike run folder, got {type(folder).__name__}")
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """This object holds the lock."""
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock (without waiting); returns self.

        Raises:
            RunFolderInUse: another process (or another RunLock) holds it; the message names its pid.
            DiskWriteError: the folder cannot be created or written (read-only, full).
        """
        if self._fd is not None:
            return self
        from .utils import disk_write_error

        try:
            import fcntl
        except ImportError:  # no flock on this platform
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_write_error(e, self.folder, "run folder") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            try:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            finally:
                os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunFolderInUse(f"run folder {str(self.folder)!r} is in use by another sagemix process (pid "
                                 f"{holder}); wait for it to finish or stop it, or choose another folder (--out)") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass  # the pid is only for the message; the lock holds without it
        self._fd = fd
        return self

    def release(self) -> None:
        """Let go of the lock (closing the file releases it); a no-op when not held."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------------
# Checkpoint reading (the trainer writes them: sagemix.train.checkpoint.save_checkpoint)
# ---------------------------------------------------------------------------------------------------
#: The marker and version of a sagemix checkpoint.
CHECKPOINT_FORMAT = "sagemix-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "config", "config_hash", "epoch", "step", "model", "optimizer",
             "scheduler", "rng", "history")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a sagemix checkpoint, or from another config."""


def _digest_into(h: "hashlib._Hash", obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.cpu().reshape(-1).contiguous().view(torch.uint8).numpy())  # no extra copy
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            h.update(repr(k).encode())
            _digest_into(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for v in obj:
            _digest_into(h, v)
    else:
        h.update(f"V{type(obj).__name__}:{obj!r}".encode())


def state_digest(state: Any) -> str:
    """The SHA-256 (hex) of a checkpoint's contents: every tensor's dtype, shape and bytes and every
    other value, walked in a fixed order (dict keys sorted); the ``sha256`` entry itself is left out.

    Written into the checkpoint by the trainer and checked by :func:`load_checkpoint`: torch.load
    does not check the zip CRCs, so without it bytes flipped inside a weight tensor load silently.
    """
    h = hashlib.sha256()
    _digest_into(h, {k: v for k, v in state.items() if k != "sha256"} if isinstance(state, dict) else state)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`sagemix.train.checkpoint.save_checkpoint`.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file cannot be read (truncated, corrupted) or is not a sagemix checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...: all mean "damaged"
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged or unreadable ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else 'no detail'}); delete it to start "
                              "over, or use another run folder") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a sagemix checkpoint (no format={CHECKPOINT_FORMAT!r} marker)")
    if state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {state.get('format_version')!r}; "
                              f"this sagemix reads version {CHECKPOINT_FORMAT_VERSION}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: missing entries {missing}")
    if "sha256" in state and state_digest(state) != state["sha256"]:  # older checkpoints have no checksum
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: its contents do not match the SHA-256 "
                              "written with them (the file changed on disk); delete it (the run restarts with "
                              "--overwrite) or restore it from a copy")
    return state


def nonfinite_weights(model: nn.Module) -> list[str]:
    """Names of the floating-point parameters and buffers of ``model`` that hold NaN or inf."""
    return [name for name, t in [*model.named_parameters(), *model.named_buffers()]
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def load_model(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint.

    Args:
        path: a ``checkpoint.pt`` file, or a run folder holding one.
        map_location: where to put the weights (``"cpu"``, ``"cuda"``, a device).

    Returns:
        ``(model, config)``: the model with its weights, in eval mode, on ``map_location``; the run's
        config dict (the settings plus ``num_classes``, ``mean``, ``std``, ``classes`` and
        ``input_size`` of the training data, ``epoch`` = epochs completed).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    state = load_checkpoint(path, map_location="cpu")
    config = dict(state["config"])
    if "num_classes" not in config:
        raise CheckpointError(f"checkpoint {str(path)!r} does not record num_classes")
    from .models import create_model  # the model registry (imported here: models import torch only)

    model = create_model(config["model"], num_classes=int(config["num_classes"]), **config.get("model_kwargs", {}))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {str(path)!r} does not fit model {config['model']!r}: "
                              f"{str(e).splitlines()[0]}") from None
    bad = nonfinite_weights(model)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"checkpoint {str(path)!r} holds NaN/inf weights ({shown}): the run diverged or the "
                      "file is damaged, and every result computed with this model is meaningless", RuntimeWarning,
                      stacklevel=2)
    if map_location is not None:
        model = model.to(map_location)
    model.eval()
    config["epoch"] = int(state["epoch"])
    return model, config
