"""Why SAGE loses under small FGSM: the input-gradient size and the logit margin of each trained model.

Usage: python results/evidence/scripts/input_gradients.py RUNS_DIR [--seeds 5 6 7 8 9] [--limit 1000]

For every finished run with a checkpoint under RUNS_DIR (the seeds given), on the same fixed subset of test
images that `sagemix eval --limit` uses: the mean L1 norm of the gradient of the cross-entropy with respect to
the pixels (0-1 scale; FGSM's first-order loss increase at radius eps is eps times this norm), the mean margin
between the true class's logit and the largest other logit, and the mean test loss. Prints one row per method:
mean ± sd over seeds. Exploratory: read after the comparison, not a pre-registered endpoint.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from sagemix import run_folder as rf
from sagemix.data import load_dataset, random_subset
from sagemix.evaluate.accuracy import normalize
from sagemix.report.runs import collect_runs


def _test_set(config: dict, limit: int, cache: dict) -> Any:
    """The run's fixed evaluation subset, read once per distinct dataset setting (the runs of a comparison share it)."""
    key = json.dumps([config["dataset"], config.get("data_dir"), config.get("image_size"), config.get("data_seed", 0),
                      config.get("dataset_kwargs")], sort_keys=True, default=str)
    if key not in cache:
        cache[key] = random_subset(load_dataset(config["dataset"], root=config.get("data_dir"), train=False,
                                                image_size=config.get("image_size"),
                                                seed=int(config.get("data_seed", 0)),
                                                **dict(config.get("dataset_kwargs") or {})), limit)
    return cache[key]


def measure(run: Path, limit: int, cache: dict) -> dict[str, float]:
    """The input-gradient L1 norm, the logit margin and the loss of one run's model, means over the images."""
    model, config = rf.load_model(run)
    test = _test_set(config, limit, cache)
    x = (test.images.float() / 255 if not test.images.is_floating_point() else test.images).requires_grad_(True)
    logits = model(normalize(x, config["mean"], config["std"]))
    loss = F.cross_entropy(logits, test.labels, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    true = logits.gather(1, test.labels[:, None])[:, 0]
    other = logits.scatter(1, test.labels[:, None], float("-inf")).amax(1)
    return {"grad_l1": float(grad.abs().flatten(1).sum(1).mean()), "margin": float((true - other).mean().detach()),
            "loss": float(loss.mean().detach())}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("runs", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7, 8, 9])
    ap.add_argument("--limit", type=int, default=1000)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    by_method: dict[str, list[dict[str, float]]] = {}
    cache: dict = {}
    for r in collect_runs([args.runs]):  # the report's loader: variants keep their names (sage_exhaustive, ...)
        if r.finished and r.seed in args.seeds and (r.path / rf.CHECKPOINT_FILE).is_file():
            by_method.setdefault(r.method, []).append(measure(r.path, args.limit, cache))
    if not by_method:
        print(f"no checkpoints of seeds {args.seeds} under {args.runs}", file=sys.stderr)
        return 2
    keys = ("grad_l1", "margin", "loss")
    print("| method | runs | input-gradient L1 (0-1 pixels) | logit margin | test loss |\n|---|---:|---:|---:|---:|")
    for m, rows in sorted(by_method.items(), key=lambda kv: (kv[0] != "vanilla", kv[0])):
        cells = [f"{statistics.fmean(r[k] for r in rows):.3f} ± {statistics.stdev(r[k] for r in rows):.3f}"
                 if len(rows) > 1 else f"{rows[0][k]:.3f}" for k in keys]
        print(f"| {m} | {len(rows)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
