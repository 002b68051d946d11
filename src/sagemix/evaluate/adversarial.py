"""Adversarial robustness: FGSM and PGD accuracy in pixel space, through the normalisation.

The SAGE paper (Ma et al., "SAGE: Saliency-Guided Mixup with Optimal Rearrangements", BMVC 2022,
https://arxiv.org/abs/2211.00113) follows Puzzle Mix and Co-Mixup in reporting the top-1 accuracy
under the fast gradient sign method (FGSM, Goodfellow et al., "Explaining and Harnessing Adversarial
Examples", https://arxiv.org/abs/1412.6572) at ``eps = 8/255``. The threat model is an L-infinity
ball in *pixel* space: the attack perturbs the image on the 0-1 scale, clamps it to [0, 1] and only
then normalises it with the dataset mean/std, so ``eps`` means the same on every dataset. The model
is attacked and evaluated in eval mode (batch-norm running statistics), and only the input gradient
is computed (the model's parameter gradients are never touched).

Projected gradient descent (PGD, Madry et al., "Towards Deep Learning Models Resistant to
Adversarial Attacks", https://arxiv.org/abs/1706.06083) is offered as a stronger option: ``steps``
signed-gradient steps of ``step_size`` from an optional uniform random start in the ball, each
followed by the projection onto the ball and onto [0, 1]. The adversarial example is the last
iterate (the standard definition).

Example:
    >>> import torch
    >>> from sagemix.evaluate.adversarial import fgsm
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    >>> x = torch.rand(5, 3, 4, 4)
    >>> adv = fgsm(model, x, torch.tensor([0, 1, 0, 1, 1]), eps=8 / 255, mean=(0.5,) * 3, std=(0.25,) * 3)
    >>> bool((adv - x).abs().max() <= 8 / 255 + 1e-6) and bool(adv.min() >= 0) and bool(adv.max() <= 1)
    True
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_mean_std, is_int, is_number
from .accuracy import (check_model_and_batch, check_labels, as_nchw_uint8, eval_mode, iter_batches,
                       normalize, resolve_device)

__all__ = ["fgsm", "pgd", "adversarial_accuracy", "parse_eps", "ATTACKS"]

ATTACKS = ("fgsm", "pgd")


def parse_eps(value: str | float | int) -> float:
    """Read an epsilon given as a number or a fraction such as ``"8/255"`` (pixel scale 0-1)."""
    if isinstance(value, bool):
        raise TypeError(f"eps must be a number or a fraction like '8/255', got {value!r}")
    if isinstance(value, (int, float)):
        eps = float(value)
    elif isinstance(value, str):
        try:
            eps = float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError) as e:
            raise ValueError(f"eps must be a number or a fraction like '8/255', got {value!r}") from e
    else:
        raise TypeError(f"eps must be a number or a fraction like '8/255', got {type(value).__name__}")
    if not math.isfinite(eps) or eps < 0 or eps > 1:
        raise ValueError(f"eps must lie in [0, 1] (pixel scale), got {value!r}")
    return eps


def _check_eps(eps: Any, name: str = "eps") -> float:
    if not is_number(eps) or not math.isfinite(eps) or not 0 <= eps <= 1:
        raise ValueError(f"{name} must be a float in [0, 1] (pixel scale, e.g. 8/255), got {eps!r}")
    return float(eps)


def _check_images01(images01: Any, labels: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(images01, Tensor) or not images01.is_floating_point() or images01.ndim != 4:
        raise TypeError("images01 must be a float tensor (B, C, H, W) of pixels in [0, 1], got "
                        f"{type(images01).__name__} {getattr(images01, 'dtype', '')} "
                        f"{tuple(getattr(images01, 'shape', ()))}")
    labels = check_labels(labels, images01.shape[0])
    return images01, labels.to(images01.device)


def _input_grad(model: nn.Module, x01: Tensor, labels: Tensor, mean: Sequence[float],
                std: Sequence[float]) -> Tensor:
    """Gradient of the summed cross-entropy w.r.t. pixel-space ``x01`` (parameters untouched).

    The loss is summed, not averaged, so the gradient of each image does not shrink with the batch
    size (only its sign is used, but a tiny averaged gradient can underflow to 0 in float32).
    """
    x = x01.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(normalize(x, mean, std))
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def fgsm(model: nn.Module, images01: Tensor, labels: Tensor, *, eps: float = 8 / 255,
         mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """Fast gradient sign method: ``clamp(x + eps * sign(grad_x CE), 0, 1)`` in pixel space.

    Args:
        model: the classifier; called on normalised inputs, run in eval mode (mode restored after).
        images01: (B, C, H, W) float pixels in [0, 1] on the model's device.
        labels: (B,) int labels.
        eps: L-infinity radius on the 0-1 pixel scale (8/255 in the paper).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation std (0-1 scale).

    Returns:
        (B, C, H, W) adversarial pixels in [0, 1], detached, with ``|adv - x| <= eps``.
    """
    eps = _check_eps(eps)
    images01, labels = _check_images01(images01, labels)
    mean, std = check_mean_std(mean, std, images01.shape[1])
    if eps == 0:
        return images01.detach().clone()
    with eval_mode(model):
        grad = _input_grad(model, images01, labels, mean, std)
    return (images01.detach() + eps * grad.sign()).clamp_(0.0, 1.0)


def pgd(model: nn.Module, images01: Tensor, labels: Tensor, *, eps: float = 8 / 255, steps: int = 10,
        step_size: float | None = None, random_start: bool = True, mean: Sequence[float],
        std: Sequence[float], generator: torch.Generator | None = None) -> Tensor:
    """L-infinity projected gradient descent (Madry et al.) in pixel space.

    Args:
        model: the classifier; called on normalised inputs, run in eval mode (mode restored after).
        images01: (B, C, H, W) float pixels in [0, 1].
        labels: (B,) int labels.
        eps: L-infinity radius on the 0-1 pixel scale.
        steps: number of signed-gradient steps (>= 1).
        step_size: size of each step; default ``2.5 * eps / steps`` (Madry et al.'s rule of thumb).
        random_start: start from a uniform draw in the eps-ball (clamped to [0, 1]); otherwise from
            the clean image (then one step with ``step_size = eps`` equals FGSM).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation std (0-1 scale).
        generator: torch generator for the random start (on the images' device).

    Returns:
        (B, C, H, W) adversarial pixels in [0, 1], detached, within eps of ``images01``.
    """
    eps = _check_eps(eps)
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if step_size is None:
        step_size = 2.5 * eps / steps
    step_size = _check_eps(step_size, "step_size")
    images01, labels = _check_images01(images01, labels)
    mean, std = check_mean_std(mean, std, images01.shape[1])
    x0 = images01.detach()
    if eps == 0:
        return x0.clone()
    lo, hi = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
    if random_start:
        noise = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x = torch.minimum(torch.maximum(x0 + (2 * noise - 1) * eps, lo), hi)
    else:
        x = x0.clone()
    with eval_mode(model):
        for _ in range(steps):
            grad = _input_grad(model, x, labels, mean, std)
            x = torch.minimum(torch.maximum(x + step_size * grad.sign(), lo), hi)
    return x.detach()


def adversarial_accuracy(model: nn.Module, images: Tensor, labels: Tensor, *, attack: str = "fgsm",
                         eps: float = 8 / 255, mean: Sequence[float], std: Sequence[float],
                         device: str | torch.device | None = "cpu", batch_size: int = 500, steps: int = 10,
                         step_size: float | None = None, random_start: bool = True,
                         seed: int = 0) -> dict[str, Any]:
    """Top-1 accuracy (percent) on clean and attacked copies of uint8 test images.

    Args:
        model: the classifier, already on ``device``; evaluated in eval mode.
        images: uint8 images (N, C, H, W) or (N, H, W, C).
        labels: int (N,) labels.
        attack: ``"fgsm"`` (the paper's) or ``"pgd"``.
        eps: L-infinity radius on the 0-1 pixel scale (8/255 in the paper).
        mean: per-channel normalisation mean (0-1 scale).
        std: per-channel normalisation std (0-1 scale).
        device: where to run.
        batch_size: images per attack batch.
        steps: PGD steps (PGD only).
        step_size: PGD step size (PGD only; default ``2.5 * eps / steps``).
        random_start: PGD random start (PGD only).
        seed: seeds the PGD random start (one torch generator on ``device``).

    Returns:
        A dict with ``attack, eps, clean_acc, adv_acc, n`` (and ``steps, step_size, random_start,
        seed`` for PGD); accuracies in [0, 100].
    """
    check_model_and_batch(model, batch_size)
    if attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
    eps = _check_eps(eps)
    x_all = as_nchw_uint8(images)
    y_all = check_labels(labels, x_all.shape[0])
    mean, std = check_mean_std(mean, std, x_all.shape[1])
    dev = resolve_device(device)
    generator = torch.Generator(device=dev).manual_seed(int(seed)) if attack == "pgd" else None
    clean_correct = adv_correct = 0
    for x, y in iter_batches(x_all, y_all, batch_size=batch_size, device=dev):
        if attack == "fgsm":
            adv = fgsm(model, x, y, eps=eps, mean=mean, std=std)
        else:
            adv = pgd(model, x, y, eps=eps, steps=steps, step_size=step_size, random_start=random_start,
                      mean=mean, std=std, generator=generator)
        with eval_mode(model), torch.inference_mode():
            clean_correct += int((model(normalize(x, mean, std)).argmax(1) == y).sum())
            adv_correct += int((model(normalize(adv, mean, std)).argmax(1) == y).sum())
    n = int(x_all.shape[0])
    out: dict[str, Any] = {"attack": attack, "eps": eps, "clean_acc": 100.0 * clean_correct / n,
                           "adv_acc": 100.0 * adv_correct / n, "n": n}
    if attack == "pgd":
        out.update(steps=steps, step_size=2.5 * eps / steps if step_size is None else float(step_size),
                   random_start=bool(random_start), seed=int(seed))
    return out
