"""Clean top-1 accuracy, and the batching helpers the other evaluations share.

The evaluations of the SAGE paper (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal
Rearrangements", BMVC 2022, https://arxiv.org/abs/2211.00113) start from uint8 images held in
memory (the test split, its corrupted copies, the few-shot novel classes). This module turns such
images into normalised float batches on a device and measures the clean top-1 accuracy, in percent.
:func:`accuracy_sums` is the one routine that counts correct predictions in the project: the
trainer's per-epoch ``test_acc`` (its sums all-reduced over the ranks) and, through
:func:`evaluate_accuracy`, ``sagemix eval``'s clean accuracy both come from it.

Example:
    >>> import torch
    >>> from sagemix.evaluate.accuracy import accuracy
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    >>> images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8)
    >>> acc = accuracy(model, images, torch.tensor([0, 1, 0, 1, 0, 1]), mean=(0.5,) * 3, std=(0.25,) * 3)
    >>> 0.0 <= acc <= 100.0
    True
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_mean_std, is_int
from ..utils import eval_mode, resolve_device

__all__ = ["accuracy", "accuracy_sums", "evaluate_accuracy", "as_nchw_uint8", "normalize", "iter_batches", "eval_mode",
           "resolve_device"]


def as_nchw_uint8(images: Any, name: str = "images") -> Tensor:
    """Check a uint8 image batch and return it as (N, C, H, W).

    Accepts (N, C, H, W) (the layout of :class:`sagemix.data.ImageData`) or (N, H, W, C) (the layout
    of CIFAR-10-C ``.npy`` files) with C in {1, 3}; a NumPy array is converted. When both readings
    are possible (e.g. (N, 3, 4, 3)), (N, C, H, W) is assumed.
    """
    if not isinstance(images, Tensor):
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - numpy is a core dependency
            np = None
        if np is not None and isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        else:
            raise TypeError(f"{name} must be a uint8 torch.Tensor or numpy array of shape (N, C, H, W) or "
                            f"(N, H, W, C), got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise TypeError(f"{name} must have dtype uint8 (pixel values 0-255), got {images.dtype}")
    if images.ndim != 4 or images.shape[0] < 1:
        raise ValueError(f"{name} must have shape (N, C, H, W) or (N, H, W, C) with N >= 1, "
                         f"got shape {tuple(images.shape)}")
    if images.shape[1] in (1, 3):
        return images
    if images.shape[3] in (1, 3):
        return images.permute(0, 3, 1, 2)
    raise ValueError(f"{name} must have 1 or 3 channels in dim 1 (N, C, H, W) or dim 3 (N, H, W, C), "
                     f"got shape {tuple(images.shape)}")


def check_labels(labels: Any, n: int, name: str = "labels") -> Tensor:
    """``labels`` as an int64 (n,) tensor; a clear TypeError/ValueError otherwise."""
    if not isinstance(labels, Tensor):
        try:
            labels = torch.as_tensor(labels)
        except (TypeError, ValueError, RuntimeError) as e:
            raise TypeError(f"{name} must be an int64 tensor of shape ({n},), got {type(labels).__name__}") from e
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) like the images, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    return labels.long()


def normalize(images01: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """``(x - mean) / std`` per channel for a (B, C, H, W) float batch on the 0-1 scale (differentiable)."""
    m = torch.as_tensor(mean, dtype=images01.dtype, device=images01.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=images01.dtype, device=images01.device).view(1, -1, 1, 1)
    return (images01 - m) / s


def iter_batches(images: Tensor, labels: Tensor | None, *, batch_size: int, device: torch.device,
                 ) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Yield ``(images01, labels)`` batches on ``device``: float32 pixels in [0, 1], (B, C, H, W).

    ``images`` is a checked (N, C, H, W) uint8 tensor; each batch is moved and converted on its own,
    so a large test set never sits in float32 on the device all at once.
    """
    for start in range(0, images.shape[0], batch_size):
        x = images[start:start + batch_size].to(device, non_blocking=True).float().div_(255.0)
        y = None if labels is None else labels[start:start + batch_size].to(device, non_blocking=True)
        yield x, y


