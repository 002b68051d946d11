"""Distributed data-parallel set-up for ``torchrun --nproc_per_node N -m sagemix train ...``.

Each process trains on its own shard of every epoch, mixes within its own batch (its mixer
generator is seeded with ``seed + rank``, as in the SAGE reference code where every GPU mixes its own
sub-batch; SAGE, Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113), and DDP averages the
gradients. NCCL is used on CUDA and gloo on CPU. Only rank 0 writes files.

Without the ``torchrun`` environment variables (``WORLD_SIZE`` absent or 1) everything here is a
no-op on a single process.
"""
from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..utils import resolve_device  # the one device rule, re-exported here for the trainer

__all__ = ["param_digest", "DistInfo", "setup_distributed", "cleanup_distributed", "all_reduce_sum", "all_gather_objects",
           "barrier", "resolve_device"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly single-process) run.

    Attributes:
        rank: global rank (0 on a single process).
        world_size: number of processes (1 on a single process).
        local_rank: rank on this machine (the CUDA device index under ``torchrun``).
        initialized: True when this module initialised ``torch.distributed``.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def setup_distributed(device: str = "auto", *, timeout_s: float = 1800.0) -> tuple[DistInfo, torch.device]:
    """Initialise ``torch.distributed`` from the ``torchrun`` environment when there is one.

    Args:
        device: the config's device setting.
        timeout_s: collective timeout.

    Returns:
        ``(info, device)``; on CUDA the process's device is made current.
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistInfo(0, 1, 0, False), dev
    if dist.is_available() and dist.is_initialized():  # set up by the caller
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, False), dev
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(seconds=timeout_s)}
    if dev.type == "cuda":
        kwargs["device_id"] = dev
    dist.init_process_group(**kwargs)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True), dev


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if info.initialized and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place, returned); identity on one process."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]``; ``[obj]`` on one process."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every process; no-op on one process."""
    if _active():
        dist.barrier()


def param_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters (names, shapes, dtypes and exact bytes), to compare replicas.

    Buffers (batch-norm running statistics) are left out: under DDP each replica updates them from
    its own batch after the last broadcast.
    """
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
