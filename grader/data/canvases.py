"""MNIST detection canvases for Lab 5, and the grader's own box metrics.

The generator places bundled MNIST digits on grey canvases, deterministically from a seed:

* each digit is cut to its ink (pixels >= ``INK``), rescaled so that its longer side is
  ``s`` pixels (``s`` drawn from ``scale``), and pasted at a random place (max-composited);
* its box is tight around the ink of the pasted digit, in pixel corners ``(x1, y1, x2, y2)``
  with ``x2``/``y2`` exclusive (a digit covering columns 3..9 has x1 = 3, x2 = 10);
* a new digit whose box has IoU > ``max_iou`` with a box already on the canvas is placed
  elsewhere (up to 20 tries, then left out), so overlaps stay within a limit;
* light clutter: a few 5x5 to 8x8 fragments of other digits at a third of full intensity,
  below ``INK`` so they never count as ink of a box.

Training canvases are made from the training digits of ``grader.data.mnist``'s split and evaluation
canvases from its held-out digits, so no digit is in both; a course can pass its own split.
Everything a canvas set holds (which digits, how many per canvas, where, how big, the clutter)
follows from its seed. This module ships with the release, so the canvases of a public seed can
be regenerated, answers included: grading also evaluates on canvases of a seed drawn from the
instructor's hidden seeds (tests/lab5/cases.py), which any 62-bit integer may be.

Boxes of all canvases are returned flat: ``boxes (M, 4)`` float64, ``labels (M,)`` int64 and
``image_index (M,)`` int64 (which canvas each box belongs to): only numeric arrays, the form
the grading protocol carries.

This module is data only and ships with Lab 5's release: it holds no metric. The trained models
are scored with the lab's own metric functions, from the reference package in grading
(tests/lab5/cases.py, ``Metric.scored_by`` in grader/judging/case.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import mnist

INK = 96  # grey level (0..255) from which a pixel counts as ink of a digit
CLUTTER_LEVEL = 0.33  # clutter fragments at a third of full intensity: always below INK


@dataclass(frozen=True, eq=False)
class Canvases:
    """Generated canvases and their flat box annotations."""

    images: np.ndarray  # (N, size, size) uint8
    boxes: np.ndarray  # (M, 4) float64, xyxy pixel corners
    labels: np.ndarray  # (M,) int64 digits 0..9
    image_index: np.ndarray  # (M,) int64 canvas of each box


def _resize(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of a float image (pixel centres aligned), NumPy only."""
    h, w = img.shape
    ys = (np.arange(out_h) + 0.5) * h / out_h - 0.5
    xs = (np.arange(out_w) + 0.5) * w / out_w - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.clip(y0 + 1, 0, h - 1), np.clip(x0 + 1, 0, w - 1)
    wy = np.clip(ys - y0, 0.0, 1.0)[:, None]
    wx = np.clip(xs - x0, 0.0, 1.0)[None, :]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def _ink_crop(digit: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero((digit >= INK).any(axis=1))
    cols = np.flatnonzero((digit >= INK).any(axis=0))
    return digit[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float64)


def _glyph(digit: np.ndarray, size: int) -> np.ndarray:
    """The digit's ink crop rescaled so that its longer side is ``size`` pixels (float 0..255)."""
    crop = _ink_crop(digit)
    h, w = crop.shape
    k = size / max(h, w)
    return _resize(crop, max(1, round(h * k)), max(1, round(w * k)))


def _overlap_with(box: np.ndarray, placed: np.ndarray) -> np.ndarray:
    """How much a candidate box overlaps each placed box, as IoU (K,); every box here has ink,
    so a positive area, and no union is 0."""
    if len(placed) == 0:
        return np.zeros(0)
    across = np.clip(np.minimum(box[2], placed[:, 2]) - np.maximum(box[0], placed[:, 0]), 0, None)
    down = np.clip(np.minimum(box[3], placed[:, 3]) - np.maximum(box[1], placed[:, 1]), 0, None)
    shared = across * down
    size = (box[2] - box[0]) * (box[3] - box[1])
    sizes = (placed[:, 2] - placed[:, 0]) * (placed[:, 3] - placed[:, 1])
    return shared / (size + sizes - shared)


def make_canvases(images: np.ndarray, labels: np.ndarray, n: int, seed: int, *, size: int = 64,
                  digits: tuple[int, int] = (1, 1), scale: tuple[int, int] = (12, 40),
                  max_iou: float = 0.3, clutter: tuple[int, int] = (2, 5)) -> Canvases:
    """``n`` canvases with ``digits[0]..digits[1]`` digits each, drawn from ``images``/``labels``.

    Deterministic: the same arguments give the same canvases on every machine.
    """
    rng = np.random.default_rng(seed)
    canvases = np.zeros((n, size, size), dtype=np.float64)
    boxes, labs, index = [], [], []
    for i in range(n):
        canvas = canvases[i]
        for _ in range(int(rng.integers(clutter[0], clutter[1] + 1))):
            src = images[int(rng.integers(len(images)))].astype(np.float64)
            fh, fw = (int(v) for v in rng.integers(5, 9, size=2))
            y, x = int(rng.integers(0, 28 - fh)), int(rng.integers(0, 28 - fw))
            frag = src[y:y + fh, x:x + fw] * CLUTTER_LEVEL
            py, px = int(rng.integers(0, size - fh)), int(rng.integers(0, size - fw))
            np.maximum(canvas[py:py + fh, px:px + fw], frag, out=canvas[py:py + fh, px:px + fw])
        placed: list[np.ndarray] = []
        for _ in range(int(rng.integers(digits[0], digits[1] + 1))):
            k = int(rng.integers(len(images)))
            glyph = _glyph(images[k], int(rng.integers(scale[0], scale[1] + 1)))
            gh, gw = glyph.shape
            for _try in range(20):
                y, x = int(rng.integers(0, size - gh + 1)), int(rng.integers(0, size - gw + 1))
                ink = glyph >= INK
                rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
                box = np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], dtype=np.float64)
                if np.all(_overlap_with(box, np.array(placed).reshape(-1, 4)) <= max_iou):
                    break
            else:
                continue
            np.maximum(canvas[y:y + gh, x:x + gw], glyph, out=canvas[y:y + gh, x:x + gw])
            placed.append(box)
            boxes.append(box)
            labs.append(int(labels[k]))
            index.append(i)
    return Canvases(np.clip(np.rint(canvases), 0, 255).astype(np.uint8),
                    np.array(boxes, dtype=np.float64).reshape(-1, 4),
                    np.array(labs, dtype=np.int64), np.array(index, dtype=np.int64))


# What parts A and B of Lab 5 use. Part A: one digit per canvas; part B: 1-4 digits.
PART_A = {"digits": (1, 1), "scale": (16, 40)}
PART_B = {"digits": (1, 4), "scale": (12, 40)}


def lab5_canvases(part: str, split: str, n: int, seed: int, mnist_split: mnist.MnistSplit | None = None) -> Canvases:
    """Canvases of part "A" or "B" from the "train" or "test" (held-out) digits."""
    s = mnist_split or mnist.load_mnist()
    images, labels = (s.train_images, s.train_labels) if split == "train" else (s.test_images, s.test_labels)
    kwargs = PART_A if part == "A" else PART_B
    # The split is mixed into the seed so that train and test canvases differ in layout too.
    return make_canvases(images, labels, n, seed * 4 + (split == "test") * 2 + (part == "B"), **kwargs)

