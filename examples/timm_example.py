"""A timm model in a timm-style loop (timm's optimizer factory, per-update cosine schedule, AverageMeter, EMA)
with a sagemix method in place of timm's Mixup/CutMix.

    python examples/timm_example.py --steps 200 --method sage --model resnet18

timm's own ``Mixup`` builds the mixed batch from the images alone; a saliency method needs the model and
the loss, so ``MixStep`` takes over the forward/backward and the loop keeps the rest. Needs
``pip install "sagemix[timm,offline]"`` (the model starts from random weights: nothing is downloaded).
"""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from sagemix import MixStep, create_mixer

from _offline import accuracy, offline_tensors, parser, require

timm = require("timm", "timm")
from timm.optim import create_optimizer_v2  # noqa: E402 (after the check above)
from timm.scheduler import CosineLRScheduler  # noqa: E402
from timm.utils import AverageMeter, ModelEmaV3  # noqa: E402


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="a timm model name (random weights)")
    args = p.parse_args()
    train, k = offline_tensors(args.n_train, train=True)
    torch.manual_seed(args.seed)
    model = timm.create_model(args.model, pretrained=False, num_classes=k)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = CosineLRScheduler(optimizer, t_initial=args.steps, warmup_t=min(10, args.steps // 10), t_in_epochs=False)
    ema = ModelEmaV3(model, decay=0.99)
    mixer = create_mixer(args.method, num_classes=k, generator=torch.Generator().manual_seed(args.seed))
    step = MixStep(model, mixer)             # soft-target cross-entropy, as timm's SoftTargetCrossEntropy
    losses = AverageMeter()
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True)
    updates = 0
    while updates < args.steps:
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            out = step(x, y)
            optimizer.step()
            updates += 1
            scheduler.step_update(num_updates=updates)
            ema.update(model, step=updates)
            losses.update(out.loss.item(), x.shape[0])
            if updates % 50 == 0 or updates == args.steps:
                print(f"update {updates}: loss {losses.val:.4f} (avg {losses.avg:.4f}) "
                      f"lr {optimizer.param_groups[0]['lr']:.4f}")
            if updates == args.steps:
                break
    mixer.close()
    test, _ = offline_tensors(args.n_train, train=False)
    print(f"test accuracy: model {accuracy(model, test):.1f}%, EMA {accuracy(ema.module, test):.1f}%")


if __name__ == "__main__":
    main()
