"""Clean accuracy of a run trained on a streamed image dataset (``stream`` config key).

A run whose dataset streamed from disk (ImageNet, Tiny-ImageNet, a large image folder) is evaluated
without decoding its test split into memory: :func:`open_streamed_test` opens the split for
streaming with the evaluation transform (resize + centre crop) and the run's mean/std, and
:func:`streamed_accuracy` scores it batch by batch through
:func:`sagemix.data.make_any_loader` and :func:`sagemix.evaluate.accuracy.evaluate_accuracy`.

Only clean accuracy is supported: CIFAR-C-style corruptions, adversarial attacks and few-shot
episodes work on in-memory test sets (at 224 px they are out of scope); :func:`check_streamed_options`
says so before any work is done.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch
from torch import nn

__all__ = ["open_streamed_test", "streamed_accuracy", "check_streamed_options"]


def check_streamed_options(options: Any) -> None:
    """Raise a ValueError when ``options`` (an ``EvalOptions``) asks for more than clean accuracy."""
    asked = [name for name, on in (("corruptions", options.evaluates_corruptions),
                                   ("adversarial", bool(options.adversarial)), ("fewshot", bool(options.fewshot)))
             if on]
    if asked:
        raise ValueError(f"the run's dataset streams from disk; only clean accuracy is evaluated for streamed "
                         f"datasets, but {asked} were asked for (drop those options)")


def open_streamed_test(dataset: str, data_dir: str | os.PathLike | None, config: Mapping[str, Any], *,
                       mean: Sequence[float] | None, std: Sequence[float] | None) -> Any:
    """The run's test split as a ``StreamingImageFolder`` (evaluation transform, the run's mean/std).

    Args:
        dataset: the dataset name (``imagefolder``, ``imagenet``, ``tiny_imagenet``).
        data_dir: the dataset folder.
        config: the run's config (``image_size``, ``dataset_kwargs``; empty for another dataset).
        mean, std: the normalisation of the run (None: estimated from a seeded training sample).
    """
    from ..data import load_image_data

    if data_dir is None:
        raise ValueError(f"the streamed dataset {dataset!r} needs its folder: pass --data-dir")
    kwargs = {k: v for k, v in dict(config.get("dataset_kwargs") or {}).items() if k not in ("mean", "std")}
    if mean is not None and std is not None:
        kwargs.update(mean=tuple(mean), std=tuple(std))
    image_size = config.get("image_size")
    return load_image_data(dataset, root=data_dir, train=False, image_size=image_size, stream=True,
                           seed=int(config.get("data_seed", 0)), **kwargs)


def streamed_accuracy(model: nn.Module, test: Any, *, device: torch.device, batch_size: int = 500,
                      workers: int | None = None) -> float:
    """Clean top-1 accuracy (percent) of ``model`` on a streaming test split.

    Args:
        model: the classifier (put in eval mode for the pass and restored).
        test: a ``StreamingImageFolder`` opened with ``train=False``.
        device: where the batches go.
        batch_size: images per forward.
        workers: decoding worker processes (None: up to 4, leaving one CPU core free).
    """
    from ..data import make_any_loader
    from .accuracy import evaluate_accuracy

    if workers is None:
        workers = min(4, max(0, (os.cpu_count() or 1) - 1))
    loader = make_any_loader(test, batch_size=batch_size, train=False, device=device, workers=workers)
    acc, _ = evaluate_accuracy(model, loader)
    return acc
