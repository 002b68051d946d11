"""Paper-style tables and plots from run folders: accuracy, robustness, few-shot and cost.

The tables follow the evaluation of SAGE ("Saliency-Guided Mixup with Optimal Rearrangements",
Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113) and of Co-Mixup (Kim et al., ICLR 2021,
https://arxiv.org/abs/2102.03065), whose protocol SAGE follows: clean top-1 accuracy (best, final and
median of the last 10 epochs, mean ± sample standard deviation over seeds) per model and method;
accuracy under each corruption and their mean; FGSM accuracy; few-shot accuracy with 95% confidence
intervals; and the training cost per epoch and per step relative to vanilla training of the same model.

Every number comes from a file of a run folder (``summary.json``, ``metrics.jsonl``, ``eval/*.json``,
see docs/ARCHITECTURE.md "Runs"); a number that is missing (no evaluation run, no vanilla run to
compare with) is printed as "—", never filled in.

Over seeds, each method is compared with vanilla and with SAGE run by run (the same seed: the same data
order and initialisation): the mean paired difference and its 95% confidence interval, marked ``*`` when
it excludes 0 (:mod:`.stats`, :mod:`.paired`); every run's own numbers are listed beside the means.

The package: :mod:`.runs` reads run folders (through :mod:`sagemix.run_folder`), :mod:`.tables`
computes the numbers and tables, :mod:`.stats` the paired statistics, :mod:`.paired` the seed-paired
tables, :mod:`.plots` draws, :mod:`.write` writes the report.

Example:
    >>> from sagemix.report import collect_runs, write_report
    >>> runs = collect_runs(["runs/offline"])                    # doctest: +SKIP
    >>> write_report(runs, "runs/offline/report")                # doctest: +SKIP
"""
from __future__ import annotations

from .paired import CLEAN_KEYS, REFERENCES, gap_table, paired_table, paired_tables, runs_table
from .plots import plot_accuracy_vs_cost, plot_learning_curves, plot_train_test_gap
from .stats import PairedDifference, paired_difference, t_quantile
from .runs import Run, collect_runs, load_run
from .tables import (DASH, METHOD_ORDER, Table, adversarial_numbers, adversarial_table, build_tables, clean_numbers,
                     clean_table, corruption_numbers, corruption_table, cost_numbers, cost_table, fewshot_numbers,
                     fewshot_table, mean_std)
from .write import write_report

__all__ = ["Run", "load_run", "collect_runs", "Table", "clean_table", "corruption_table", "adversarial_table",
           "fewshot_table", "cost_table", "build_tables", "write_report", "mean_std", "METHOD_ORDER", "DASH",
           "clean_numbers", "corruption_numbers", "adversarial_numbers", "fewshot_numbers", "cost_numbers",
           "plot_accuracy_vs_cost", "plot_learning_curves", "plot_train_test_gap", "paired_table", "paired_tables",
           "runs_table", "gap_table", "CLEAN_KEYS", "REFERENCES", "PairedDifference", "paired_difference", "t_quantile"]
