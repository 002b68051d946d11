"""Images and saliency for the figures: (de)normalisation, the user's pictures, input-gradient saliency,
pairs of images and one mix of a pair by any method.

Saliency here is the input gradient of the mean cross-entropy with the model in **eval** mode (batch-norm
running statistics: a pair is too small a batch for batch statistics), reduced by each method's own
``reduce_saliency``. Training's saliency (:meth:`sagemix.MixStep.clean_pass`) runs in the mode each
method trains with and keeps a weighted parameter gradient; the figures need neither, so they keep
this gradient of their own, and share the reduction (``mixer.reduce_saliency``) with training.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int, check_mean_std
from ..utils import eval_mode

__all__ = ["denormalize", "normalize_uint8", "input_gradient", "method_saliency", "pick_pairs", "mix_pair",
           "load_image_folder"]


def _check_stats(mean: Any, std: Any, channels: int) -> tuple[Tensor, Tensor]:
    """``mean`` and ``std`` (1 or ``channels`` values each, std > 0) as (C, 1, 1) float32 tensors."""
    m, s = check_mean_std(mean, std, channels)
    return torch.tensor(m).view(-1, 1, 1), torch.tensor(s).view(-1, 1, 1)


def denormalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(B, 3, H, W) normalised -> (B, H, W, 3) float in [0, 1] for display."""
    m, s = _check_stats(mean, std, images.shape[1])
    return (images.detach().float().cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1)


