"""``sagemix eval``: evaluate a trained run: clean accuracy, corruptions, adversarial, few-shot.

The evaluations of SAGE (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements",
BMVC 2022, https://arxiv.org/abs/2211.00113): clean top-1 accuracy (always), accuracy under the
CIFAR-C corruptions (the official release for CIFAR, or generated with the same operations for any
32x32 dataset), under FGSM at eps = 8/255 (PGD as an option), and few-shot transfer of the frozen
backbone to novel classes. Results go to ``<run>/eval/`` as JSON and CSV (atomic writes), and a
table is printed.

This module only parses the arguments into :class:`sagemix.evaluate.EvalOptions` (with
:mod:`sagemix.evaluate.options`, the one parser of the flags, also used by ``sagemix compare`` to read a
comparison's ``eval.args``) and calls :func:`sagemix.evaluate.evaluate_run`, the evaluation stage.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..evaluate.options import add_eval_arguments, options_from_args, parse_options
from ._common import add_command, add_threads_argument, auto_threads

__all__ = ["add_parser", "add_eval_arguments", "options_from_args", "parse_options", "run"]

DESCRIPTION = """\
Evaluate a trained run (or checkpoint): clean test accuracy always; optionally accuracy under
CIFAR-C corruptions, under FGSM/PGD, and few-shot transfer to novel classes. Results are written to
<run>/eval/ and printed as a table.
"""

EXAMPLES = """\
examples:
  sagemix eval runs/cifar10-preactresnet18-sage-s0 --corruptions ~/data/CIFAR-10-C --adversarial fgsm
  sagemix eval runs/off-sage --corruptions                   # offline: generates the -C set (cached)
  sagemix eval runs/off-sage --adversarial pgd --eps 8/255 --pgd-steps 20
  sagemix train offline --set dataset_kwargs.classes=[0,1,2,3,4] --out runs/off-base-sage --method sage
  sagemix eval runs/off-base-sage --fewshot --novel-classes 5-9 --shots 1 5 --classifier logreg proto
  sagemix eval runs/mini-sage --fewshot --data-dir ~/data/mini-imagenet     # novel = test.csv classes

Writes <run>/eval/clean.json|csv, corruptions.json|csv, adversarial.json|csv, fewshot.json|csv and
summary.json|csv (the printed table). Few-shot episodes are kept as JSON files (--episodes-dir) so
every method is judged on the same tasks.
"""

def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval``; returns its parser."""
    p = add_command(subparsers, "eval", help="evaluate a run: clean, corruptions, adversarial (FGSM/PGD), few-shot",
                    description=DESCRIPTION, examples=EXAMPLES)
    p.add_argument("run", metavar="CHECKPOINT_OR_RUN_DIR", help="a run folder (with checkpoint.pt) or a checkpoint file")
    add_eval_arguments(p)
    add_threads_argument(p)
    return p


def _fmt_table(rows: list[dict[str, Any]]) -> str:
    head = ["evaluation", "setting", "accuracy (%)"]
    body = [[r["evaluation"], r["setting"],
             f"{r['acc']:.2f}" + (f" ± {r['ci95']:.2f}" if r.get("ci95") is not None else "")] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Evaluate the run with the parsed options, print the table; returns the exit status."""
    from ..evaluate.stage import evaluate_run

    import dataclasses

    threads = getattr(args, "threads", "auto")
    threads = auto_threads() if threads == "auto" else threads
    options = dataclasses.replace(options_from_args(args), threads=threads or None)
    result = evaluate_run(args.run, options)
    print(_fmt_table(result["rows"]))
    print(f"results in {result['out_dir']}")
    return 0
