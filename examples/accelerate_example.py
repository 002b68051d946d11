"""Train any sagemix method with Hugging Face Accelerate: prepare, accumulate, backward of MixStep.objective.

    python examples/accelerate_example.py --steps 200 --method sage --accumulate 2 --mixed-precision bf16
    accelerate launch --multi_gpu --num_processes 2 examples/accelerate_example.py --cpu --steps 200

(``accelerate launch --cpu`` starts one process; the torchrun-based ``--multi_gpu`` launcher with the
script's ``Accelerator(cpu=True)`` runs several CPU processes over gloo.) Needs
``pip install "sagemix[accelerate,offline]"``.
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from sagemix import MixStep, create_mixer
from sagemix.models import create_model
from sagemix.train.setup import mixer_seed

from _offline import accuracy, offline_tensors, parser, require

Accelerator = require("accelerate", "accelerate").Accelerator


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--accumulate", type=int, default=1, help="gradient_accumulation_steps")
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    args = p.parse_args()
    accelerator = Accelerator(cpu=args.cpu, gradient_accumulation_steps=args.accumulate,
                              mixed_precision=args.mixed_precision)
    train, k = offline_tensors(args.n_train, train=True)
    torch.manual_seed(args.seed)
    model = create_model("smallnet", num_classes=k)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    # each process mixes its own batch with its own stream (process 0: the single-process seed)
    mixer = create_mixer(args.method, num_classes=k,
                         generator=torch.Generator().manual_seed(mixer_seed(args.seed, accelerator.process_index)))
    step = MixStep(model, mixer)              # the prepared (DDP) model
    done = 0
    while done < args.steps:
        for x, y in loader:
            with accelerator.accumulate(model):
                out = step.objective(x, y)    # clean pass -> saliency -> mix -> mixed pass; nothing back-propagated
                accelerator.backward(out.loss)
                optimizer.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                done += 1
                if done % 50 == 0 or done == args.steps:
                    accelerator.print(f"step {done}: loss {out.loss.item():.4f} (mixed {out.mixed_loss.item():.4f})")
                if done == args.steps:
                    break
    mixer.close()
    if accelerator.is_main_process:
        test, _ = offline_tensors(args.n_train, train=False)
        print(f"test accuracy: {accuracy(accelerator.unwrap_model(model), test):.1f}%")
    accelerator.end_training()


if __name__ == "__main__":
    main()
