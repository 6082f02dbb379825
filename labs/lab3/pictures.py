"""What the CNN looks at, in pictures (provided, not a task): the notebook draws them with YOUR model.

* ``draw_filters``: the first convolution's filters, one panel each (no empty panels).
* ``draw_feature_maps``: one digit through the network: the output channels of every Conv2d and
  MaxPool2d, in order, one row of panels per layer (the first convolution's channels respond to
  strokes of one orientation each, pooling halves the resolution, the second convolution combines
  them into larger parts).

    from lab3 import pictures
    pictures.draw_filters(plt, model); pictures.draw_feature_maps(plt, model, data.test_images[0])

The functions take matplotlib's ``pyplot`` as an argument: grading never imports matplotlib.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .conv import Conv2d
from .pooling import MaxPool2d

#: At most this many panels per row of a picture.
COLUMNS = 8


def grid(n: int, columns: int = COLUMNS) -> tuple[int, int]:
    """(rows, columns) of a grid that holds ``n`` panels with at most ``columns`` per row and no empty row."""
    cols = min(n, columns)
    return -(-n // cols), cols


def _panels(fig, n: int, columns: int = COLUMNS) -> list:
    """``n`` axes in a grid, with the unused cells of the last row removed (no empty axes)."""
    rows, cols = grid(n, columns)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n:]:
        ax.remove()
    return list(axes[:n])


def draw_filters(plt: ModuleType, model) -> object:
    """The first Conv2d's filters (its first input channel), on a colour scale symmetric about 0."""
    conv = next(layer for layer in model.layers if isinstance(layer, Conv2d))
    w = conv.weight.data[:, 0]
    rows, cols = grid(len(w))
    fig = plt.figure(figsize=(1.2 * cols, 1.35 * rows + 0.5), layout="constrained")
    limit = float(np.abs(w).max())
    for k, (ax, f) in enumerate(zip(_panels(fig, len(w)), w, strict=True)):
        ax.imshow(f, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(f"filter {k}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"first convolution's {len(w)} filters ({w.shape[1]}x{w.shape[2]}; red > 0, blue < 0)",
                 fontsize=10)
    return fig


def feature_maps(model, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(name, channels (C, H, W)) after every Conv2d and MaxPool2d, for one uint8 image (28, 28), in eval mode."""
    model.eval()
    h = image.reshape(1, 1, *image.shape).astype(np.float64) / 255.0
    maps = []
    for i, layer in enumerate(model.layers):
        h = layer(h)
        if isinstance(layer, (Conv2d, MaxPool2d)):
            maps.append((f"layer {i}: {type(layer).__name__}", h[0]))
    return maps


def draw_feature_maps(plt: ModuleType, model, image: np.ndarray, label: int | None = None) -> object:
    """One row per Conv2d / MaxPool2d (a subfigure each, as many panels as channels), the digit on top."""
    maps = feature_maps(model, image)
    heights = [1.0] + [grid(len(m))[0] for _, m in maps]
    fig = plt.figure(figsize=(10, 1.45 * sum(heights) + 0.4))
    subs = fig.subfigures(len(heights), 1, height_ratios=heights)
    ax = subs[0].subplots(1, 1)
    ax.imshow(image, cmap="gray")
    ax.set_xticks([])
    ax.set_yticks([])
    subs[0].suptitle("input" + (f" (a {label})" if label is not None else ""), fontsize=10)
    for sub, (name, channels) in zip(subs[1:], maps, strict=True):
        # Conv outputs are signed (before the ReLU): a diverging scale; pooled maps (after ReLU) are >= 0.
        signed = channels.min() < 0
        limit = float(np.abs(channels).max()) or 1.0
        for k, (ax, c) in enumerate(zip(_panels(sub, len(channels)), channels, strict=True)):
            ax.imshow(c, cmap="RdBu_r" if signed else "gray", vmin=-limit if signed else 0, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(str(k), fontsize=7, pad=2)
        c, hh, ww = channels.shape
        how = "red > 0, blue < 0" if signed else "black = 0"
        sub.suptitle(f"{name}: {c} channels of {hh}x{ww} ({how})", fontsize=10)
    return fig
