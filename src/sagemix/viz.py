"""Figures of the mixes: what each method makes of the same pair, and how SAGE makes its mix.

The three figures follow the SAGE paper ("Saliency-Guided Mixup with Optimal Rearrangements",
Ma et al., BMVC 2022, https://arxiv.org/abs/2211.00113):

- :func:`figure_mixes` (paper Fig. 1): per row, the input pair, then one mix of that same pair by
  Mixup, CutMix, SaliencyMix, Puzzle Mix, Co-Mixup and SAGE, each labelled with its label weights.
- :func:`figure_sage_anatomy` (paper Fig. 3): the two images, their saliency maps, SAGE's mixing
  mask as a heat map, the SAGE mix, and the same pair under plain Mixup with the same label weight.
- :func:`figure_rearrangement` (paper Fig. 4): SAGE's rearrangement objective over every shift of
  the partner as a heat map (the optimum and the reference's random candidates marked), and the mix
  with and without the rearrangement.

Saliency comes from a model: the input gradient of the cross-entropy, with the model in eval mode
(batch-norm running statistics, since a pair is too small a batch for batch statistics), reduced by
each method's own ``reduce_saliency``. :func:`train_quick_model` trains a small network for a few
steps when the user has no checkpoint.

Images are shown de-normalised and upscaled with nearest-neighbour sampling; every figure has an
exact pixel size (:func:`grid_size`), since no tight bounding box is used.

matplotlib is imported inside the drawing functions (``pip install "sagemix[viz]"``).

Example:
    >>> from sagemix.viz import figure_mixes                      # doctest: +SKIP
    >>> figure_mixes(images, labels, model=model, mean=mean, std=std, classes=classes,
    ...              path="fig1.png")                             # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FIG1_METHODS", "Layout", "grid_size", "denormalize", "input_gradient", "method_saliency",
           "pick_pairs", "mix_pair", "figure_mixes", "figure_sage_anatomy", "figure_rearrangement",
           "train_quick_model", "load_image_folder", "normalize_uint8"]

#: The methods of the Fig. 1 strip, in order.
FIG1_METHODS = ("mixup", "cutmix", "saliencymix", "puzzlemix", "comixup", "sage")
_PRETTY = {"vanilla": "Vanilla", "mixup": "Mixup", "manifold_mixup": "Manifold Mixup", "cutmix": "CutMix",
           "cutout": "Cutout", "saliencymix": "SaliencyMix", "puzzlemix": "Puzzle Mix", "comixup": "Co-Mixup",
           "sage": "SAGE"}


# ---------------------------------------------------------------------------------------------------
# Layout: every panel is an exact number of pixels
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Pixel layout of a grid figure.

    Attributes:
        cell: side of an image panel in pixels (images are upscaled by an integer factor to fit).
        title: pixels above each panel for its title.
        foot: pixels below each panel for its caption.
        margin: pixels between panels and around the grid.
        dpi: dots per inch of the saved PNG (the pixel size does not depend on it).
    """

    cell: int = 128
    title: int = 30
    foot: int = 30
    margin: int = 8
    dpi: int = 100


def grid_size(nrows: int, ncols: int, layout: Layout = Layout()) -> tuple[int, int]:
    """``(width, height)`` in pixels of a figure of ``nrows x ncols`` panels."""
    w = ncols * (layout.cell + layout.margin) + layout.margin
    h = nrows * (layout.title + layout.cell + layout.foot + layout.margin) + layout.margin
    return w, h


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError('the figures need matplotlib: pip install "sagemix[viz]"') from e
    return plt


class _Grid:
    """A figure of exact pixel size with one axes per panel, placed in pixel coordinates."""

    def __init__(self, nrows: int, ncols: int, layout: Layout) -> None:
        plt = _pyplot()
        self.plt, self.layout, self.nrows, self.ncols = plt, layout, nrows, ncols
        self.w, self.h = grid_size(nrows, ncols, layout)
        self.fig = plt.figure(figsize=(self.w / layout.dpi, self.h / layout.dpi), dpi=layout.dpi)

    def ax(self, row: int, col: int) -> Any:
        L = self.layout
        x0 = L.margin + col * (L.cell + L.margin)
        top = L.margin + row * (L.title + L.cell + L.foot + L.margin) + L.title
        y0 = self.h - top - L.cell
        ax = self.fig.add_axes((x0 / self.w, y0 / self.h, L.cell / self.w, L.cell / self.h))
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def save(self, path: str | os.PathLike) -> Path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(out, dpi=self.layout.dpi)
        self.plt.close(self.fig)
        return out


