"""Comparison runs: a matrix of methods x seeds (x models) trained with one recipe, evaluated, reported.

This is how the SAGE paper ("Saliency-Guided Mixup with Optimal Rearrangements", Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) compares methods: every method trained with the same recipe and
budget on the same model, over several seeds, then tabulated (:mod:`sagemix.report`).

A comparison is described by a JSON file (see ``configs/offline_comparison.json``)::

    {
      "description": "...",
      "recipe": "offline",                      # a bundled recipe name or a recipe JSON file
      "out": "runs/offline_comparison",         # runs go to <out>/<model>-<method>-s<seed>
      "methods": ["vanilla", "mixup", "sage"],
      "seeds": [0, 1, 2],
      "models": ["smallnet"],                   # optional (default: the recipe's model)
      "overrides": {"epochs": 8},               # applied to every run (dotted keys allowed)
      "method_overrides": {"sage": {"method_kwargs.rand_pos": 0.01}},   # per method (or variant)
      "variants": {"sage_exhaustive": {"method": "sage", "method_kwargs.rand_pos": null}},
                                                # a registry method with other settings under its own
                                                # name: list the name in "methods"; its runs go to
                                                # <out>/<model>-<name>-s<seed> and the report shows it
      "eval": {"enabled": true, "options": {"adversarial": ["fgsm"], "limit": 1000}},
                                                # the fields of sagemix.evaluate.EvalOptions ({seed}
                                                # {method} {model} {out} in strings are filled in); the
                                                # former "args": ["--adversarial", "fgsm"] (flags of
                                                # `sagemix eval RUN`) still load: read once into options,
                                                # "options" applied after them
      "report": {"out": "runs/offline_comparison/report", "plots": true,
                 "clean_metric": "final_acc", "ci": "t", "references": ["vanilla", "sage"]},
      "estimate": {...}                         # optional free-form notes (how the budget was sized)
    }

The matrix is resumable: a run whose ``summary.json`` says ``finished: true`` is not trained again,
a run with a checkpoint but no finished summary is resumed (``resume=True``), and an evaluation is
skipped when every result file its options ask for exists (:meth:`EvalOptions.expected_files`).
Training runs in this process through :func:`sagemix.train.train`, and so does evaluation, through
:func:`sagemix.evaluate.evaluate_run`, with an :class:`sagemix.evaluate.EvalOptions` built from the
``eval.options`` values (the options that ``sagemix train`` checks, the mixer's, are checked here by the
same function before any work). Runs are ordered seed by seed, so a
partial comparison has every method at the first seeds.

With ``jobs > 1`` (``sagemix compare --jobs 2``) that many runs train and evaluate at once, each in its own
process (a ``spawn`` pool, each run with the ``threads`` of its config), writing the same run folders, so
the result and the resumability are the same as with one job.

The package: :mod:`.config` reads and validates the JSON, :mod:`.plan` lays out the runs and their
evaluation options, :mod:`.run` trains, evaluates and reports.
"""
from __future__ import annotations

from .config import ComparisonConfig, load_comparison
from .plan import RunSpec, check_plan, eval_options_for, expected_eval_files, plan_runs, run_state
from .run import run_comparison

__all__ = ["ComparisonConfig", "RunSpec", "load_comparison", "plan_runs", "run_state", "expected_eval_files",
           "eval_options_for", "check_plan", "run_comparison"]
