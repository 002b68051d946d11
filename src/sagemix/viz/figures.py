"""The three figures of the mixes (paper Figs. 1, 3 and 4); see :mod:`sagemix.viz`."""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..utils import eval_mode
from .images import denormalize, input_gradient, mix_pair, pick_pairs
from .layout import Layout, _caption, _Grid, _show, _title, _upscale

__all__ = ["FIG1_METHODS", "figure_mixes", "figure_sage_anatomy", "figure_rearrangement"]

#: The methods of the Fig. 1 strip, in order.
FIG1_METHODS = ("mixup", "cutmix", "saliencymix", "puzzlemix", "comixup", "sage")
_PRETTY = {"vanilla": "Vanilla", "mixup": "Mixup", "manifold_mixup": "Manifold Mixup", "cutmix": "CutMix",
           "cutout": "Cutout", "saliencymix": "SaliencyMix", "puzzlemix": "Puzzle Mix", "comixup": "Co-Mixup",
           "sage": "SAGE"}



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
        seed: seeds the pair choice and the mixers' draws (one generator per method, drawn from row
            after row: each row has its own draw; see :func:`mix_pair`).
        min_weight: smallest label weight accepted for a shown mix.
        mixer_kwargs: per-method mixer options.
        layout: panel sizes.

    Returns:
        The PNG path. A method that cannot run (missing extra) gets an empty panel saying why.
    """
    from ..extras import missing_extras, short_hint

    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    device = next(iter(model.parameters())).device
    k = num_classes or _num_outputs(model, images)
    missing = missing_extras(methods)
    # One generator per method, shared by the rows: every row gets its own draw.
    generators = {m: torch.Generator().manual_seed(seed) for m in methods}
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
            if m in missing:  # a short label; the command says the whole reason on the console
                ax.text(0.5, 0.5, "not installed:\n" + short_hint(m).replace("pip install ", "pip install\n"),
                        ha="center", va="center", fontsize=7, transform=ax.transAxes)
                continue
            try:
                mixed, target, _ = mix_pair(m, x, y, k, grad, generator=generators[m], min_weight=min_weight,
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
    with eval_mode(model), torch.no_grad():
        k = int(model(images[:1].to(device).float()).shape[1])
    return k


def _sage_rows(images: Tensor, labels: Tensor, pairs: Sequence[tuple[int, int]], seed: int, model: nn.Module,
               sage_kwargs: dict[str, Any] | None, rand_pos: float | None, prior: float
               ) -> Iterator[tuple[int, Tensor, Tensor, Any, Tensor, Any]]:
    """For each pair: ``(row, x, y, mixer, saliency, params)``: the pair on the model's device, its SAGE
    saliency and a SAGE draw (its candidate shifts, from a generator seeded with ``seed`` for the first
    row and drawn on for the next rows) with the figure's fixed ``prior`` and image 2 as image 1's partner."""
    from ..mixers import create_mixer

    device = next(iter(model.parameters())).device
    k = _num_outputs(model, images)
    options = {**(sage_kwargs or {}), "rand_pos": rand_pos, "search": "random"}
    mixer = create_mixer("sage", num_classes=k, generator=torch.Generator().manual_seed(seed), **options)
    for r, (i, j) in enumerate(pairs):
        x, y = images[[i, j]].to(device), labels[[i, j]].to(device)
        sal = mixer.reduce_saliency(input_gradient(model, x, y))
        params = dataclasses.replace(mixer.make_params(x, y, sal), prior=prior, index=torch.tensor([1, 0]))
        yield r, x, y, mixer, sal, params


def _saliency_panel(sal: Tensor, what: str) -> tuple[Tensor, str | None]:
    """A saliency map scaled for display (0 to its 99th percentile, clipped; to its maximum when that
    percentile is 0) and, for an all-zero map, what to say instead of showing it silently black (also
    warned)."""
    s = torch.nan_to_num(sal.detach().float().cpu(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    top = float(s.max())
    if not top > 0:
        warnings.warn(f"{what} is all zero: the model's loss has no input gradient on this image (a "
                      "model certain of it, or a constant one); its panel is blank", stacklevel=3)
        return s, "all zero: no gradient"
    scale = float(torch.quantile(s.flatten(), 0.99)) or top
    return (s / scale).clamp(max=1.0), None


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
    from ..functional.sage import translate
    from ..mixers.sage import SAGE

    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    cols = ["image 1", "image 2", "saliency 1", "saliency 2 (shifted)", "SAGE mask", "SAGE mix", "Mixup (same λ)"]
    grid = _Grid(len(pairs), len(cols), layout)
    heat = {"cmap": "inferno", "vmin": 0.0, "vmax": 1.0}
    for r, x, y, mixer, sal, params in _sage_rows(images, labels, pairs, seed, model, sage_kwargs, rand_pos, prior):
        out = mixer.apply(x, y, params, sal)
        chosen = out.extras["shift"]
        mask = SAGE.mask(sal, out)[0].cpu()
        sal1, zero1 = _saliency_panel(sal[0], f"row {r + 1}: saliency 1")
        sal2, zero2 = _saliency_panel(translate(sal[[1]][:, None], chosen[[0]])[0, 0], f"row {r + 1}: saliency 2")
        shift = f"shift (dy, dx) = ({int(chosen[0, 0])}, {int(chosen[0, 1])})"
        lam0 = float(out.lam[0])
        plain = lam0 * x[0] + (1 - lam0) * x[1]
        show = denormalize(x, mean, std)
        panels = [
            (show[0], {}, _class_name(classes, int(y[0]))),
            (show[1], {}, _class_name(classes, int(y[1]))),
            (sal1, heat, zero1 or "input-gradient saliency"),
            (sal2, heat, shift if zero2 is None else f"{shift}\n{zero2}"),
            (mask, {"cmap": "viridis", "vmin": 0.0, "vmax": 1.0}, "weight of image 1 (0-1)"),
            (denormalize(out.images[:1], mean, std)[0], {}, f"λ = {lam0:.2f} / {1 - lam0:.2f}"),
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
    from ..functional.sage import all_shifts, sage_objective

    images, labels, pairs = _prepare(images, labels, pairs, n_pairs, seed)
    cols = ["image 1", "image 2", "objective J(dy, dx)", "no shift", "best random shift", "optimal shift"]
    grid = _Grid(len(pairs), len(cols), layout)
    for r, x, y, mixer, sal, params in _sage_rows(images, labels, pairs, seed, model, sage_kwargs, rand_pos, prior):
        h, w = x.shape[2:]
        every = all_shifts(h, w)
        obj = sage_objective(sal, params.index, prior, every.to(sal.device))[0].cpu()  # (K,): (image 1, image 2)
        heat = obj.view(2 * h - 1, 2 * w - 1)
        best = int(obj.argmax())
        cand = params.shifts  # the draw's random candidates
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
            out = mixer.apply(x, y, dataclasses.replace(params, shifts=every[t][None]), sal)  # the draw at one shift
            lam = out.lam
            ax = grid.ax(r, c)
            _show(ax, denormalize(out.images[:1], mean, std)[0], layout.cell)
            _title(ax, cols[c])
            dy, dx = int(every[t, 0]), int(every[t, 1])
            _caption(ax, f"(dy, dx) = ({dy}, {dx})\nJ = {float(obj[t]):.3f}, λ = {float(lam[0]):.2f}")
    return grid.save(path)
