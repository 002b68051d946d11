"""``sagemix show``: pictures of the mixes (paper Figs. 1, 3 and 4) from a dataset or your own images.

See :mod:`sagemix.viz` for the figures.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._common import (add_progress_arguments, add_threads_argument, apply_threads, check_methods, check_out_dir,
                      parse_seed, progress_enabled, report_missing_extras)

__all__ = ["add_parser", "run"]

FIGURES = ("mixes", "anatomy", "rearrangement")
EXAMPLES = """examples:
  sagemix show                                   # offline data, a quickly trained smallnet, all figures
  sagemix show --checkpoint runs/sage-s0/checkpoint.pt --dataset cifar10 --data-dir ~/data --out figs
  sagemix show --images ~/photos --image-size 96 --figures anatomy rearrangement
  sagemix show --pairs 3 --seed 1 --methods mixup cutmix sage

figures (PNG, in --out):
  mixes.png          the pair, then one mix of it by Mixup, CutMix, SaliencyMix, Puzzle Mix, Co-Mixup, SAGE
                     with each mix's label weights (paper Fig. 1)
  sage_anatomy.png   the two images, their saliency, SAGE's mask, the SAGE mix and the Mixup mix (Fig. 3)
  rearrangement.png  SAGE's objective over all shifts and the mix with and without rearrangement (Fig. 4)
"""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``show`` subcommand."""
    p = subparsers.add_parser(
        "show", help="figures of the mixes: every method on the same pair, SAGE's anatomy and rearrangement",
        description="Draw the mixes of image pairs from a dataset (offline by default) or a folder of your "
                    "own images, with the saliency of a checkpoint (--checkpoint) or of a small network "
                    "trained for a few steps on the offline data. Saliency is the input gradient of the "
                    "cross-entropy with the model in eval mode. Pictures are de-normalised and upscaled "
                    "with nearest-neighbour sampling.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", default=None,
                     help="dataset to draw pairs from (default: the checkpoint's dataset, else offline)")
    src.add_argument("--images", metavar="FOLDER", default=None,
                     help="a folder of your own images instead (labels: the model's predictions; each pair "
                          "takes two sub-folders, i.e. two of your classes, when the folder has them)")
    p.add_argument("--data-dir", default=None,
                   help="dataset root (for cifar10/cifar100/imagefolder; default: the checkpoint's)")
    p.add_argument("--image-size", type=int, default=None,
                   help="resize to this side (default: the dataset's own size; 64 for --images)")
    p.add_argument("--checkpoint", default=None, metavar="PATH",
                   help="a trained model (checkpoint.pt or its run folder); default: train smallnet briefly")
    p.add_argument("--train-steps", type=int, default=150,
                   help="SGD steps of the quickly trained smallnet (default: 150)")
    p.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES), help="which figures")
    p.add_argument("--methods", nargs="+", default=None, metavar="NAME",
                   help="methods of the mixes figure (default: mixup cutmix saliencymix puzzlemix comixup sage)")
    p.add_argument("--pairs", type=int, default=2, help="pairs (rows) per figure (default: 2)")
    p.add_argument("--seed", type=parse_seed, default=0, help="seed of the pairs, the mixes and the quick model")
    p.add_argument("--prior", type=float, default=0.5,
                   help="SAGE's alpha in the anatomy and rearrangement figures (default: 0.5)")
    p.add_argument("--cell", type=int, default=128, help="side of each picture in pixels (default: 128)")
    p.add_argument("--device", default="cpu", help="device of the model (default: cpu)")
    add_threads_argument(p)
    add_progress_arguments(p)
    p.add_argument("--out", default="sagemix-figures", metavar="DIR", help="output folder (default: sagemix-figures)")
    return p


def _load_checkpoint(path: str, device: str) -> tuple[Any, dict]:
    from ..run_folder import CHECKPOINT_FILE, load_model

    ckpt = Path(path)
    if ckpt.is_dir():
        ckpt = ckpt / CHECKPOINT_FILE
    if not ckpt.is_file():
        raise FileNotFoundError(f"--checkpoint {path!r}: no such checkpoint file")
    model, config = load_model(ckpt, map_location=device)
    return model.to(device).eval(), dict(config or {})


def _predict_pair_labels(model: Any, x: Any, groups: Any, n_pairs: int, seed: int) -> tuple[Any, list[tuple[int, int]]]:
    """Pairs and labels for unlabelled pictures.

    Pairs: pictures of different sub-folders (the user's classes) where the folder has them, else of
    different predicted classes, chosen at random (``seed``); when too few such pairs exist the rest are
    random pairs of the pictures left. Labels: each image's top-1 class; image 2 of a pair takes its best
    class other than image 1's, so that the pair's two labels differ.
    """
    import torch

    from ..viz import pick_pairs

    device = next(iter(model.parameters())).device
    with torch.no_grad():
        logits = model(x.to(device)).float().cpu()
    labels = logits.argmax(1)
    n = min(n_pairs, x.shape[0] // 2)
    apart = groups if len(set(groups.tolist())) > 1 else labels
    pairs: list[tuple[int, int]] = []
    for k in range(n, 0, -1):  # as many pairs across classes as there are
        try:
            pairs = pick_pairs(apart, k, generator=torch.Generator().manual_seed(seed))
            break
        except ValueError:
            continue
    used = {i for p in pairs for i in p}
    rest = [i for i in torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).tolist()
            if i not in used]
    pairs += [(rest[2 * r], rest[2 * r + 1]) for r in range(n - len(pairs))]
    for i, j in pairs:
        if labels[j] == labels[i]:
            lj = logits[j].clone()
            lj[labels[i]] = float("-inf")
            labels[j] = lj.argmax()
    return labels, pairs