def _upscale(img: Tensor, cell: int) -> Tensor:
    """(H, W, 3) or (H, W) -> nearest-upscaled by the largest integer factor that fits ``cell``, padded."""
    h, w = img.shape[:2]
    f = max(1, cell // max(h, w))
    up = img.repeat_interleave(f, 0).repeat_interleave(f, 1)
    return up


def _show(ax: Any, img: Tensor, cell: int, **kw: Any) -> Any:
    up = _upscale(img, cell)
    h, w = up.shape[:2]
    im = ax.imshow(up.numpy(), interpolation="nearest", extent=(0, w, h, 0), **kw)
    # Centre a non-square image in the square panel.
    side = max(h, w)
    ax.set_xlim((w - side) / 2, (w + side) / 2)
    ax.set_ylim((h + side) / 2, (h - side) / 2)
    for s in ax.spines.values():
        s.set_visible(False)
    return im


def _title(ax: Any, text: str, fontsize: float = 8.5) -> None:
    ax.set_title(text, fontsize=fontsize, pad=3)


def _caption(ax: Any, text: str, fontsize: float = 7.5) -> None:
    ax.text(0.5, -0.03, text, transform=ax.transAxes, ha="center", va="top", fontsize=fontsize)


# ---------------------------------------------------------------------------------------------------
# Images and saliency
# ---------------------------------------------------------------------------------------------------
def _check_stats(v: Any, name: str) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.float32).flatten()
    if t.numel() not in (1, 3) or not torch.isfinite(t).all():
        raise ValueError(f"{name} must be 1 or 3 finite numbers, got {v!r}")
    return t.view(-1, 1, 1)


def denormalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(B, 3, H, W) normalised -> (B, H, W, 3) float in [0, 1] for display."""
    m, s = _check_stats(mean, "mean"), _check_stats(std, "std")
    return (images.detach().float().cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1)


def normalize_uint8(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """(B, 3, H, W) uint8 -> normalised float32 (the model's input)."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        raise TypeError(f"images must be a uint8 (B, 3, H, W) tensor, got "
                        f"{getattr(images, 'dtype', type(images).__name__)} {tuple(getattr(images, 'shape', ()))}")
    m, s = _check_stats(mean, "mean"), _check_stats(std, "std")
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
    was = model.training
    model.eval()
    x = images.detach().float().clone().requires_grad_(True)
    try:
        loss = F.cross_entropy(model(x), labels.to(x.device))
        (g,) = torch.autograd.grad(loss, x)
    finally:
        model.train(was)
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
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, int) or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive int, got {n_pairs!r}")
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
             seed: int = 0, tries: int = 50, min_weight: float = 0.2, repeats: Sequence[int] = (1, 2, 4),
             mixer_kwargs: dict[str, Any] | None = None) -> tuple[Tensor, Tensor, int]:
    """One mix of the pair ``images[0], images[1]`` by ``method``.

    The mixer draws its own randomness (permutation, lam, boxes, grid sizes, Co-Mixup's Dirichlet
    weights). The batch holds only the pair (and, for the ``repeats`` values above 1, the pair repeated,
    which a batch method such as Co-Mixup needs to have more outputs than distinct inputs), so any output
    that gives each of the two labels a weight of at least ``min_weight`` is a mix of the pair. The first
    such output is used, over the generator seeds ``seed, seed + 1, ...`` (with a batch of two a random
    permutation keeps each image alone half of the time, and SaliencyMix mixes only half of its batches);
    image 1's own output is preferred.

    Args:
        method: registry name.
        images: (2, C, H, W) normalised pair.
        labels: (2,) int64, different.
        num_classes: K.
        grad: (2, C, H, W) input gradient, for the methods that need saliency.
        seed: first generator seed tried.
        tries: how many seeds to try per batch layout.
        min_weight: the smaller label weight to accept.
        repeats: batch layouts tried in turn: the pair repeated this many times.
        mixer_kwargs: options for the mixer.

    Returns:
        ``(mixed (C, H, W), soft target (K,), seed used)``.

    Raises:
        RuntimeError: no acceptable draw.
    """
    from .mixers import create_mixer

    if images.shape[0] != 2 or labels.shape != (2,) or int(labels[0]) == int(labels[1]):
        raise ValueError(f"mix_pair needs 2 images with 2 different labels, got {tuple(images.shape)} and "
                         f"{labels.tolist()}")
    if not 0.0 <= min_weight <= 0.5:
        raise ValueError(f"min_weight must be in [0, 0.5], got {min_weight!r}")
    for rep in repeats:
        x = images.repeat(rep, 1, 1, 1)
        y = labels.repeat(rep)
        g = None if grad is None else grad.repeat(rep, 1, 1, 1)
        sal = None
        for s in range(seed, seed + tries):
            mixer = create_mixer(method, num_classes=num_classes, generator=torch.Generator().manual_seed(s),
                                 **(mixer_kwargs or {}))
            if getattr(mixer, "mixes_hidden", False):
                raise ValueError(f"{method} mixes hidden states; it has no mixed image to show")
            if sal is None and g is not None:
                sal = method_saliency(mixer, g)
            out = mixer(x, y, sal)
            ok = out.targets[:, labels].min(dim=1).values >= min_weight - 1e-6  # (rep*2,)
            if bool(ok.any()):
                i = 0 if bool(ok[0]) else int(ok.nonzero()[0, 0])
                return out.images[i], out.targets[i], s
    raise RuntimeError(f"{method}: no draw in seeds {seed}..{seed + tries - 1} mixed the pair with both label "
                       f"weights >= {min_weight}")


