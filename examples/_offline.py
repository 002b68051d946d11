"""The examples' data: the offline dataset (no download) as normalised float tensors, and their shared flags.

Needs ``pip install "sagemix[offline]"``.
"""
from __future__ import annotations

import argparse
import importlib
from types import ModuleType

import torch
from torch.utils.data import TensorDataset

from sagemix.data import load_dataset
from sagemix.data.loader import Normalizer


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or exit with one line naming the sagemix extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise SystemExit(f'this example needs {module} ({e}): pip install "sagemix[{extra}]"') from None


def parser(description: str) -> argparse.ArgumentParser:
    """The flags every example takes: --steps, --method, --batch-size, --n-train, --seed."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--steps", type=int, default=200, help="optimizer steps to run (default 200)")
    p.add_argument("--method", default="sage", help="any sagemix method (sagemix list methods); default sage")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=2000, help="offline training images (generated once, cached)")
    p.add_argument("--seed", type=int, default=0)
    return p


def offline_tensors(n_train: int, train: bool) -> tuple[TensorDataset, int]:
    """A split of the offline dataset (32x32, 10 classes) as a TensorDataset of normalised float32 images and
    int64 labels, and the number of classes; the test split holds n_train // 4 images."""
    data = load_dataset("offline", train=train, n_train=n_train, n_test=max(n_train // 4, 1))
    images = Normalizer(data.mean, data.std, torch.device("cpu"))(data.images)
    return TensorDataset(images, data.labels), data.num_classes


@torch.no_grad()
def accuracy(model: torch.nn.Module, dataset: TensorDataset, batch_size: int = 256) -> float:
    """Top-1 accuracy (%) of ``model`` in eval mode on ``dataset``."""
    model.eval()
    correct = sum(int((model(x).argmax(1) == y).sum())
                  for x, y in torch.utils.data.DataLoader(dataset, batch_size=batch_size))
    model.train()
    return 100.0 * correct / len(dataset)
