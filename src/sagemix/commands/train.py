"""``sagemix train``: train a model with a mixing method from a recipe, with overrides.

Runs the CIFAR protocol of SAGE (Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) or any
recipe (``sagemix list recipes``); ``torchrun --nproc_per_node N -m sagemix train ...`` trains with
DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ._common import (add_command, add_threads_argument, auto_threads, check_mixer_options, check_out_dir,
                      progress_enabled, usable_cpus)

DESCRIPTION = """\
Train a model with a mixing method (SAGE, Mixup, CutMix, ...) following a recipe (`sagemix list
recipes`) or the defaults (the shared CIFAR protocol), evaluating the clean test accuracy after
every epoch.
"""

EXAMPLES = """\
examples:
  sagemix train cifar100_preactresnet18_sage --data-dir ~/data/cifar
  sagemix train cifar100_wrn16_8 --method cutmix --seed 1          # shared protocol, any method
  sagemix train offline --method sage --epochs 3 --out runs/off-sage   # CPU, no download
  sagemix train offline --set lr=0.1 --set method_kwargs.upper_lambda=0.5 --set amp=bf16
  sagemix train --resume --out runs/off-sage --epochs 6               # continue (or extend) a run
  sagemix train imagefolder --data-dir ~/photos --method sage          # your own images: one folder per class
  torchrun --nproc_per_node 4 -m sagemix train cifar10_preactresnet18_sage --amp bf16

Settings: recipe < --set key=value < the flags above. The run folder gets config.json,
metrics.jsonl, metrics.csv, summary.json and checkpoint.pt (written every epoch; Ctrl-C saves the
exact position, --resume continues it). Keys: see `sagemix train --show-config`.

Your own images: the imagefolder recipe resizes them to 64x64 and trains PreActResNet18 for 60
epochs (batch 32, lr 0.01), holding out 20% of each class as the test split; change any of it with
the flags or --set (e.g. --set image_size=96, --model smallnet on a CPU).
Threads: --threads auto (the default) uses 1 torch thread when the machine is busy (load average +
1 > CPUs), else torch's default; the command sets OMP_WAIT_POLICY=PASSIVE unless you set it. Times
(epoch_time_s, img/s) are wall time: runs that share a machine are slower by their share of it.
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train``; returns its parser."""
    p = add_command(subparsers, "train", description=DESCRIPTION, examples=EXAMPLES,
                    help="train a model with a mixing method (recipes, overrides, resume, torchrun DDP)")
    p.add_argument("recipe", nargs="?", default=None,
                   help="a bundled recipe name or a JSON file (default: the built-in defaults, or the run "
                        "folder's config.json with --resume)")
    g = p.add_argument_group("common settings (each overrides the recipe)")
    g.add_argument("--method", help="mixing method (`sagemix list methods`)")
    g.add_argument("--model", help="model (`sagemix list models`)")
    g.add_argument("--dataset", help="dataset (`sagemix list datasets`)")
    g.add_argument("--data-dir", dest="data_dir", help="dataset folder")
    g.add_argument("--download", action="store_true", default=None, help="download the dataset if missing")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", dest="batch_size", type=int, help="images per step (per process)")
    g.add_argument("--lr", type=float, help="initial learning rate")
    g.add_argument("--seed", type=int)
    g.add_argument("--out", help="run folder (default runs/<dataset>-<model>-<method>-s<seed>)")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--amp", choices=["none", "bf16", "fp16"], help="mixed precision (fp16 needs CUDA)")
    g.add_argument("--channels-last", dest="channels_last", action="store_true", default=None)
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress bar (default: when standard error is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (one line per epoch still)")
    add_threads_argument(g)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config key; values are JSON when they parse (--set milestones=[50,75], "
                        "--set method_kwargs.update_ratio=0.5); repeatable")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over even if the run folder has a checkpoint")
    p.add_argument("--show-config", dest="show_config", action="store_true",
                   help="print the resolved config as JSON and exit")
    return p


_FLAG_KEYS = ("method", "model", "dataset", "data_dir", "download", "epochs", "batch_size", "lr", "seed", "out",
              "device", "amp", "channels_last", "compile", "progress")


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`TrainConfig` of the parsed arguments.

    With ``--resume --out DIR`` and no recipe, the run's own ``config.json`` is the base (or, when
    that file is lost, the copy inside its checkpoint).

    Raises:
        FileNotFoundError: ``--resume`` of a folder that holds no run.
        ValueError: a damaged ``config.json``, an unknown recipe, a setting out of range.
    """
    from ..train.config import TrainConfig, apply_overrides, load_recipe, parse_overrides

    overrides = parse_overrides(args.overrides)
    overrides.update({k: getattr(args, k) for k in _FLAG_KEYS if getattr(args, k, None) is not None})
    threads = getattr(args, "threads", "auto")
    resuming = args.recipe is None and args.resume and args.out
    if threads != "auto":
        overrides["threads"] = threads
    elif "threads" not in overrides and not resuming:
        # auto: 1 thread on a busy machine, unless --set threads=... chose; a resumed run keeps its own
        # thread count (it changes the arithmetic, and so the bitwise equality with an uninterrupted run)
        overrides["threads"] = auto_threads()
    if "progress" not in overrides:
        overrides["progress"] = progress_enabled(None)
    if resuming:
        # Resuming a run folder: its own config (config.json, else the checkpoint's copy), minus what
        # the run added to it.
        return _resumed_config(Path(args.out), overrides)
    base = load_recipe(args.recipe) if args.recipe is not None else {}
    return TrainConfig.from_dict(apply_overrides(base, overrides))