# ---------------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------------
def _prepare(images: Tensor, labels: Tensor, pairs: Sequence[tuple[int, int]] | None, n_pairs: int,
             seed: int) -> tuple[Tensor, Tensor, list[tuple[int, int]]]:
    if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be a (N, 3, H, W) tensor, got {tuple(getattr(images, 'shape', ()))}")
    if images.dtype == torch.uint8:
        raise TypeError("images must be normalised floats (use normalize_uint8 first), got uint8")
    labels = torch.as_tensor(labels).long()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},) like images, got {tuple(labels.shape)}")
    if pairs is None:
        pairs = pick_pairs(labels, n_pairs, generator=torch.Generator().manual_seed(seed))
    for p in pairs:
        if len(p) != 2 or not all(0 <= int(i) < images.shape[0] for i in p):
            raise ValueError(f"pairs must hold index pairs into images, got {p!r}")
    return images, labels, [(int(a), int(b)) for a, b in pairs]


def _class_name(classes: Sequence[str] | None, k: int) -> str:
    return str(classes[k]) if classes is not None and 0 <= k < len(classes) else str(k)


def figure_mixes(images: Tensor, labels: Tensor, *, model: nn.Module, mean: Sequence[float],
                 std: Sequence[float], path: str | os.PathLike, num_classes: int | None = None,
                 classes: Sequence[str] | None = None, methods: Sequence[str] = FIG1_METHODS,
                 pairs: Sequence[tuple[int, int]] | None = None, n_pairs: int = 2, seed: int = 0,
                 min_weight: float = 0.2, mixer_kwargs: dict[str, dict[str, Any]] | None = None,
                 layout: Layout = Layout()) -> Path:
    """Paper Fig. 1: each row the pair, then one mix of that pair per method, with label weights.

    Args:
        images: (N, 3, H, W) normalised images to draw pairs from.
        labels: (N,) int64 labels (the model's classes).
        model: gives the saliency (input gradient, eval mode).
        mean, std: the normalisation, to de-normalise for display.
        path: the PNG to write.
        num_classes: K (default: the model's output size).
        classes: class names for the captions.
        methods: registry names, in column order.
        pairs: explicit ``(i, j)`` index pairs; default ``n_pairs`` random pairs of different classes.
        n_pairs: rows when ``pairs`` is None.
        seed: seeds the pair choice and the mixers' draws (see :func:`mix_pair`).
        min_weight: smallest label weight accepted for a shown mix.
        mixer_kwargs: per-method mixer options.
        layout: panel sizes.

    Returns:
        The PNG path. A method that cannot run (missing extra) gets an empty panel saying why.
    """
    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    device = next(iter(model.parameters())).device
    k = num_classes or _num_outputs(model, images)
    grid = _Grid(len(pairs), 2 + len(methods), layout)
    for r, (i, j) in enumerate(pairs):
        x = images[[i, j]].to(device)
        y = labels[[i, j]].to(device)
        grad = input_gradient(model, x, y)
        show = denormalize(x, mean, std)
        for c in range(2):
            ax = grid.ax(r, c)
            _show(ax, show[c], layout.cell)
            _title(ax, f"image {c + 1}")
            _caption(ax, _class_name(classes, int(y[c])))
        for c, m in enumerate(methods, start=2):
            ax = grid.ax(r, c)
            _title(ax, _PRETTY.get(m, m))
            try:
                mixed, target, _ = mix_pair(m, x, y, k, grad, seed=seed, min_weight=min_weight,
                                            mixer_kwargs=(mixer_kwargs or {}).get(m))
            except (ImportError, RuntimeError, ValueError) as e:
                ax.text(0.5, 0.5, "not available:\n" + _wrap(str(e).split(";")[0], 24), ha="center",
                        va="center", fontsize=7, transform=ax.transAxes)
                continue
            _show(ax, denormalize(mixed[None], mean, std)[0], layout.cell)
            w1, w2 = float(target[y[0]]), float(target[y[1]])
            _caption(ax, f"{_class_name(classes, int(y[0]))} {w1:.2f} / {_class_name(classes, int(y[1]))} {w2:.2f}")
    return grid.save(path)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:6])


