"""Evaluate finished runs' checkpoints: eval-mode accuracy on their training subset and on a large test split.

Usage: OMP_NUM_THREADS=1 python bigeval.py N_TEST RUN_DIR [RUN_DIR ...]   -> RUN_DIR/bigeval.json
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from sagemix.data import load_dataset
from sagemix.evaluate.accuracy import accuracy
from sagemix.train.checkpoint import load_model
try:
    from sagemix.train.setup import _random_subset, derive_seed
except ImportError:  # older layout
    from sagemix.train.trainer import _random_subset, derive_seed


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, mean: list, std: list) -> torch.Tensor:
    """Predicted labels of uint8 (N, 3, H, W) images, the model in eval mode."""
    model.eval()
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    out = [model((images[i:i + 500].float() / 255 - m) / s).argmax(1) for i in range(0, len(images), 500)]
    return torch.cat(out)


def main() -> None:
    torch.set_num_threads(1)
    n_test = int(sys.argv[1])
    for run in sys.argv[2:]:
        t0 = time.process_time()
        model, cfg = load_model(run, map_location="cpu")
        kw = dict(cfg.get("dataset_kwargs") or {})
        kw.pop("n_test", None)
        train = load_dataset("offline", train=True, seed=cfg["data_seed"], **kw)
        train = _random_subset(train, cfg.get("train_limit"), derive_seed(cfg["data_seed"], "train_limit"))
        test = load_dataset("offline", train=False, seed=cfg["data_seed"], n_test=n_test, **kw)
        t1 = time.process_time()
        out = {"epoch": cfg.get("epoch"), "n_train": len(train.labels), "n_test": len(test.labels),
               "train_acc_eval_mode": accuracy(model, train.images, train.labels, mean=cfg["mean"], std=cfg["std"]),
               "test_acc_big": accuracy(model, test.images, test.labels, mean=cfg["mean"], std=cfg["std"]),
               "eval_cpu_s": time.process_time() - t1, "load_cpu_s": t1 - t0}
        preds = predict(model, test.images, cfg["mean"], cfg["std"])
        out["test_acc_big_check"] = 100.0 * float((preds == test.labels).float().mean())
        torch.save(preds, Path(run) / "bigeval_preds.pt")
        (Path(run) / "bigeval.json").write_text(json.dumps(out, indent=1))
        print(run, out)


if __name__ == "__main__":
    main()