def _train_quick_model(train: Any, *, mean: Any, std: Any, steps: int, seed: int, batch_size: int = 64,
                       lr: float = 0.05, progress: bool = True) -> Any:
    """A smallnet trained for about ``steps`` plain (vanilla) SGD steps through the Trainer, in eval mode.

    The run is built by :func:`sagemix.train.setup.build_setup` and trained by
    :class:`sagemix.train.Trainer` in a temporary folder (Nesterov momentum 0.9, constant ``lr``, weight
    decay 5e-4, flips, no crop; scored on 256 of its own images), on ``train`` normalised with the figures' ``mean``/``std``, so its input
    gradient is a meaningful saliency. ``steps = 0`` gives the untrained network.
    """
    import dataclasses
    import math
    import tempfile

    from ..train.config import TrainConfig
    from ..train.trainer import Trainer

    data = dataclasses.replace(train, mean=tuple(mean), std=tuple(std))
    n = int(data.labels.shape[0])
    batch = min(batch_size, n)
    per_epoch = max(1, n // batch)
    epochs = max(1, math.ceil(steps / per_epoch))
    with tempfile.TemporaryDirectory(prefix="sagemix-show-") as tmp:
        cfg = TrainConfig(method="vanilla", model="smallnet", dataset=str(train.name), epochs=epochs, batch_size=batch,
                          lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4, milestones=[], seed=seed,
                          crop_padding=0, drop_last=True, device="cpu", progress=progress, test_limit=256,
                          max_steps_per_epoch=max(1, math.ceil(steps / epochs)), out=str(Path(tmp) / "run"))
        trainer = Trainer(cfg, train_data=data, test_data=data, log=None)
        try:
            if steps > 0:
                trainer.fit(overwrite=True)
        finally:
            trainer.close()
    return trainer.setup.raw_model.eval()


def run(args: argparse.Namespace) -> int:
    """Load the pictures and a model, draw the figures."""
    import torch

    from .. import viz

    if args.pairs < 1:
        raise ValueError(f"--pairs must be >= 1, got {args.pairs}")
    if args.cell < 16:
        raise ValueError(f"--cell must be >= 16 pixels, got {args.cell}")
    if not 0.0 <= args.prior <= 1.0:
        raise ValueError(f"--prior must be in [0, 1], got {args.prior}")
    if args.train_steps < 0:
        raise ValueError(f"--train-steps must be >= 0, got {args.train_steps}")
    methods = check_methods(args.methods) or list(viz.FIG1_METHODS)
    out = check_out_dir(args.out)
    if "mixes" in args.figures:
        report_missing_extras(methods, "show")
    apply_threads(args.threads)
    progress = progress_enabled(args.progress)
    model = None
    classes = None
    config: dict = {}
    if args.checkpoint:
        model, config = _load_checkpoint(args.checkpoint, args.device)

    if args.images:
        pics, _, groups = viz.load_image_folder(args.images, size=args.image_size or 64, groups=True)
        if model is not None and config.get("mean") and config.get("std"):
            mean, std = tuple(config["mean"]), tuple(config["std"])
        else:  # the pictures' own statistics
            f = pics.float() / 255.0
            mean = tuple(f.mean(dim=(0, 2, 3)).tolist())
            std = tuple(f.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
        x = viz.normalize_uint8(pics, mean, std)
        labels, pairs = None, None
    else:
        from ..data import load_dataset

        dataset = args.dataset or config.get("dataset") or "offline"
        same = dataset == config.get("dataset")
        test = load_dataset(dataset, root=args.data_dir or (config.get("data_dir") if same else None), train=False,
                            image_size=args.image_size or (config.get("image_size") if same else None),
                            seed=int(config.get("data_seed", 0)) if same else args.seed)
        mean, std, classes = test.mean, test.std, list(test.classes)
        x = viz.normalize_uint8(test.images, mean, std)
        labels, pairs = test.labels, None

    if model is None:
        from ..data import load_dataset

        name = "offline" if args.images else (args.dataset or "offline")
        train = load_dataset(name, root=None if args.images else args.data_dir, train=True,
                             image_size=args.image_size or (64 if args.images else None), seed=args.seed)
        print(f"training smallnet for {args.train_steps} steps on {train.name} for the saliency "
              "(use --checkpoint for a trained model)")
        model = _train_quick_model(train, mean=mean, std=std, steps=args.train_steps, seed=args.seed,
                                   progress=progress).to(args.device)
        if args.images:  # the digit network's guesses on your photos: marked as guesses, not your classes
            classes = [f"digit {c}?" for c in train.classes]
            print("labels of your images: the offline digit network's guesses (marked 'digit k?'); pass "
                  "--checkpoint of a model trained on your classes for meaningful labels")
    if args.images:
        labels, pairs = _predict_pair_labels(model, x, groups, args.pairs, args.seed)
        if classes is None and config.get("classes"):
            classes = list(config["classes"])

    layout = viz.Layout(cell=args.cell)
    written = []
    common = dict(model=model, mean=mean, std=std, classes=classes, pairs=pairs, n_pairs=args.pairs,
                  seed=args.seed)
    with torch.random.fork_rng(devices=[]):
        if "mixes" in args.figures:
            written.append(viz.figure_mixes(x, labels, path=out / "mixes.png",
                                            methods=tuple(methods), layout=layout,
                                            **common))
        if "anatomy" in args.figures:
            written.append(viz.figure_sage_anatomy(x, labels, path=out / "sage_anatomy.png", prior=args.prior,
                                                   layout=layout, **common))
        if "rearrangement" in args.figures:
            written.append(viz.figure_rearrangement(x, labels, path=out / "rearrangement.png", prior=args.prior,
                                                    layout=viz.Layout(cell=args.cell, foot=40), **common))
    for pth in written:
        print(f"wrote {pth}")
    return 0