def _num_outputs(model: nn.Module, images: Tensor) -> int:
    device = next(iter(model.parameters())).device
    was = model.training
    model.eval()
    with torch.no_grad():
        k = int(model(images[:1].to(device).float()).shape[1])
    model.train(was)
    return k


def _sage_setup(x: Tensor, y: Tensor, model: nn.Module, sage_kwargs: dict[str, Any] | None) -> tuple[Any, Tensor]:
    from .mixers import create_mixer

    k = _num_outputs(model, x)
    mixer = create_mixer("sage", num_classes=k, **(sage_kwargs or {}))
    sal = mixer.reduce_saliency(input_gradient(model, x, y))
    return mixer, sal


def figure_sage_anatomy(images: Tensor, labels: Tensor, *, model: nn.Module, mean: Sequence[float],
                        std: Sequence[float], path: str | os.PathLike, classes: Sequence[str] | None = None,
                        pairs: Sequence[tuple[int, int]] | None = None, n_pairs: int = 2, seed: int = 0,
                        prior: float = 0.5, rand_pos: float | None = None,
                        sage_kwargs: dict[str, Any] | None = None, layout: Layout = Layout()) -> Path:
    """Paper Fig. 3: image 1, image 2, their saliency, SAGE's mask, the SAGE mix and the Mixup mix.

    Each row is one pair. The saliency maps are SAGE's (reduced and smoothed input gradient). The
    partner (image 2) is shifted by the rearrangement before blending; its saliency is shown shifted
    too, as it enters the mask. The Mixup panel blends the unshifted pair with SAGE's label weight
    ``lam``, so both mixes carry the same labels.

    Args:
        images, labels, model, mean, std, path, classes, pairs, n_pairs, seed: as in :func:`figure_mixes`.
        prior: SAGE's alpha (own map scaled by alpha, partner's by 1 - alpha); fixed here so the figure
            does not depend on a random draw (training draws ``alpha ~ upper_lambda * Beta(1, 1)``).
        rand_pos: candidate fraction (None: all shifts, the true optimum; 0.01: the reference's subset).
        sage_kwargs: SAGE options (saliency_reduce, blur_kernel_size, blur_sigma).
        layout: panel sizes.
    """
    from .functional.sage import candidate_shifts, sage_mask, sage_mix, translate

    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    device = next(iter(model.parameters())).device
    cols = ["image 1", "image 2", "saliency 1", "saliency 2 (shifted)", "SAGE mask", "SAGE mix", "Mixup (same λ)"]
    grid = _Grid(len(pairs), len(cols), layout)
    perm = torch.tensor([1, 0], device=device)
    for r, (i, j) in enumerate(pairs):
        x, y = images[[i, j]].to(device), labels[[i, j]].to(device)
        mixer, sal = _sage_setup(x, y, model, sage_kwargs)
        h, w = x.shape[2:]
        shifts = candidate_shifts(h, w, rand_pos=rand_pos, generator=torch.Generator().manual_seed(seed),
                                  device=device)
        mixed, lam, chosen = sage_mix(x, sal, perm, prior, shifts)
        mask = sage_mask(sal, perm, prior, chosen)[0].cpu()
        shifted_sal = translate(sal[[1]][:, None], chosen[[0]])[0, 0].cpu()
        lam0 = float(lam[0])
        plain = lam0 * x[0] + (1 - lam0) * x[1]
        show = denormalize(x, mean, std)
        panels = [
            (show[0], {}, _class_name(classes, int(y[0]))),
            (show[1], {}, _class_name(classes, int(y[1]))),
            (sal[0].cpu(), {"cmap": "inferno"}, "input-gradient saliency"),
            (shifted_sal, {"cmap": "inferno"}, f"shift (dy, dx) = ({int(chosen[0, 0])}, {int(chosen[0, 1])})"),
            (mask, {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}, "weight of image 1 (0-1)"),
            (denormalize(mixed[:1], mean, std)[0], {}, f"λ = {lam0:.2f} / {1 - lam0:.2f}"),
            (denormalize(plain[None], mean, std)[0], {}, f"λ = {lam0:.2f} / {1 - lam0:.2f}"),
        ]
        for c, (img, kw, cap) in enumerate(panels):
            ax = grid.ax(r, c)
            _show(ax, img.float(), layout.cell, **kw)
            _title(ax, cols[c])
            _caption(ax, cap)
    return grid.save(path)


