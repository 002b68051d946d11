"""The rank side of tests/test_objective.py's 2-process gloo test (run by torchrun, not by pytest).

Each rank trains a DDP-wrapped copy of the same model with :meth:`sagemix.MixStep.objective` and one
backward per step (with ``static_graph=True`` also the two-backward ``MixStep.__call__``, which refuses
it for the methods with a clean pass), on its own half of the batch with its own mixer generator, for
every registered method and three DDP settings; it also computes, without DDP, every rank's
single-process gradients (all deterministic) and writes the largest relative difference between the
all-reduced gradients and their mean, plus any error, to ``<out>/rank<r>.json``.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from sagemix import MixStep
from sagemix.mixers import create_mixer, list_mixers
from sagemix.models import create_model

K, WORLD = 4, 2
SETTINGS = {"default": {}, "find_unused_parameters": {"find_unused_parameters": True},
            "static_graph": {"static_graph": True}}


#: Puzzle Mix twice: with its default eval-mode clean pass (clean loss dropped) and keeping the clean loss
#: (train mode, both graphs in the one backward).
VARIANTS = {"puzzlemix_kept": ("puzzlemix", {"clean_lam": 0.5})}


def _mixer(name: str, rank: int, step: int):
    name, extra = VARIANTS.get(name, (name, {}))
    return create_mixer(name, num_classes=K, generator=torch.Generator().manual_seed(100 * rank + step), **extra)


def _batch(rank: int, step: int):
    g = torch.Generator().manual_seed(1000 + 10 * step + rank)
    return torch.randn(4, 3, 16, 16, generator=g), torch.randint(0, K, (4,), generator=g)


def _grads(model):
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def _rel(got, want) -> float:
    return max(float((a - b).norm() / b.norm().clamp_min(1e-12)) for a, b in zip(got, want))


def run(name: str, setting: dict, rank: int, mode: str = "objective") -> dict:
    torch.manual_seed(0)
    base = create_model("smallnet", num_classes=K, width=4)
    model = DDP(copy.deepcopy(base), **setting)
    result = {"rel": [], "ranks_agree": []}
    for step in range(3):  # several steps: a reducer left unfinished fails on the next forward
        # the single-process reference: each rank's step() on a plain copy holding the same state
        refs = []
        for r in range(WORLD):
            plain = copy.deepcopy(model.module)
            MixStep(plain, _mixer(name, r, step))(*_batch(r, step))
            refs.append(_grads(plain))
        mean = [sum(gs) / WORLD for gs in zip(*refs)]
        model.zero_grad(set_to_none=True)
        ddp_step = MixStep(model, _mixer(name, rank, step))
        if mode == "objective":
            ddp_step.objective(*_batch(rank, step)).loss.backward()
        else:  # the two-backward step, here for static_graph (its clean pass also runs on the module there)
            ddp_step(*_batch(rank, step))
        got = _grads(model.module)
        result["rel"].append(_rel(got, mean))
        flat = torch.cat([g.flatten() for g in got])
        both = [torch.zeros_like(flat) for _ in range(WORLD)]
        dist.all_gather(both, flat)
        result["ranks_agree"].append(bool(torch.equal(both[0], both[1])))
        with torch.no_grad():  # move the weights so the next step differs (the same update everywhere)
            for p in model.parameters():
                p.sub_(0.1 * p.grad)
        # BN running statistics: DDP broadcasts rank 0's at each forward; keep ranks equal for the reference
        for b in model.module.buffers():
            dist.broadcast(b, 0)
    return result


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen = {}
    for name in [*list_mixers(), *VARIANTS]:
        for label, setting in SETTINGS.items():
            for mode in ("objective", "step") if label == "static_graph" else ("objective",):
                try:
                    seen[f"{name}/{label}/{mode}"] = run(name, setting, rank, mode)
                except Exception as e:  # noqa: BLE001 - the test reports the error
                    seen[f"{name}/{label}/{mode}"] = {"error": f"{type(e).__name__}: {e}"}
    (out / f"rank{rank}.json").write_text(json.dumps(seen))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
