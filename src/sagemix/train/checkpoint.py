"""Checkpoints: written atomically, checked on load, refused when damaged or from another config.

A checkpoint (``checkpoint.pt`` in the run folder) holds everything a run needs to continue exactly
where it stopped: the model, optimizer, scheduler and GradScaler states, the RNG states of every
process (torch's global RNG, CUDA's, the loader's and the mixer's generators), the epoch and step
reached, the metrics history and the resolved config with its hash. It is written with
:func:`sagemix.utils.atomic_torch_save` (temp file + ``os.replace``), so an interrupted write never
leaves a half-written file behind; a damaged file (truncated, say) is refused with a clear message
rather than half-loaded.

The trainer is described in SAGE ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et al.,
BMVC 2022, https://arxiv.org/abs/2211.00113), section 7 of our spec.

Example:
    >>> from sagemix.train.checkpoint import load_model  # doctest: +SKIP
    >>> model, config = load_model("runs/cifar10-preactresnet18-sage-s0/checkpoint.pt")  # doctest: +SKIP
    >>> config["num_classes"], model.training  # doctest: +SKIP
    (10, False)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..utils import atomic_torch_save
from .config import RUN_DEFINING_KEYS, TrainConfig, config_hash

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "check_compatible", "load_model"]

FORMAT = "sagemix-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("format", "format_version", "config", "config_hash", "epoch", "step", "model", "optimizer",
             "scheduler", "rng", "history")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, not a sagemix checkpoint, or from another config."""


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint dict atomically (the trainer builds the dict).

    Args:
        state: the checkpoint; ``format`` and ``format_version`` are added.
        path: destination file; its folder is created.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    atomic_torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, **state}, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`save_checkpoint`.

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
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a sagemix checkpoint (no format={FORMAT!r} marker)")
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {str(path)!r} has format version {state.get('format_version')!r}; "
                              f"this sagemix reads version {FORMAT_VERSION}")
    missing = [k for k in _REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is damaged: missing entries {missing}")
    return state


def check_compatible(state: dict[str, Any], config: TrainConfig, path: str | os.PathLike = "checkpoint") -> None:
    """Refuse a checkpoint whose run-defining settings differ from ``config``'s.

    Raises:
        CheckpointError: naming each differing key with the checkpoint's and the requested value.
    """
    if state["config_hash"] == config_hash(config):
        return
    try:
        saved = TrainConfig.from_dict(state["config"]).run_defining()
    except (TypeError, ValueError):
        saved = {}
    wanted = config.run_defining()
    diffs = [f"{k}: checkpoint {saved.get(k)!r} != requested {wanted[k]!r}"
             for k in RUN_DEFINING_KEYS if saved.get(k) != wanted[k]]
    detail = "; ".join(diffs) if diffs else "config hash differs"
    raise CheckpointError(f"checkpoint {str(path)!r} was written by a run with a different config ({detail}); "
                          "resume with the same settings, or start a new run in another folder (--out)")


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
        path = path / "checkpoint.pt"
    state = load_checkpoint(path, map_location="cpu")
    config = dict(state["config"])
    if "num_classes" not in config:
        raise CheckpointError(f"checkpoint {str(path)!r} does not record num_classes")
    from ..models import create_model  # the model registry (imported here: models import torch only)

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
