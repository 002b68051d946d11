"""Evaluation of trained models: clean accuracy, corruptions, adversarial robustness, few-shot transfer.

The evaluations of SAGE (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements",
BMVC 2022, https://arxiv.org/abs/2211.00113) and the methods it is compared with:

- :func:`accuracy` (``evaluate/accuracy.py``): clean top-1, in percent;
- ``sagemix.evaluate.corruptions`` / ``sagemix.evaluate.robustness``: CIFAR-C corruptions (generated
  or the official release) and the accuracy under them;
- :func:`adversarial_accuracy`, :func:`fgsm`, :func:`pgd` (``evaluate/adversarial.py``): accuracy
  under FGSM (the paper's, eps = 8/255 in pixel space) or PGD;
- :func:`evaluate_fewshot` and its pieces (``evaluate/fewshot.py``): N-way K-shot episodes on novel
  classes with a frozen backbone's penultimate features.

The evaluation stage, :func:`evaluate_run` with :class:`EvalOptions` (``evaluate/stage.py``), runs
them on a run folder and writes the results to ``<run>/eval/``; ``sagemix eval`` and ``sagemix
compare`` call it. Nothing here imports :mod:`sagemix.train` (checkpoints are read through
:mod:`sagemix.run_folder`).
The corruption modules need the ``corruptions`` extra and are imported on use.
"""
from __future__ import annotations

from .accuracy import accuracy, evaluate_accuracy
from .adversarial import adversarial_accuracy, fgsm, parse_eps, pgd
from .fewshot import (Episodes, classify_episodes, evaluate_fewshot, extract_features, mean_ci95,
                      sample_episodes)
from .stage import EvalOptions, evaluate_run

__all__ = ["EvalOptions", "evaluate_run", "accuracy", "evaluate_accuracy", "adversarial_accuracy", "fgsm", "pgd", "parse_eps", "Episodes", "sample_episodes",
           "extract_features", "classify_episodes", "mean_ci95", "evaluate_fewshot"]
