"""The run folder: its file names, reading a run, finding its checkpoint, telling its state.

One module owns the layout of a run folder (docs/ARCHITECTURE.md, "Runs")::

    <run>/config.json       the resolved config
    <run>/metrics.jsonl     one JSON row per epoch (metrics.csv: the same rows as CSV)
    <run>/summary.json      best/final accuracy, finished flag, timings
    <run>/checkpoint.pt     the latest checkpoint
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
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CONFIG_FILE", "METRICS_JSONL", "METRICS_CSV", "SUMMARY_FILE", "CHECKPOINT_FILE", "EVAL_DIR",
           "EVAL_CLEAN", "EVAL_CLEAN_CSV", "EVAL_CORRUPTIONS", "EVAL_CORRUPTIONS_CSV", "EVAL_ADVERSARIAL", "EVAL_ADVERSARIAL_CSV",
           "EVAL_FEWSHOT", "EVAL_FEWSHOT_CSV", "EVAL_SUMMARY", "EVAL_SUMMARY_CSV", "EVAL_RESULTS",
           "STATES", "RunFolder", "read_json", "read_metrics", "resolve_checkpoint",
           "CheckpointError", "CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION", "load_checkpoint", "load_model"]

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
EVAL_RESULTS = {"clean": EVAL_CLEAN, "corruptions": EVAL_CORRUPTIONS, "adversarial": EVAL_ADVERSARIAL,
                "fewshot": EVAL_FEWSHOT}
#: What :meth:`RunFolder.state` returns: no folder; a folder without a checkpoint or finished summary;
#: a checkpoint but no finished summary; the summary says finished.
STATES = ("missing", "new", "interrupted", "finished")


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a ValueError naming the file when it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


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

    # -- paths
    @property
    def config_path(self) -> Path:
        """``<run>/config.json``."""
        return self.path / CONFIG_FILE

    @property
    def summary_path(self) -> Path:
        """``<run>/summary.json``."""
        return self.path / SUMMARY_FILE

    @property
    def metrics_path(self) -> Path:
        """``<run>/metrics.jsonl``."""
        return self.path / METRICS_JSONL

    @property
    def metrics_csv_path(self) -> Path:
        """``<run>/metrics.csv``."""
        return self.path / METRICS_CSV

    @property
    def checkpoint_path(self) -> Path:
        """``<run>/checkpoint.pt`` (whether or not it exists)."""
        return self.path / CHECKPOINT_FILE

    @property
    def eval_dir(self) -> Path:
        """``<run>/eval``."""
        return self.path / EVAL_DIR

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
# Checkpoint reading (the trainer writes them: sagemix.train.checkpoint.save_checkpoint)
# ---------------------------------------------------------------------------------------------------
#: The marker and version of a sagemix checkpoint.
CHECKPOINT_FORMAT = "sagemix-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "config", "config_hash", "epoch", "step", "model", "optimizer",
             "scheduler", "rng", "history")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a sagemix checkpoint, or from another config."""


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
    return state


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
    if map_location is not None:
        model = model.to(map_location)
    model.eval()
    config["epoch"] = int(state["epoch"])
    return model, config
