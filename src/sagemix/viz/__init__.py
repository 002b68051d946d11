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
each method's own ``reduce_saliency`` (:mod:`sagemix.viz.images`). ``sagemix show`` trains a small
network briefly through :class:`sagemix.train.Trainer` when the user has no checkpoint.

Images are shown de-normalised and upscaled with nearest-neighbour sampling; every figure has an
exact pixel size (:func:`grid_size`), since no tight bounding box is used.

Modules: :mod:`~sagemix.viz.layout` (pixel-exact grids), :mod:`~sagemix.viz.images` (images, pairs,
saliency, one mix of a pair), :mod:`~sagemix.viz.figures` (the three figures).

matplotlib is imported inside the drawing functions (``pip install "sagemix[viz]"``), through
:func:`sagemix.utils.pyplot`.

Example:
    >>> from sagemix.viz import figure_mixes                      # doctest: +SKIP
    >>> figure_mixes(images, labels, model=model, mean=mean, std=std, classes=classes,
    ...              path="fig1.png")                             # doctest: +SKIP
"""
from __future__ import annotations

from .figures import FIG1_METHODS, figure_mixes, figure_rearrangement, figure_sage_anatomy
from .images import denormalize, input_gradient, load_image_folder, method_saliency, mix_pair, normalize_uint8, pick_pairs
from .layout import Layout, grid_size

__all__ = ["FIG1_METHODS", "Layout", "grid_size", "denormalize", "input_gradient", "method_saliency",
           "pick_pairs", "mix_pair", "figure_mixes", "figure_sage_anatomy", "figure_rearrangement",
           "load_image_folder", "normalize_uint8"]
