"""A plain PyTorch loop with sagemix: MixStep runs the clean pass, the mix and the mixed pass; you step.

    python examples/plain_loop.py --steps 200 --method sage
"""
from __future__ import annotations

import torch

from sagemix import MixStep, create_mixer
from sagemix.data import load_dataset, make_loader
from sagemix.models import create_model

from _offline import accuracy, offline_tensors, parser


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    torch.manual_seed(args.seed)
    train = load_dataset("offline", train=True, n_train=args.n_train, n_test=max(args.n_train // 4, 1))
    # the device-resident loader: normalised, flipped and cropped float32 batches
    loader = make_loader(train, batch_size=args.batch_size, train=True, device="cpu",
                         generator=torch.Generator().manual_seed(args.seed))
    model = create_model("smallnet", num_classes=train.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    mixer = create_mixer(args.method, num_classes=train.num_classes,
                         generator=torch.Generator().manual_seed(args.seed))
    step = MixStep(model, mixer)
    done = 0
    while done < args.steps:
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            out = step(x, y)                 # gradients of w * clean + v * mixed, accumulated in the model
            optimizer.step()
            done += 1
            if done % 50 == 0 or done == args.steps:
                print(f"step {done}: loss {out.loss.item():.4f} (mixed {out.mixed_loss.item():.4f})")
            if done == args.steps:
                break
    mixer.close()
    test, _ = offline_tensors(args.n_train, train=False)
    print(f"test accuracy: {accuracy(model, test):.1f}%")


if __name__ == "__main__":
    main()
