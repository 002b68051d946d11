"""The evaluation options in their command-line form: the ``sagemix eval`` flags and their one parser.

:func:`add_eval_arguments` defines the flags (everything but the run), :func:`options_from_args` turns parsed
flags into :class:`sagemix.evaluate.EvalOptions`, and :func:`parse_options` does both for a list of strings
(``sagemix compare`` reads a comparison's ``eval.args`` with it). They live in the evaluation stage, not in
``commands/``, so that the library (``compare``) never imports the command line.

Example:
    >>> opts = parse_options(["--adversarial", "fgsm", "--limit", "500"])
    >>> opts.adversarial, opts.limit
    (('fgsm',), 500)
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Sequence

__all__ = ["add_eval_arguments", "options_from_args", "parse_options"]


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Add the evaluation flags (everything but the run) to ``p``."""
    p.add_argument("--dataset", help="dataset to evaluate on (default: the run's)")
    p.add_argument("--data-dir", dest="data_dir", help="dataset folder (default: the run's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=500, help="images per forward (default 500)")
    p.add_argument("--limit", type=int, default=None,
                   help="evaluate a fixed random subset of this many test images (quick checks)")
    p.add_argument("--out", default=None, help="output folder (default <run>/eval)")
    g = p.add_argument_group("corruptions")
    g.add_argument("--corruptions", nargs="?", const="", default=None, metavar="DIR",
                   help="evaluate on corrupted test images: the official CIFAR-10-C/100-C folder for cifar10/100 "
                        "(default: <data-dir>/CIFAR-10-C), else a folder where the corrupted set is generated and "
                        "cached (default <run>/eval/corrupted-<dataset>-seed<S>)")
    g.add_argument("--generate-corruptions", dest="generate_corruptions", action="store_true",
                   help="generate the corrupted test set (also for CIFAR) instead of reading an official release")
    g.add_argument("--extra-corruptions", dest="extra_corruptions", action="store_true",
                   help="also the 4 extra corruptions (speckle_noise gaussian_blur spatter saturate)")
    g.add_argument("--corruption-names", dest="corruption_names", nargs="+", default=None, metavar="NAME",
                   help="only these corruptions (default: the 15 benchmark ones)")
    g.add_argument("--corruption-seed", dest="corruption_seed", type=int, default=0,
                   help="seed of the generated corruptions (default 0)")
    g = p.add_argument_group("adversarial")
    g.add_argument("--adversarial", nargs="+", choices=["fgsm", "pgd"], default=None, metavar="ATTACK",
                   help="fgsm (the paper's) and/or pgd")
    g.add_argument("--eps", default="8/255", help="L-inf radius in 0-1 pixel space, a number or fraction (8/255)")
    p.add_argument("--train-fit", dest="train_fit", action="store_true",
                   help="also the eval-mode accuracy on the run's own (clean) training images: does it fit them?")
    g.add_argument("--extra-eps", dest="extra_eps", nargs="+", default=[], metavar="EPS",
                   help="also attack at these radii (e.g. 2/255, a radius that does not floor every model)")
    g.add_argument("--pgd-steps", dest="pgd_steps", type=int, default=10, help="PGD steps (default 10)")
    g.add_argument("--pgd-step-size", dest="pgd_step_size", default=None,
                   help="PGD step size (default 2.5*eps/steps), number or fraction")
    g.add_argument("--no-random-start", dest="random_start", action="store_false",
                   help="PGD starts from the clean image")
    g.add_argument("--attack-seed", dest="attack_seed", type=int, default=0, help="PGD random-start seed")
    g = p.add_argument_group("few-shot")
    g.add_argument("--fewshot", action="store_true", help="few-shot transfer of the frozen backbone")
    g.add_argument("--ways", type=int, default=5, help="classes per episode (default 5)")
    g.add_argument("--shots", type=int, nargs="+", default=[1, 5], help="support images per class (default 1 5)")
    g.add_argument("--queries", type=int, default=15, help="query images per class (default 15)")
    g.add_argument("--episodes", type=int, default=600, help="episodes per setting (default 600)")
    g.add_argument("--novel-classes", dest="novel_classes", default=None, metavar="SPEC",
                   help="novel class labels, e.g. 5-9 (default: the classes the backbone was not trained on; "
                        "for mini_imagenet every class of --novel-split)")
    g.add_argument("--novel-split", dest="novel_split", default="test", choices=["test", "val"],
                   help="mini_imagenet split of the novel classes (default test)")
    g.add_argument("--classifier", nargs="+", default=["logreg"], choices=["logreg", "proto", "cosine"],
                   help="classifier(s) on the features (default logreg)")
    g.add_argument("--fewshot-seed", dest="fewshot_seed", type=int, default=0, help="episode seed (default 0)")
    g.add_argument("--episodes-dir", dest="episodes_dir", default=None,
                   help="where episode files are kept and reused (default $SAGEMIX_CACHE/episodes or "
                        "~/.cache/sagemix/episodes)")


class _RaisingParser(argparse.ArgumentParser):
    """A parser whose errors raise ValueError instead of exiting (for flags read from a config)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise ValueError(f"sagemix eval arguments {self._argv!r}: {message}")


def options_from_args(args: argparse.Namespace) -> Any:
    """The :class:`sagemix.evaluate.EvalOptions` of parsed ``sagemix eval`` arguments."""
    from ..evaluate.stage import EvalOptions

    corruptions = args.corruptions if args.corruptions else args.corruptions == ""
    return EvalOptions(
        dataset=args.dataset, data_dir=args.data_dir, device=args.device, batch_size=args.batch_size,
        limit=args.limit, out=args.out, corruptions=corruptions, generate_corruptions=args.generate_corruptions,
        extra_corruptions=args.extra_corruptions,
        corruption_names=tuple(args.corruption_names) if args.corruption_names is not None else None,
        corruption_seed=args.corruption_seed, adversarial=tuple(args.adversarial or ()), eps=args.eps, extra_eps=tuple(args.extra_eps), train_fit=args.train_fit,
        pgd_steps=args.pgd_steps, pgd_step_size=args.pgd_step_size, random_start=args.random_start,
        attack_seed=args.attack_seed, fewshot=args.fewshot, ways=args.ways, shots=tuple(args.shots),
        queries=args.queries, episodes=args.episodes, novel_classes=args.novel_classes,
        novel_split=args.novel_split, classifier=tuple(args.classifier), fewshot_seed=args.fewshot_seed,
        episodes_dir=args.episodes_dir)


def parse_options(argv: Sequence[str], *, threads: int | None = None) -> Any:
    """Parse ``sagemix eval`` flags (without the run) into :class:`sagemix.evaluate.EvalOptions`.

    Args:
        argv: the flags, e.g. ``["--adversarial", "fgsm", "--limit", "500"]``.
        threads: torch CPU threads of the evaluation (not a flag of the command).

    Raises:
        ValueError: an unknown flag or a bad value, naming the arguments.
    """
    if isinstance(argv, str) or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv must be a list of strings (sagemix eval flags), got {argv!r}")
    p = _RaisingParser(prog="sagemix eval RUN", add_help=False)
    p._argv = list(argv)  # type: ignore[attr-defined]
    add_eval_arguments(p)
    opts = options_from_args(p.parse_args(list(argv)))
    if threads is not None:
        opts = dataclasses.replace(opts, threads=threads)
    return opts