def figure_rearrangement(images: Tensor, labels: Tensor, *, model: nn.Module, mean: Sequence[float],
                         std: Sequence[float], path: str | os.PathLike, classes: Sequence[str] | None = None,
                         pairs: Sequence[tuple[int, int]] | None = None, n_pairs: int = 2, seed: int = 0,
                         prior: float = 0.5, rand_pos: float = 0.01, sage_kwargs: dict[str, Any] | None = None,
                         layout: Layout = Layout(foot=40)) -> Path:
    """Paper Fig. 4: the rearrangement objective over all shifts and the mix with and without it.

    Per pair: image 1, image 2, the objective ``J(t)`` over every shift ``t = (dy, dx)`` with at least one
    pixel of overlap as a heat map (centre: no shift, marked "+"; the exhaustive optimum marked with a
    red "x"; the reference's random candidates, ``rand_pos`` of all shifts, as small white dots and the
    best of them circled in cyan), the mix without rearrangement (zero shift), the mix at the best
    random candidate and the mix at the optimum, each with its objective value and label weight.

    Args:
        images, labels, model, mean, std, path, classes, pairs, n_pairs, seed: as in :func:`figure_mixes`.
        prior: SAGE's alpha (fixed for the figure).
        rand_pos: the fraction of shifts drawn as candidates (the reference's 0.01).
        sage_kwargs: SAGE options (saliency_reduce, blur_kernel_size, blur_sigma).
        layout: panel sizes.
    """
    from .functional.sage import all_shifts, candidate_shifts, sage_mix, sage_objective

    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    device = next(iter(model.parameters())).device
    cols = ["image 1", "image 2", "objective J(dy, dx)", "no shift", "best random shift", "optimal shift"]
    grid = _Grid(len(pairs), len(cols), layout)
    perm = torch.tensor([1, 0], device=device)
    for r, (i, j) in enumerate(pairs):
        x, y = images[[i, j]].to(device), labels[[i, j]].to(device)
        _, sal = _sage_setup(x, y, model, sage_kwargs)
        h, w = x.shape[2:]
        every = all_shifts(h, w, device=device)
        obj = sage_objective(sal, perm, prior, every)[0]  # (K,) for pair (image 1, image 2)
        heat = obj.view(2 * h - 1, 2 * w - 1).cpu()
        best = int(obj.argmax())
        cand = candidate_shifts(h, w, rand_pos=rand_pos, generator=torch.Generator().manual_seed(seed),
                                device=device)
        flat = ((cand[:, 0] + h - 1) * (2 * w - 1) + cand[:, 1] + w - 1).long()
        cbest = int(flat[obj[flat].argmax()])
        zero = (h - 1) * (2 * w - 1) + (w - 1)
        show = denormalize(x, mean, std)
        for c in range(2):
            ax = grid.ax(r, c)
            _show(ax, show[c], layout.cell)
            _title(ax, cols[c])
            _caption(ax, _class_name(classes, int(y[c])))
        ax = grid.ax(r, 2)
        _title(ax, cols[2])
        up = _upscale(heat, layout.cell)
        f = up.shape[0] // heat.shape[0]
        ax.imshow(up.numpy(), cmap="magma", interpolation="nearest", extent=(0, up.shape[1], up.shape[0], 0))
        ax.set_xlim(0, up.shape[1])
        ax.set_ylim(up.shape[0], 0)

        def centre(flat_index: int) -> tuple[float, float]:
            rr, cc = divmod(flat_index, 2 * w - 1)
            return (cc + 0.5) * f, (rr + 0.5) * f

        cx, cy = zip(*[centre(int(t)) for t in flat.tolist()])
        ax.scatter(cx, cy, s=4, c="white", linewidths=0)
        ax.scatter(*centre(cbest), s=60, facecolors="none", edgecolors="cyan", linewidths=1.2)
        ax.scatter(*centre(zero), s=50, marker="+", c="white", linewidths=1.2)
        ax.scatter(*centre(best), s=50, marker="x", c="red", linewidths=1.5)
        _caption(ax, f"x optimum, o best of {len(flat)}\nrandom shifts, + no shift")
        for c, (t, name) in enumerate(((zero, "J"), (cbest, "J"), (best, "J")), start=3):
            shift = every[t][None]
            mixed, lam, _ = sage_mix(x, sal, perm, prior, shift)
            ax = grid.ax(r, c)
            _show(ax, denormalize(mixed[:1], mean, std)[0], layout.cell)
            _title(ax, cols[c])
            dy, dx = int(every[t, 0]), int(every[t, 1])
            _caption(ax, f"(dy, dx) = ({dy}, {dx})\nJ = {float(obj[t]):.3f}, λ = {float(lam[0]):.2f}")
    return grid.save(path)