def normalize_uint8(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(B, 3, H, W) uint8 -> normalised float32 (the model's input)."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"images must be a uint8 (B, 3, H, W) tensor, got "
                        f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    m, s = _check_stats(mean, std, images.shape[1])
    return (images.float() / 255.0 - m) / s


def input_gradient(model: nn.Module, images: Tensor, labels: Tensor) -> Tensor:
    """Gradient of the mean cross-entropy w.r.t. the (normalised) input, model in eval mode.

    Args:
        model: the network (its mode is restored afterwards; its parameters get no gradient).
        images: (B, C, H, W) normalised.
        labels: (B,) int64.

    Returns:
        (B, C, H, W) float32 gradient.
    """
    x = images.detach().float().clone().requires_grad_(True)
    with eval_mode(model):
        loss = F.cross_entropy(model(x), labels.to(x.device))
        (g,) = torch.autograd.grad(loss, x)
    return g.detach()


def method_saliency(mixer: Any, grad: Tensor) -> Tensor | None:
    """The saliency ``mixer`` consumes, from an input gradient (None for methods without one)."""
    if not getattr(mixer, "needs_gradient_saliency", False):
        return None
    return mixer.reduce_saliency(grad)


def pick_pairs(labels: Tensor, n_pairs: int, *, generator: torch.Generator | None = None) -> list[tuple[int, int]]:
    """``n_pairs`` pairs of indices with different labels (random, from ``generator``), no index reused.

    Raises:
        ValueError: fewer than two classes, or not enough images.
    """
    check_int(n_pairs, "n_pairs", 1)
    order = torch.randperm(labels.numel(), generator=generator).tolist()
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i in order:
        if i in used:
            continue
        j = next((j for j in order if j not in used and j != i and int(labels[j]) != int(labels[i])), None)
        if j is None:
            continue
        pairs.append((i, j))
        used |= {i, j}
        if len(pairs) == n_pairs:
            return pairs
    raise ValueError(f"need {n_pairs} pairs of images with different labels, found {len(pairs)} among "
                     f"{labels.numel()} images of {len(set(labels.tolist()))} classes")


def mix_pair(method: str, images: Tensor, labels: Tensor, num_classes: int, grad: Tensor | None, *,
             seed: int = 0, generator: torch.Generator | None = None, tries: int = 50, min_weight: float = 0.2,
             repeats: Sequence[int] = (1, 2, 4), mixer_kwargs: dict[str, Any] | None = None
             ) -> tuple[Tensor, Tensor, Any]:
    """One mix of the pair ``images[0], images[1]`` by ``method``.

    The mixer draws its parameters (permutation, lam, boxes, grid sizes, Co-Mixup's Dirichlet weights)
    with :meth:`~sagemix.mixers.base.Mixer.make_params` from ``generator`` and applies them with
    :meth:`~sagemix.mixers.base.Mixer.apply`. The batch holds only the pair (and, for the ``repeats``
    values above 1, the pair repeated, which a batch method such as Co-Mixup needs to have more outputs
    than distinct inputs), so any output that gives each of the two labels a weight of at least
    ``min_weight`` is a mix of the pair. The first such output is used, over up to ``tries`` successive
    draws per batch layout (with a batch of two a random permutation keeps each image alone half of the
    time, and SaliencyMix mixes only half of its batches); image 1's own output is preferred.

    Args:
        method: registry name.
        images: (2, C, H, W) normalised pair.
        labels: (2,) int64, different.
        num_classes: K.
        grad: (2, C, H, W) input gradient, for the methods that need saliency.
        seed: seeds the draws when ``generator`` is None.
        generator: the CPU generator of the draws; pass the same one for every row of a figure so that
            each row gets its own draw.
        tries: how many draws to try per batch layout.
        min_weight: the smaller label weight to accept.
        repeats: batch layouts tried in turn: the pair repeated this many times.
        mixer_kwargs: options for the mixer.

    Returns:
        ``(mixed (C, H, W), soft target (K,), params)``: ``params`` is the accepted draw, which
        ``mixer.apply`` replays on the same (repeated) batch.

    Raises:
        RuntimeError: no acceptable draw.
    """
    from ..mixers import create_mixer

    if images.shape[0] != 2 or labels.shape != (2,) or int(labels[0]) == int(labels[1]):
        raise ValueError(f"mix_pair needs 2 images with 2 different labels, got {tuple(images.shape)} and "
                         f"{labels.tolist()}")
    if not 0.0 <= min_weight <= 0.5:
        raise ValueError(f"min_weight must be in [0, 0.5], got {min_weight!r}")
    generator = torch.Generator().manual_seed(seed) if generator is None else generator
    mixer = create_mixer(method, num_classes=num_classes, generator=generator, **(mixer_kwargs or {}))
    try:
        if getattr(mixer, "mixes_hidden", False):
            raise ValueError(f"{method} mixes hidden states; it has no mixed image to show")
        for rep in repeats:
            x = images.repeat(rep, 1, 1, 1)
            y = labels.repeat(rep)
            sal = None if grad is None else method_saliency(mixer, grad.repeat(rep, 1, 1, 1))
            for _ in range(tries):
                params = mixer.make_params(x, y, sal)
                out = mixer.apply(x, y, params, sal)
                ok = out.targets[:, labels].min(dim=1).values >= min_weight - 1e-6  # (rep*2,)
                if bool(ok.any()):
                    i = 0 if bool(ok[0]) else int(ok.nonzero()[0, 0])
                    return out.images[i], out.targets[i], params
    finally:
        mixer.close()
    raise RuntimeError(f"{method}: no draw in {tries} tries per batch layout mixed the pair with both label "
                       f"weights >= {min_weight}")


def load_image_folder(folder: str | os.PathLike, *, size: int | tuple[int, int] = 64, limit: int = 64,
                      groups: bool = False) -> tuple[Tensor, list[str]] | tuple[Tensor, list[str], Tensor]:
    """The user's pictures: image files anywhere under ``folder`` (at most ``limit``), resized to ``size``.

    The files are read by :func:`sagemix.data.imagefolder.read_images` (RGB, bilinear resize), the
    reader of the image-folder datasets; unlike a dataset, the folder needs no class sub-folders. The
    files are taken in sorted order; when there are more than ``limit``, ``limit`` of them spread evenly
    over that order, so that every sub-folder (class) is represented, not only the first ones.

    Args:
        folder: the folder of pictures.
        size: the side (or (H, W)) they are resized to.
        limit: the most pictures read.
        groups: also return the group of each picture: the index of its first-level sub-folder (in
            sorted order; the pictures directly in ``folder`` form one group of their own).

    Returns:
        ``(uint8 (N, 3, H, W), file stems)``, and with ``groups`` the (N,) int64 group of each.

    Raises:
        FileNotFoundError: the folder does not exist or holds fewer than two images.
    """
    from ..data.imagefolder import IMAGE_EXTENSIONS, read_images

    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if len(files) > limit:
        files = [files[(i * len(files)) // limit] for i in range(limit)]
    if len(files) < 2:
        raise FileNotFoundError(f"image folder {str(root)!r} must hold at least 2 images "
                                f"({', '.join(IMAGE_EXTENSIONS)}), found {len(files)}")
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    images = read_images(files, hw)
    names = [p.stem for p in files]
    if not groups:
        return images, names
    tops = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else "" for p in files]
    index = {t: k for k, t in enumerate(sorted(set(tops)))}
    return images, names, torch.tensor([index[t] for t in tops], dtype=torch.long)
