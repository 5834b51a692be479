"""Figures: grids of binary images and learning curves (matplotlib, Agg, no pyplot state).

>>> import numpy as np, tempfile, os
>>> tmp = tempfile.TemporaryDirectory()
>>> path = os.path.join(tmp.name, "grid.png")
>>> save_sample_grid(np.eye(64, dtype=np.uint8)[:16], (8, 8), path)
>>> os.path.getsize(path) > 0
True
>>> tmp.cleanup()
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .serialization import atomic_write

__all__ = ["image_grid", "save_sample_grid", "save_learning_curve"]


def image_grid(x: np.ndarray, image_shape: Sequence[int], order: str = "C", cols: int | None = None) -> np.ndarray:
    """Tile the rows of ``x`` (each an image of ``image_shape`` in ``order``) into one array,
    with a one-pixel gap of 0.5 between images.

    >>> image_grid(np.ones((3, 4)), (2, 2), cols=2).shape
    (5, 5)
    """
    x = np.asarray(x, dtype=np.float64)
    h, w = image_shape
    if x.shape[1] != h * w:
        raise ValueError(f"image_shape: {h}x{w} does not fit rows of {x.shape[1]} values")
    cols = cols or math.ceil(math.sqrt(len(x)))
    rows = math.ceil(len(x) / cols)
    grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), 0.5)
    for i, row in enumerate(x):
        r, c = divmod(i, cols)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = row.reshape(h, w, order=order)
    return grid


def _save(fig: Figure, path: str | os.PathLike) -> None:
    """Render ``fig`` to a PNG at ``path`` atomically (temporary file, then rename)."""
    FigureCanvasAgg(fig)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def save_sample_grid(
    x: np.ndarray, image_shape: Sequence[int], path: str | os.PathLike, order: str = "C", title: str | None = None
) -> None:
    """Write the rows of ``x`` as a grid of images (black = 1) to the PNG ``path``."""
    grid = image_grid(x, image_shape, order)
    scale = max(2.0, min(8.0, 0.06 * grid.shape[1]))
    fig = Figure(figsize=(scale, scale * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def save_learning_curve(history: Sequence[dict], path: str | os.PathLike, title: str | None = None) -> None:
    """Plot ``train_nll`` and ``valid_nll`` against ``epoch`` (rows as in ``metrics.jsonl``;
    ``valid_nll`` may be ``None`` between validations).

    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> save_learning_curve([{"epoch": 1, "train_nll": 3.0, "valid_nll": 2.5}], os.path.join(tmp.name, "curve.png"))
    >>> tmp.cleanup()
    """
    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(5, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.plot(epochs, [r["train_nll"] for r in history], marker=".", label="train (mean of minibatches)")
    validated = [r for r in history if r["valid_nll"] is not None]
    ax.plot([r["epoch"] for r in validated], [r["valid_nll"] for r in validated], marker=".", label="valid")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats)")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
