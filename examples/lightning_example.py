"""Train any sagemix method with PyTorch Lightning (automatic optimization, one backward per step).

    python examples/lightning_example.py --steps 200 --method sage --precision bf16-mixed --accumulate 2
    python examples/lightning_example.py --steps 200 --devices 2 --strategy ddp      # 2 CPU processes

Needs ``pip install "sagemix[lightning,offline]"``.
"""
from __future__ import annotations

import functools

import torch
from torch.utils.data import DataLoader

from sagemix import create_mixer
from sagemix.models import create_model

from _offline import offline_tensors, parser, require

L = require("lightning", "lightning")
MixLightningModule = require("sagemix.integrations.lightning", "lightning").MixLightningModule


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--precision", default="32-true", help="Lightning precision: 32-true, bf16-mixed, ...")
    p.add_argument("--accumulate", type=int, default=1, help="accumulate_grad_batches")
    p.add_argument("--devices", type=int, default=1, help="CPU processes")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ...")
    args = p.parse_args()
    train, k = offline_tensors(args.n_train, train=True)
    test, _ = offline_tensors(args.n_train, train=False)
    torch.manual_seed(args.seed)
    module = MixLightningModule(create_model("smallnet", num_classes=k), create_mixer(args.method, num_classes=k),
                                optimizer=functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True,
                                                            weight_decay=5e-4), seed=args.seed)
    trainer = L.Trainer(accelerator="cpu", devices=args.devices, strategy=args.strategy, precision=args.precision,
                        accumulate_grad_batches=args.accumulate, max_steps=args.steps, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, limit_val_batches=4)
    trainer.fit(module, DataLoader(train, batch_size=args.batch_size, shuffle=True),
                DataLoader(test, batch_size=256))
    if trainer.is_global_zero:
        shown = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
        print(f"after {trainer.global_step} steps: {shown}")


if __name__ == "__main__":
    main()
