"""Distributed data-parallel set-up for ``torchrun --nproc_per_node N -m sagemix train ...``.

Each process trains on its own shard of every epoch, mixes within its own batch (its mixer
generator has its own seed, derived from the run seed and the rank, as in the SAGE reference code where
every GPU mixes its own sub-batch; SAGE, Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113), and
DDP averages the gradients. NCCL is used on CUDA and gloo on CPU. Only rank 0 writes files.

The rules of a multi-process (and multi-node) run, each kept here once:

- **Devices**: under torchrun (``WORLD_SIZE`` > 1) every process takes ``cuda:LOCAL_RANK``; ``cuda``
  and ``auto`` mean that, and an explicit ``cuda:N`` is overridden with a warning (one GPU per
  process: ``cuda:N`` on every rank would put them all on one GPU). See :func:`process_device_setting`.
- **File-system questions** (is there a checkpoint? does it fit this config?) are answered by rank 0
  alone and its answer -- or its error -- is broadcast (:func:`decide_on_main`): with no shared
  filesystem the other ranks' paths need not hold the run folder at all, and an error raised on one
  rank reaches every rank instead of leaving the others waiting in a barrier.
- **Downloads** run in turns (:func:`run_in_turns`): global rank 0 first, then the local rank 0 of
  every other node (on a shared filesystem it finds the files there; without one it downloads to its
  own disk), then every other process, which only reads. A barrier separates the turns and an error
  in any turn is raised on every rank.
- **Buffers** (batch-norm running statistics) are updated by each replica from its own batch; they are
  broadcast from rank 0 (:func:`broadcast_buffers`) before evaluation and before saving, and the
  replica check (:func:`check_replicas`) covers parameters *and* buffers: a mismatch is an error.

Without the ``torchrun`` environment variables (``WORLD_SIZE`` absent or 1) everything here is a
no-op on a single process.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import torch
import torch.distributed as dist

from ..checks import is_int
from ..utils import resolve_device  # the one device rule, re-exported here for the trainer

__all__ = ["param_digest", "DistInfo", "setup_distributed", "cleanup_distributed", "all_reduce_sum", "all_gather_objects",
           "barrier", "resolve_device", "process_device_setting", "decide_on_main", "run_in_turns",
           "broadcast_buffers", "check_replicas", "ReplicaMismatch"]

T = TypeVar("T")


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


def process_device_setting(device: str | torch.device | None, *, local_rank: int,
                           world_size: int) -> tuple[str | torch.device | None, str | None]:
    """The device setting one process of a (possibly torchrun) run uses, and a warning if it was changed.

    On a single process (``world_size`` 1) the setting is returned unchanged. Under torchrun every
    process owns one GPU, ``cuda:<local_rank>``: ``"cuda"`` and ``"auto"`` already resolve to it (see
    :func:`sagemix.utils.resolve_device`), and an explicit ``"cuda:N"`` with another index is replaced
    by ``"cuda:<local_rank>"`` with a warning (``cuda:N`` on every rank would put all of them on one
    GPU). Non-CUDA settings (``"cpu"``) are kept.

    Args:
        device: the config's device setting.
        local_rank: the process's rank on its node (``LOCAL_RANK``).
        world_size: the number of processes (``WORLD_SIZE``).

    Returns:
        ``(setting, warning)``; ``warning`` is None when the setting was kept.
    """
    if not is_int(world_size) or world_size < 1:
        raise ValueError(f"world_size must be a positive int, got {world_size!r}")
    if world_size == 1 or device is None or isinstance(device, str) and device == "auto":
        return device, None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return device, None  # resolve_device names the bad value
    if dev.type != "cuda" or dev.index is None or dev.index == local_rank:
        return device, None
    return (f"cuda:{local_rank}",
            f"device {str(device)!r} under torchrun (world size {world_size}): every process uses its own GPU, "
            f"cuda:LOCAL_RANK; this process (LOCAL_RANK={local_rank}) uses cuda:{local_rank}. Pass --device cuda "
            "to silence this warning, or choose the GPUs with CUDA_VISIBLE_DEVICES")


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
    setting, note = process_device_setting(device, local_rank=local_rank, world_size=world)
    if note is not None:
        warnings.warn(note, stacklevel=2)
    dev = resolve_device(setting, local_rank)
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


def cleanup_distributed(info: DistInfo, *, sync: bool = False) -> None:
    """Destroy the process group if :func:`setup_distributed` created it.

    Args:
        info: what :func:`setup_distributed` returned.
        sync: meet every rank in a barrier first (after a run that finished on every rank). Without
            it a fast rank can tear its gloo connections down while a slower one is still finishing
            its last collective, which aborts the slower process ("terminate called without an
            active exception"). Leave it off on an error path, where another rank may never arrive.
    """
    if info.initialized and dist.is_initialized():
        if sync and dist.get_world_size() > 1:
            dist.barrier()
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


def param_digest(model: torch.nn.Module, *, buffers: bool = True) -> str:
    """SHA-256 of a model's parameters and buffers (names, shapes, dtypes and exact bytes), to compare replicas.

    Args:
        model: the model.
        buffers: include the buffers (batch-norm running statistics); the trainer broadcasts them from
            rank 0 before it compares, so they must agree too.
    """
    h = hashlib.sha256()
    tensors = list(model.named_parameters()) + (list(model.named_buffers()) if buffers else [])
    for name, p in tensors:
        t = p.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ReplicaMismatch(RuntimeError):
    """The processes' copies of the model differ (parameters or buffers)."""


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank; no-op on one process."""
    if not _active():
        return
    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)


def check_replicas(model: torch.nn.Module) -> list[str]:
    """Gather every rank's :func:`param_digest` (parameters and buffers) and require them equal.

    Returns:
        The digests in rank order (one entry on one process).

    Raises:
        ReplicaMismatch: on every rank, when any two differ.
    """
    digests = all_gather_objects(param_digest(model))
    if len(set(digests)) != 1:
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        raise ReplicaMismatch(f"the {len(digests)} replicas' parameters/buffers differ: rank(s) {differ} differ "
                              f"from rank 0 (digests {digests})")
    return digests


def _pack_error(e: BaseException, rank: int) -> tuple[str, str, str, int]:
    # Names, not the class: a class that does not pickle must not break the broadcast.
    return (type(e).__module__, type(e).__qualname__, str(e), rank)


def _raise_packed(packed: tuple[str, str, str, int], here: int) -> None:
    module, qualname, message, origin = packed
    if origin != here:
        message = f"{message} (raised on rank {origin})"
    cls: Any = None
    try:
        import importlib

        cls = importlib.import_module(module)
        for part in qualname.split("."):
            cls = getattr(cls, part)
        err = cls(message) if isinstance(cls, type) and issubclass(cls, Exception) else None
    except Exception:  # noqa: BLE001 - an error type that cannot be rebuilt from one message
        err = None
    raise err if err is not None else RuntimeError(f"{qualname}: {message}")


def decide_on_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give every rank its result, or raise its error on every rank.

    For the file-system questions of a run (does the folder hold a checkpoint, does it fit): with no
    shared filesystem only rank 0's answer counts, and a ValueError raised there must stop every rank,
    not leave them waiting in the next collective. The result travels by pickling
    (``broadcast_object_list``). On one process it is ``fn()``.
    """
    if not _active():
        return fn()
    rank = dist.get_rank()
    payload: list[Any] = [None]
    if rank == 0:
        try:
            payload[0] = ("ok", fn())
        except Exception as e:  # noqa: BLE001 - every error goes to every rank
            payload[0] = ("error", _pack_error(e, rank))
    dist.broadcast_object_list(payload, src=0)
    kind, value = payload[0]
    if kind == "error":
        _raise_packed(value, rank)
    return value


def run_in_turns(fn: Callable[[], T], *, local_rank: int | None = None) -> T:
    """Run ``fn`` on every rank in three turns: global rank 0, then each other node's local rank 0, then the rest.

    Meant for downloads: one process downloads, then one per node finds the files (shared filesystem)
    or downloads its own copy (node-local disks), then every other process only reads. A barrier
    separates the turns (an all-gather of the turn's errors), and an error raised in any turn is raised
    on every rank. On one process it is ``fn()``.

    Args:
        fn: what to run (each rank runs it exactly once).
        local_rank: the rank on this node (default: ``LOCAL_RANK``, else 0).
    """
    if not _active():
        return fn()
    rank = dist.get_rank()
    local = _env_int("LOCAL_RANK", 0) if local_rank is None else local_rank
    turn = 0 if rank == 0 else (1 if local == 0 else 2)
    result: Any = None
    for t in range(3):
        error = None
        if t == turn:
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001 - every error goes to every rank
                error = _pack_error(e, rank)
        first = next((e for e in all_gather_objects(error) if e is not None), None)
        if first is not None:
            _raise_packed(first, rank)
    return result