def check_model_and_batch(model: Any, batch_size: Any) -> None:
    """Refuse a ``model`` that is not an ``nn.Module`` and a ``batch_size`` that is not a positive int."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


@torch.no_grad()
def accuracy_sums(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]],
               autocast_dtype: torch.dtype | None = None) -> Tensor:
    """``[correct, loss_sum, count]`` (float64, on the batches' device) of a clean evaluation over ``loader``.

    The sums, not the ratio, so that a distributed run can all-reduce them before dividing (the
    trainer); :func:`evaluate_accuracy` divides them for one process. ``model`` is in eval mode for
    the pass and restored after.
    """
    sums: Tensor | None = None
    with eval_mode(model):
        for images, labels in loader:
            if sums is None:
                sums = torch.zeros(3, dtype=torch.float64, device=images.device)
            if autocast_dtype is not None:
                with torch.autocast(device_type=images.device.type, dtype=autocast_dtype):
                    logits = model(images)
            else:
                logits = model(images)
            logits = logits.float()
            sums[0] += (logits.argmax(1) == labels).sum()
            sums[1] += F.cross_entropy(logits, labels, reduction="sum").double()
            sums[2] += labels.shape[0]
    return sums if sums is not None else torch.zeros(3, dtype=torch.float64)


def evaluate_accuracy(model: nn.Module, loader: Iterable[tuple[Tensor, Tensor]], *,
                      autocast_dtype: torch.dtype | None = None) -> tuple[float, float]:
    """Clean top-1 accuracy (percent) and mean cross-entropy of ``model`` over ``loader``.

    Args:
        model: a classifier returning (B, K) logits; it is put in eval mode and restored after.
        loader: an iterable of normalised ``(images, int labels)`` batches (e.g.
            ``sagemix.data.make_loader(data, batch_size=500, train=False, device=...)``).
        autocast_dtype: optional ``torch.bfloat16``/``torch.float16`` autocast for the forward.

    Returns:
        ``(accuracy in [0, 100], mean loss)``.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> batches = [(torch.randn(5, 3, 2, 2), torch.randint(0, 2, (5,)))]
        >>> acc, loss = evaluate_accuracy(model, batches)
        >>> 0.0 <= acc <= 100.0 and loss > 0
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    correct, loss_sum, count = (float(v) for v in accuracy_sums(model, loader, autocast_dtype).tolist())
    if count == 0:
        raise ValueError("loader yielded no batches; cannot evaluate an empty data set")
    return 100.0 * correct / count, loss_sum / count


def accuracy(model: nn.Module, images: Tensor | Iterable[tuple[Tensor, Tensor]], labels: Tensor | None = None,
             *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
             device: str | torch.device | None = "cpu", batch_size: int = 500) -> float:
    """Clean top-1 accuracy of ``model`` in percent, with the model in eval mode.

    Args:
        model: the classifier (its mode is restored afterwards).
        images: either uint8 images (N, C, H, W) or (N, H, W, C) in memory, normalised here with
            ``mean``/``std``; or an iterable of already normalised ``(images, labels)`` float batches
            (e.g. :func:`sagemix.data.make_loader` with ``train=False``), in which case ``labels``,
            ``mean`` and ``std`` must be None.
        labels: int (N,) labels of uint8 ``images``.
        mean: per-channel mean on the 0-1 scale (required with uint8 images).
        std: per-channel std on the 0-1 scale (required with uint8 images).
        device: where to run (``"auto"`` picks CUDA when available); the model must already be there.
        batch_size: images per forward pass (uint8 input only).

    Returns:
        The share of correctly classified images, in [0, 100], counted by the trainer's
        :func:`evaluate_accuracy` (the same code that logs the trainer's ``test_acc``).
    """
    check_model_and_batch(model, batch_size)
    dev = resolve_device(device)
    if isinstance(images, (Tensor,)) or type(images).__module__ == "numpy":
        x_all = as_nchw_uint8(images)
        if labels is None or mean is None or std is None:
            raise ValueError("labels, mean and std are required when images are uint8 pixels "
                             f"(got labels={'set' if labels is not None else None}, mean={mean}, std={std})")
        y_all = check_labels(labels, x_all.shape[0])
        mean, std = check_mean_std(mean, std, x_all.shape[1])
        batches: Iterable[tuple[Tensor, Tensor]] = (
            (normalize(x, mean, std), y) for x, y in iter_batches(x_all, y_all, batch_size=batch_size, device=dev))
    else:
        if labels is not None or mean is not None or std is not None:
            raise ValueError("labels, mean and std must be None when images is a loader of normalised "
                             "(images, labels) batches")
        if not hasattr(images, "__iter__"):
            raise TypeError("images must be a uint8 tensor or an iterable of (images, labels) batches, "
                            f"got {type(images).__name__}")
        batches = ((x.to(dev), y.to(dev)) for x, y in images)
    acc, _ = evaluate_accuracy(model, batches)
    return float(acc)
