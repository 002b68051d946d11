"""Pixel-exact figure grids: a :class:`Layout` of panels, the figure that places them, and panel drawing.

Every panel is an exact number of pixels (:func:`grid_size`), since no tight bounding box is used;
images are upscaled with nearest-neighbour sampling by the largest integer factor that fits a panel.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from ..utils import pyplot

__all__ = ["Layout", "grid_size"]


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


class _Grid:
    """A figure of exact pixel size with one axes per panel, placed in pixel coordinates."""

    def __init__(self, nrows: int, ncols: int, layout: Layout) -> None:
        plt = pyplot()
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