def _resumed_config(folder: Path, overrides: dict[str, Any]) -> Any:
    """The config of the run in ``folder`` with ``overrides``; one-line errors naming the file."""
    from ..run_folder import RunFolder, load_checkpoint, read_json
    from ..train.config import RUN_INFO_KEYS, TrainConfig, apply_overrides

    run = RunFolder(folder)
    _check_resumable(folder)
    if run.config_path.is_file():
        source = run.config_path
        saved = read_json(source)  # a ValueError naming the file when it is not JSON
    else:  # config.json lost: the checkpoint keeps a copy (written with it), so the run can go on
        source = run.checkpoint_path
        saved = load_checkpoint(source)["config"]
        print(f"sagemix train: warning: {str(run.config_path)!r} is missing; resuming with the copy of the run's "
              f"config saved in {str(source)!r} (config.json is written again)", file=sys.stderr)
    if not isinstance(saved, dict):
        raise ValueError(f"{str(source)!r} must hold a JSON object of settings, got {type(saved).__name__}; "
                         "restore it, or resume with the recipe and settings of the run")
    base = {k: v for k, v in saved.items() if k not in RUN_INFO_KEYS}
    try:
        return TrainConfig.from_dict(apply_overrides(base, overrides))
    except (TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"the config of the run in {str(source)!r} is not valid: {e}") from None


def _check_resumable(folder: Path) -> None:
    """Refuse ``--resume`` of a folder that holds no run to resume."""
    from ..run_folder import CHECKPOINT_FILE, CONFIG_FILE

    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(f"no run to resume at {str(folder)}: it is a file, not a run folder")
    if not folder.is_dir():
        raise FileNotFoundError(f"no run to resume at {str(folder)}: the folder does not exist "
                                "(start a new run without --resume)")
    config = folder / CONFIG_FILE
    if config.exists() and not config.is_file():  # the run writes it again: a folder there would stop it later
        raise ValueError(f"{str(config)!r} is a folder, not the run's config file; move it away and resume "
                         "(the checkpoint keeps a copy of the config)")
    if not (folder / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"no run to resume at {str(folder)}: it holds no {CHECKPOINT_FILE} "
                                "(start a new run there without --resume, or with --overwrite)")


def run(args: argparse.Namespace) -> int:
    """Run ``sagemix train``; 0 on success, 1 when the loss diverged."""
    config = build_config(args)
    check_mixer_options(config.method, config.mixer_kwargs(), "--set method_kwargs", num_classes=10)
    if args.show_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    from ..train.trainer import TrainingDiverged, train

    if args.resume:
        _check_resumable(config.run_dir())
    elif os.environ.get("RANK", "0") == "0":
        check_out_dir(config.run_dir())  # a file or an unwritable place: one line before the data load
    try:
        summary = train(config, resume=args.resume, overwrite=args.overwrite)
    except TrainingDiverged as e:
        print(f"sagemix train: error: {e}", file=sys.stderr)
        return 1
    if os.environ.get("RANK", "0") == "0" and auto_threads() == 1 and usable_cpus() > 1:
        print("note: the machine was busy; epoch times and img/s are wall time and include the wait for the "
              "CPU, so compare costs only with runs measured side by side (or by CPU time)", file=sys.stderr)
    if summary.get("best_acc") is not None and os.environ.get("RANK", "0") == "0":
        print(json.dumps({k: summary[k] for k in ("method", "model", "dataset", "seed", "epochs_done", "best_acc",
                                                   "final_acc", "median_last10_acc", "run_dir")}))
    return 0
