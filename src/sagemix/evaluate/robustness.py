"""Accuracy under common corruptions (CIFAR-10-C / CIFAR-100-C).

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019, https://arxiv.org/abs/1903.12261. The SAGE paper (Ma et al., BMVC 2022,
https://arxiv.org/abs/2211.00113) reports the mean accuracy over the 15 benchmark corruptions and 5
severities; this module computes that number (``mean_acc``) and its complement (``mean_error``).

The "mCE" of the ImageNet-C paper divides each corruption's summed error by a *baseline model's*
summed error. That needs a named baseline run, so :func:`evaluate_corruptions` never reports it;
:func:`relative_corruption_error` computes it from two explicit result dicts and records which run
is the baseline.

Example:
    >>> import torch
    >>> from sagemix.evaluate.robustness import evaluate_corruptions, results_to_rows
    >>> # res = evaluate_corruptions(model, "data/CIFAR-10-C", mean=(0.49, 0.48, 0.45),
    >>> #                            std=(0.25, 0.24, 0.26), device="cuda")
    >>> # res["mean_acc"], res["corruptions"]["fog"]["acc"]  # 5 severities
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..checks import check_mean_std, is_int
from ..utils import eval_mode
from .corruptions import ALL_CORRUPTIONS, CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, load_corrupted

__all__ = ["evaluate_corruptions", "results_to_rows", "relative_corruption_error"]


def _select(corruptions: Sequence[str] | None, include_extra: bool) -> list[str]:
    if corruptions is None:
        return list(CORRUPTIONS) + (list(EXTRA_CORRUPTIONS) if include_extra else [])
    if isinstance(corruptions, str):
        raise TypeError(f"corruptions must be a sequence of names, not a single string ({corruptions!r})")
    names = list(corruptions)
    bad = [n for n in names if n not in ALL_CORRUPTIONS]
    if bad:
        raise ValueError(f"corruptions must hold names from {', '.join(ALL_CORRUPTIONS)}; got {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"corruptions must not repeat a name, got {names}")
    if include_extra:
        names += [n for n in EXTRA_CORRUPTIONS if n not in names]
    return names


@torch.no_grad()
def _accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: torch.Tensor, std: torch.Tensor,
              device: torch.device, batch_size: int) -> float:
    correct = 0
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.array(images[i:i + batch_size])).to(device)  # copy: the file is memory-mapped
        x = x.permute(0, 3, 1, 2).float().div_(255.0).sub_(mean).div_(std)
        y = torch.from_numpy(np.array(labels[i:i + batch_size])).to(device)
        logits = model(x)
        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError("model must return (B, K) logits, got "
                             f"{getattr(logits, 'shape', type(logits).__name__)} for a batch of {x.shape[0]}")
        correct += int((logits.argmax(dim=1) == y).sum())
    return 100.0 * correct / len(images)


def evaluate_corruptions(model: nn.Module, c_dir: str | os.PathLike, *, mean: Sequence[float],
                         std: Sequence[float], device: str | torch.device = "cpu", batch_size: int = 500,
                         corruptions: Sequence[str] | None = None, include_extra: bool = False,
                         max_images: int | None = None) -> dict[str, Any]:
    """Top-1 accuracy of ``model`` on every corruption and severity of a CIFAR-C folder.

    The images are scaled to [0, 1] and normalised with ``mean``/``std`` (the training statistics),
    in NCHW float32 on ``device``. The model is put in eval mode for the evaluation and its mode is
    restored afterwards; it must already live on ``device``.

    Args:
        model: a classifier returning (B, K) logits.
        c_dir: folder in the CIFAR-10-C / CIFAR-100-C layout (see
            :func:`sagemix.evaluate.corruptions.load_corrupted`).
        mean: per-channel mean, 0-1 scale.
        std: per-channel std, 0-1 scale.
        device: where to run the model.
        batch_size: images per forward pass.
        corruptions: names to evaluate; default the 15 benchmark corruptions.
        include_extra: also evaluate the 4 extras (reported apart, never in ``mean_acc``).
        max_images: evaluate only the first ``max_images`` images of each severity (quick checks).

    Returns:
        A JSON-ready dict::

            {"corruptions": {name: {"acc": [5 floats], "error": [5 floats], "mean_acc": float,
                                    "mean_error": float, "benchmark": bool}},
             "mean_acc": float, "mean_error": float,      # over the benchmark corruptions evaluated
             "mean_over": [names],                        # which ones went into mean_acc
             "complete": bool,                            # True when mean_over is all 15
             "extra_mean_acc": float, "extra_mean_error": float,  # only when extras were evaluated
             "num_images": int, "severities": [1, 2, 3, 4, 5]}

        Accuracies and errors are percentages; error = 100 - accuracy.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    mean_t, std_t = check_mean_std(mean, std, channels=3)
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_images is not None and (not is_int(max_images) or max_images < 1):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}")
    names = _select(corruptions, include_extra)
    if not names:
        raise ValueError("corruptions must name at least one corruption, got an empty list")
    dev = torch.device(device)
    m = torch.tensor(mean_t, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(std_t, dtype=torch.float32, device=dev).view(1, 3, 1, 1)

    per: dict[str, dict[str, Any]] = {}
    num_images: int | None = None
    with eval_mode(model):
        for name in names:
            images, labels = load_corrupted(c_dir, name, mmap=True)
            n = images.shape[0] // 5
            take = n if max_images is None else min(n, max_images)
            if num_images is None:
                num_images = take
            elif take != num_images:
                raise ValueError(f"{name}.npy in {str(c_dir)!r} holds {n} images per severity, unlike the "
                                 f"{num_images} of the other corruptions")
            accs = []
            for sev in SEVERITIES:
                lo = (sev - 1) * n
                accs.append(_accuracy(model, images[lo:lo + take], labels[lo:lo + take], m, s, dev, batch_size))
            per[name] = {"acc": accs, "error": [100.0 - a for a in accs], "mean_acc": float(np.mean(accs)),
                         "mean_error": 100.0 - float(np.mean(accs)), "benchmark": name in CORRUPTIONS}

    bench = [nm for nm in names if nm in CORRUPTIONS]
    extra = [nm for nm in names if nm in EXTRA_CORRUPTIONS]
    result: dict[str, Any] = {"corruptions": per}
    if bench:
        result["mean_acc"] = float(np.mean([per[nm]["mean_acc"] for nm in bench]))
        result["mean_error"] = 100.0 - result["mean_acc"]
    result["mean_over"] = bench
    result["complete"] = set(bench) == set(CORRUPTIONS)
    if extra:
        result["extra_mean_acc"] = float(np.mean([per[nm]["mean_acc"] for nm in extra]))
        result["extra_mean_error"] = 100.0 - result["extra_mean_acc"]
    result["num_images"] = num_images
    result["severities"] = list(SEVERITIES)
    return result


def results_to_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten :func:`evaluate_corruptions` results into CSV rows.

    One row per (corruption, severity), then one ``severity="mean"`` row per corruption, then the
    overall rows (``corruption="mean"`` over the benchmark corruptions, ``"extra_mean"`` over the
    extras). Columns: ``corruption, severity, acc, error, benchmark``.
    """
    if not isinstance(results, dict) or "corruptions" not in results:
        raise ValueError("results must be the dict returned by evaluate_corruptions (with a 'corruptions' key)")
    rows: list[dict[str, Any]] = []
    for name, r in results["corruptions"].items():
        for sev, (acc, err) in enumerate(zip(r["acc"], r["error"]), start=1):
            rows.append({"corruption": name, "severity": sev, "acc": acc, "error": err, "benchmark": r["benchmark"]})
        rows.append({"corruption": name, "severity": "mean", "acc": r["mean_acc"], "error": r["mean_error"],
                     "benchmark": r["benchmark"]})
    if "mean_acc" in results:
        rows.append({"corruption": "mean", "severity": "mean", "acc": results["mean_acc"],
                     "error": results["mean_error"], "benchmark": True})
    if "extra_mean_acc" in results:
        rows.append({"corruption": "extra_mean", "severity": "mean", "acc": results["extra_mean_acc"],
                     "error": results["extra_mean_error"], "benchmark": False})
    return rows


def relative_corruption_error(results: dict[str, Any], baseline: dict[str, Any], *,
                              baseline_name: str) -> dict[str, Any]:
    """Corruption errors relative to an explicit baseline run (the ImageNet-C paper's CE / mCE).

    ``CE_c = 100 * Σ_s error(c, s) / Σ_s baseline_error(c, s)``; the mean is over the benchmark
    corruptions present in both. The result names the baseline, because the number means nothing
    without it.

    Args:
        results: :func:`evaluate_corruptions` output of the model.
        baseline: :func:`evaluate_corruptions` output of the baseline model.
        baseline_name: which run the baseline is (e.g. ``"runs/vanilla_preactresnet18_seed0"``).

    Returns:
        ``{"baseline": baseline_name, "relative_error": {name: CE}, "mean_relative_error": float,
        "mean_over": [names]}``.
    """
    if not isinstance(baseline_name, str) or not baseline_name:
        raise ValueError(f"baseline_name must name the baseline run, got {baseline_name!r}")
    for arg, d in (("results", results), ("baseline", baseline)):
        if not isinstance(d, dict) or "corruptions" not in d:
            raise ValueError(f"{arg} must be a dict returned by evaluate_corruptions")
    common = [nm for nm in CORRUPTIONS if nm in results["corruptions"] and nm in baseline["corruptions"]]
    if not common:
        raise ValueError("results and baseline share no benchmark corruption")
    ce = {}
    for nm in common:
        base = float(sum(baseline["corruptions"][nm]["error"]))
        if base <= 0:
            raise ValueError(f"baseline error on {nm} is 0: the relative error is undefined")
        ce[nm] = 100.0 * float(sum(results["corruptions"][nm]["error"])) / base
    return {"baseline": baseline_name, "relative_error": ce, "mean_relative_error": float(np.mean(list(ce.values()))),
            "mean_over": common}
