"""Draws canvases with their true boxes (green) and your detector's boxes (red) into a PNG.

    cd labs && python -m lab5.show [--part A|B] [--out lab5_show.png] [--n 16] [--train 4000]

Trains your model as the grader does (``--train`` canvases, 4000 by default; fewer is quicker
but the model is then weaker and less sure of itself), runs it on held-out canvases and writes
a grid of them, scaled up 4x, with the ground truth in green and the predictions in red (part
B: boxes with score >= ``--min-score``), each labelled on a dark box: a true box's digit above
it, a prediction's digit and score below it.
``--no-train`` draws the ground truth only.
Needs the kit installed (``pip install -e .``) for the canvas generator; writes PNG itself
(zlib + struct), so no plotting library is needed.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch

from . import models

GREEN, RED = (40, 220, 40), (255, 70, 70)
#: Background of a label: near-black, so green and red glyphs stand out on the canvas and on digit strokes.
LABEL_BACKGROUND = (20, 20, 20)
# 3x5 glyphs for the labels and scores: each row is 3 bits, most significant bit on the left.
# They are drawn scaled up (``GLYPH_SCALE``) on a dark box, so a label reads at a glance.
_FONT = {"0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7],
         "4": [5, 5, 7, 1, 1], "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1],
         "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7], ".": [0, 0, 0, 0, 2], " ": [0, 0, 0, 0, 0]}
#: Each font pixel becomes a GLYPH_SCALE x GLYPH_SCALE block (3x5 -> 9x15 pixels).
GLYPH_SCALE = 3


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Writes an (H, W, 3) uint8 image as an 8-bit RGB PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(png)


def draw_box(img: np.ndarray, box: np.ndarray, color: tuple[int, int, int], scale: int) -> None:
    """A one-pixel rectangle outline, in place (box in canvas pixels, img scaled by ``scale``)."""
    h, w, _ = img.shape
    x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
    x1, x2 = np.clip([x1, x2 - 1], 0, w - 1)
    y1, y2 = np.clip([y1, y2 - 1], 0, h - 1)
    img[y1, x1:x2 + 1] = img[y2, x1:x2 + 1] = color
    img[y1:y2 + 1, x1] = img[y1:y2 + 1, x2] = color


def text_size(text: str, scale: int = GLYPH_SCALE) -> tuple[int, int]:
    """(height, width) in pixels of ``text`` drawn by ``draw_text``, with its background box."""
    return 7 * scale, (4 * len(text) + 1) * scale


def draw_text(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int],
              scale: int = GLYPH_SCALE) -> tuple[int, int, int, int]:
    """``text`` (digits, '.', ' ') on a dark box whose top-left corner is (x, y), in place.

    The box is moved inside the image when (x, y) would put part of it outside, so a label near
    an edge is still whole. Glyphs are 3x5 font pixels, each drawn as a ``scale`` x ``scale`` block,
    with one font pixel of spacing and of margin. Returns the box drawn: (x, y, width, height).
    """
    h, w = text_size(text, scale)
    x = int(np.clip(x, 0, max(img.shape[1] - w, 0)))
    y = int(np.clip(y, 0, max(img.shape[0] - h, 0)))
    img[y:y + h, x:x + w] = LABEL_BACKGROUND
    for i, ch in enumerate(text):
        for r, bits in enumerate(_FONT[ch]):
            for c in range(3):
                if bits >> (2 - c) & 1:
                    top, left = y + (r + 1) * scale, x + (1 + 4 * i + c) * scale
                    img[top:top + scale, left:left + scale] = color
    return x, y, w, h


def free_spot(x: int, y: int, size: tuple[int, int], taken: list[tuple[int, int, int, int]],
              shape: tuple[int, ...], step: int) -> tuple[int, int]:
    """The first of (x, y), (x, y + step), (x, y + 2 step), ... (then the same going the other way)
    where a label of ``size`` (height, width), kept inside ``shape``, overlaps none of ``taken``;
    (x, y) itself when every spot is taken. Labels of nearby boxes then do not cover one another."""
    h, w = size

    def inside(xx: int, yy: int) -> tuple[int, int]:
        return int(np.clip(xx, 0, max(shape[1] - w, 0))), int(np.clip(yy, 0, max(shape[0] - h, 0)))

    for k in (*range(0, 6), *range(-1, -6, -1)):
        xx, yy = inside(x, y + k * step)
        if all(xx + w <= tx or tx + tw <= xx or yy + h <= ty or ty + th <= yy for tx, ty, tw, th in taken):
            return xx, yy
    return inside(x, y)


def score_text(score: float) -> str:
    """A score in [0, 1] in three characters: ".93", "1.0"."""
    return "1.0" if score >= 0.995 else f"{score:.2f}"[1:]


def draw_digit(img: np.ndarray, digit: int, x: int, y: int, color: tuple[int, int, int]) -> None:
    """One digit label at (x, y) (``draw_text`` of a single digit)."""
    draw_text(img, str(int(digit)), x, y, color)


Labelled = tuple[np.ndarray, int] | tuple[np.ndarray, int, float]


def grid_image(images: np.ndarray, truth: list[list[tuple[np.ndarray, int]]],
               predicted: list[list[Labelled]], scale: int = 4, cols: int = 4) -> np.ndarray:
    """Canvases (N, H, W) uint8 with their boxes, tiled ``cols`` per row with a 4-pixel gap.

    A true box (green) has its digit just ABOVE its top-left corner; a predicted box (red) has
    its digit, and its score when given (``(box, label, score)``), just BELOW its bottom-left
    corner: a prediction on top of the true box leaves both labels readable.
    """
    n, h, w = images.shape
    rows = -(-n // cols)
    gap = 4
    out = np.full((rows * (h * scale + gap), cols * (w * scale + gap), 3), 255, dtype=np.uint8)
    label_h = text_size("0")[0]
    for k in range(n):
        tile = np.repeat(np.repeat(images[k], scale, 0), scale, 1)
        tile = np.stack([tile] * 3, -1)
        for box, _ in truth[k]:
            draw_box(tile, box, GREEN, scale)
        for box, *_ in predicted[k]:
            draw_box(tile, box, RED, scale)
        # Labels last, so that no box line crosses a label, each where no other label is.
        taken: list[tuple[int, int, int, int]] = []
        labels = [(str(int(label)), box[0], box[1] * scale - label_h, GREEN, -label_h) for box, label in truth[k]]
        labels += [(f"{int(label)} {score_text(score[0])}" if score else str(int(label)), box[0], box[3] * scale,
                    RED, label_h) for box, label, *score in predicted[k]]
        for text, x0, y, color, step in labels:
            x, y = free_spot(int(x0 * scale), int(round(y)), text_size(text), taken, tile.shape, step)
            taken.append(draw_text(tile, text, x, y, color))
        r, c = divmod(k, cols)
        out[r * (h * scale + gap):r * (h * scale + gap) + h * scale,
            c * (w * scale + gap):c * (w * scale + gap) + w * scale] = tile
    return out


def main(argv: list[str] | None = None) -> None:
    from grader.data import canvases as dd  # the kit's canvas generator

    ap = argparse.ArgumentParser(description="Draw canvases with true (green) and predicted (red) boxes.")
    ap.add_argument("--part", choices=["A", "B"], default="B")
    ap.add_argument("--out", default="lab5_show.png")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--train", type=int, default=4000, help="training canvases (the graded run uses 4000)")
    ap.add_argument("--min-score", type=float, default=0.2, help="part B: draw boxes with at least this score")
    ap.add_argument("--no-train", action="store_true", help="draw the ground truth only")
    args = ap.parse_args(argv)
    test = dd.lab5_canvases(args.part, "test", args.n, 1)
    truth = [[(b, int(c)) for b, c, i in zip(test.boxes, test.labels, test.image_index, strict=True) if i == k]
             for k in range(args.n)]
    predicted: list[list[tuple[np.ndarray, int]]] = [[] for _ in range(args.n)]
    if not args.no_train:
        train = dd.lab5_canvases(args.part, "train", args.train, 0)
        x = torch.from_numpy(test.images)
        if args.part == "A":
            model = models.fit_localizer(torch.from_numpy(train.images), torch.from_numpy(train.boxes),
                                         torch.from_numpy(train.labels), progress=True)
            boxes, labels = models.predict_localizer(model, x)
            predicted = [[(b.double().numpy(), int(c))] for b, c in zip(boxes, labels, strict=True)]
        else:
            model = models.fit_detector(torch.from_numpy(train.images), torch.from_numpy(train.boxes),
                                        torch.from_numpy(train.labels), torch.from_numpy(train.image_index),
                                        progress=True)
            predicted = [[(b.double().numpy(), int(c), float(s)) for b, s, c in zip(*det, strict=True)
                          if s >= args.min_score]
                         for det in models.detect(model, x)]
    write_png(Path(args.out), grid_image(test.images, truth, predicted))
    print(f"wrote {args.out}: {args.n} held-out canvases of part {args.part}, truth green, predictions red")


def unfinished(exc: NotImplementedError) -> str:
    """What to implement first, when the pictures reach code of yours that is still a stub."""
    return (f"lab5.show: your code is not finished yet: {exc}\n"
            "Implement it first (the public tests show what is missing: pytest tests/lab5)."
            )


if __name__ == "__main__":
    try:
        main()
    except NotImplementedError as exc:  # a stub, not a bug: say what to do instead of a traceback
        sys.exit(unfinished(exc))
