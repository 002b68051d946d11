"""The script of tests/test_accelerate.py: sagemix with Hugging Face Accelerate (``accelerate launch``).

Trains SAGE with ``accelerator.prepare``, ``accelerator.accumulate`` (2 micro-batches per optimizer step)
and ``accelerator.backward(step.objective(x, y).loss)`` for ``--steps`` optimizer steps, and writes
``<out>/rank<r>.json``: the relative difference between each optimizer step's gradients and the mean
over processes of the single-process ``MixStep`` gradients on the same micro-batches (the reference is
computed from every process's batches, gathered), and whether the gradients still differed between
processes after the first micro-batch (no all-reduce inside ``accumulate``).
"""
from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from sagemix import MixStep, create_mixer
from sagemix.models import create_model
from sagemix.train.setup import mixer_seed

K, ACCUMULATE = 4, 2


def _grads(model):
    return [p.grad.detach().clone() for p in model.parameters()]


def _max_rel(a, b):
    return max(float((x - y).norm() / y.norm().clamp_min(1e-30)) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--mixed-precision", default="no")
    args = parser.parse_args()
    from accelerate import Accelerator  # here: pytest --doctest-modules imports this file, also without accelerate

    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE, mixed_precision=args.mixed_precision)
    rank, world = accelerator.process_index, accelerator.num_processes
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 16, 16, generator=g), torch.randint(0, K, (64,), generator=g)
    torch.manual_seed(0)
    model = create_model("smallnet", num_classes=K, width=4)
    reference = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y, torch.arange(64)), batch_size=4)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # each process mixes within its own batch with its own stream (rank 0: the single-process seed)
    mixer = create_mixer("sage", num_classes=K, generator=torch.Generator().manual_seed(mixer_seed(0, rank)))
    step = MixStep(model, mixer)
    ref_mixers = [create_mixer("sage", num_classes=K, generator=torch.Generator().manual_seed(mixer_seed(0, r)))
                  for r in range(world)]
    autocast = torch.bfloat16 if args.mixed_precision == "bf16" else None
    seen = {"rank": rank, "world": world, "rel": [], "differ_inside_accumulate": []}
    micro: list[torch.Tensor] = []
    for xb, yb, idx in loader:
        with accelerator.accumulate(model):
            out = step.objective(xb, yb)
            accelerator.backward(out.loss)
            micro.append(idx)
            if not accelerator.sync_gradients:  # inside accumulate: the local gradients, not yet all-reduced
                flat = torch.cat([p.grad.flatten() for p in model.parameters()])
                seen["differ_inside_accumulate"].append(bool((accelerator.gather(flat[None]).diff(dim=0) != 0).any()))
            else:
                got = _grads(model)
                # the reference: every process's micro-batches through step() on a plain copy of the weights
                batches = accelerator.gather(torch.stack(micro)[None]).reshape(world, len(micro), -1)
                per_rank = []
                for r in range(world):
                    plain = copy.deepcopy(reference)
                    plain.zero_grad(set_to_none=True)
                    ref = MixStep(plain, ref_mixers[r], autocast_dtype=autocast)
                    for i in batches[r]:
                        ref(x[i], y[i])
                    per_rank.append([p.grad / ACCUMULATE for p in plain.parameters()])
                seen["rel"].append(_max_rel(got, [sum(gs) / world for gs in zip(*per_rank)]))
                micro = []
            optimizer.step()
            optimizer.zero_grad()
            if accelerator.sync_gradients:
                reference.load_state_dict(accelerator.unwrap_model(model).state_dict())
        if len(seen["rel"]) == args.steps:
            break
    (args.out / f"rank{rank}.json").write_text(json.dumps(seen))
    accelerator.end_training()


if __name__ == "__main__":
    main()
