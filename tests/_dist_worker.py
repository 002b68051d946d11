"""The rank side of tests/test_distributed.py's 2-process gloo test (run by torchrun, not by pytest).

Each rank runs the distributed helpers of :mod:`sagemix.train.distributed` and writes what it saw to
``<out>/rank<r>.json``; the test reads both files.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from sagemix.run_folder import CheckpointError
from sagemix.train.distributed import (ReplicaMismatch, broadcast_buffers, check_replicas, decide_on_main,
                                       run_in_turns)


def _caught(fn):
    try:
        return {"ok": fn()}
    except Exception as e:  # noqa: BLE001 - the test looks at the type and the message
        return {"type": type(e).__name__, "message": str(e)}


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen: dict = {"rank": rank}

    def rank0_fails():
        raise CheckpointError(f"only rank {rank}'s folder was looked at")

    seen["decide_error"] = _caught(lambda: decide_on_main(rank0_fails))
    seen["decide_value"] = _caught(lambda: decide_on_main(lambda: {"decided_by": rank}))

    log = out / "turns.log"

    def write_turn():
        time.sleep(0.3 if rank == 0 else 0.0)  # rank 0 is slow: the others must still wait for it
        with open(log, "a") as f:
            f.write(f"{rank}\n")
        return rank

    # rank 1 plays "local rank 0 of another node" (turn 1)
    seen["turns"] = _caught(lambda: run_in_turns(write_turn, local_rank=0))

    def fail_on_rank0():
        if rank == 0:
            raise ValueError("download failed on rank 0")
        seen["ran_after_error"] = True

    seen["turns_error"] = _caught(lambda: run_in_turns(fail_on_rank0, local_rank=rank))

    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    bn.running_mean.fill_(float(rank + 1))
    bn.num_batches_tracked.fill_(rank + 5)
    seen["before"] = _caught(lambda: check_replicas(bn))
    broadcast_buffers(bn)
    seen["after_mean"] = bn.running_mean.tolist()
    seen["after_count"] = int(bn.num_batches_tracked)
    seen["after"] = _caught(lambda: len(set(check_replicas(bn))))
    seen["mismatch_type_is_replica"] = issubclass(ReplicaMismatch, RuntimeError)
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
