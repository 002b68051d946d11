"""Pairwise disagreement of runs' predictions on the big test set, and the seed sd it implies.

If the seeds' errors were independent across test images, Var(acc) = mean_x p_x (1 - p_x) / N = d / (2N),
with d the expected disagreement rate of two seeds; this is the test-set part of the seed-to-seed sd.
Usage: python disagree.py RUN_DIR [RUN_DIR ...]
"""
import itertools
import math
import sys
from pathlib import Path

import torch

preds = {Path(r).name: torch.load(Path(r) / "bigeval_preds.pt") for r in sys.argv[1:]}
ds = [float((preds[a] != preds[b]).float().mean()) for a, b in itertools.combinations(preds, 2)]
d = sum(ds) / len(ds)
n = len(next(iter(preds.values())))
print(f"pairs {len(ds)} mean disagreement {100 * d:.2f}% on N={n}")
for size in (1000, 2000, 5000, 10000, n):
    print(f"  implied test-set part of the seed sd at N={size}: {100 * math.sqrt(d / (2 * size)):.3f} points")