# ---------------------------------------------------------------------------------------------------
# Sources of images and of a model
# ---------------------------------------------------------------------------------------------------
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_image_folder(folder: str | os.PathLike, *, size: int | tuple[int, int] = 64,
                      limit: int = 64) -> tuple[Tensor, list[str]]:
    """The user's pictures: image files in ``folder`` (sorted, at most ``limit``), resized to ``size``.

    Returns:
        ``(uint8 (N, 3, H, W), file stems)``.

    Raises:
        FileNotFoundError: the folder does not exist or holds fewer than two images.
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError('loading a folder of images needs pillow: pip install "sagemix[offline]"') from e
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in _IMAGE_EXT)[:limit]
    if len(files) < 2:
        raise FileNotFoundError(f"image folder {str(root)!r} must hold at least 2 images "
                                f"({', '.join(sorted(_IMAGE_EXT))}), found {len(files)}")
    hw = (size, size) if isinstance(size, int) else tuple(size)
    out = []
    for p in files:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((hw[1], hw[0]), Image.BILINEAR)
            out.append(torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(hw[0], hw[1], 3))
    return torch.stack(out).permute(0, 3, 1, 2).contiguous(), [p.stem for p in files]


def train_quick_model(images: Tensor, labels: Tensor, num_classes: int, *, mean: Sequence[float],
                      std: Sequence[float], steps: int = 150, batch_size: int = 64, lr: float = 0.05,
                      seed: int = 0, model: str = "smallnet", progress: bool = False) -> nn.Module:
    """Train a small network for a few SGD steps (no mixing) so its input gradient is a meaningful saliency.

    Args:
        images: (N, 3, H, W) uint8 training images.
        labels: (N,) int64.
        num_classes: K.
        mean, std: the normalisation.
        steps: SGD steps (Nesterov momentum 0.9, cosine-free constant ``lr``, weight decay 5e-4).
        batch_size: B.
        seed: seeds the weights and the batches.
        model: model name for :func:`sagemix.models.create_model`.
        progress: show a tqdm bar.

    Returns:
        The model in eval mode.
    """
    from tqdm.auto import tqdm

    from .models import create_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = create_model(model, num_classes)
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_all = normalize_uint8(images, mean, std)
    y_all = torch.as_tensor(labels).long()
    net.train()
    for _ in tqdm(range(steps), desc=f"training {model} for the saliency", disable=not progress, leave=False):
        idx = torch.randint(0, x_all.shape[0], (min(batch_size, x_all.shape[0]),), generator=g)
        x = x_all[idx]
        flip = torch.rand(idx.shape[0], generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        loss = F.cross_entropy(net(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()
