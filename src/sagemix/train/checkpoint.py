"""Checkpoints: written atomically, checked on load, refused when damaged or from another config.

A checkpoint (``checkpoint.pt`` in the run folder) holds everything a run needs to continue exactly
where it stopped: the model, optimizer, scheduler and GradScaler states, the RNG states of every
process (torch's global RNG, CUDA's, the loader's and the mixer's generators), the epoch and step
reached, the metrics history and the resolved config with its hash, and a SHA-256 of all that
(:func:`sagemix.run_folder.state_digest`; torch.load does not check the zip CRCs). It is written with
:func:`sagemix.utils.atomic_torch_save` (temp file + fsync + ``os.replace``), so an interrupted write
never leaves a half-written file behind, and a full or read-only disk is one clear error that leaves
the previous checkpoint intact; a damaged file (truncated, or bytes changed inside a tensor) is
refused with a message that says what to delete, rather than half-loaded. Reading (:func:`load_checkpoint`, :func:`load_model`, :class:`CheckpointError`)
lives in :mod:`sagemix.run_folder`, so that evaluation reads checkpoints without importing the
trainer; it is re-exported here.

The trainer is described in SAGE ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et al.,
BMVC 2022, https://arxiv.org/abs/2211.00113); docs/SAGE.md §7.

Example:
    >>> from sagemix.train.checkpoint import load_model  # doctest: +SKIP
    >>> model, config = load_model("runs/cifar10-preactresnet18-sage-s0/checkpoint.pt")  # doctest: +SKIP
    >>> config["num_classes"], model.training  # doctest: +SKIP
    (10, False)
"""
from __future__ import annotations

import os
from typing import Any

from ..run_folder import (CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION, CheckpointError, load_checkpoint,
                          load_model, state_digest)
from ..utils import atomic_torch_save
from .config import RUN_DEFINING_KEYS, TrainConfig, config_hash

__all__ = ["CheckpointError", "FORMAT", "FORMAT_VERSION", "save_checkpoint", "load_checkpoint",
           "check_compatible", "load_model"]

FORMAT = CHECKPOINT_FORMAT
FORMAT_VERSION = CHECKPOINT_FORMAT_VERSION


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint dict atomically (the trainer builds the dict).

    Args:
        state: the checkpoint; ``format``, ``format_version`` and ``sha256`` (of the rest) are added.
        path: destination file; its folder is created.

    Raises:
        DiskWriteError: the disk is full or not writable (the previous checkpoint is left as it was).
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    full = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    full["sha256"] = state_digest(full)
    atomic_torch_save(full, path, what="checkpoint")


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
