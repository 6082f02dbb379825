"""The box coding of the detector's grid head (anchor-free, one box per cell).

The detector sees a 64x64 canvas and outputs a G x G grid (G = 8, ``STRIDE`` = 8 pixels per
cell). The cell that contains a box's centre is *responsible* for it:

    col = floor(cx / stride),  row = floor(cy / stride)

and the box is coded relative to that cell (all four numbers are what the head predicts):

    tx = cx / stride - col        in [0, 1): where in the cell the centre is
    ty = cy / stride - row
    tw = log(w / stride)          sizes on a log scale, in units of cells
    th = log(h / stride)

Decoding inverts it exactly: cx = (col + tx) * stride, w = stride * exp(tw), ...

The head's raw output for N canvases is ``(N, 5 + C, G, G)``: channel 0 the objectness logit,
channels 1-4 the box code before squashing (tx = sigmoid(raw[:, 1]), ty = sigmoid(raw[:, 2]),
tw = raw[:, 3], th = raw[:, 4]), channels 5.. the C class logits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .boxes import box_area, box_cxcywh_to_xyxy, box_xyxy_to_cxcywh  # noqa: F401 - your code needs it

STRIDE = 8
GRID = 8
NUM_CLASSES = 10
TW_LIMIT = 4.0  # decode_head clamps tw, th to [-4, 4]: exp() stays finite early in training


def encode(boxes: Tensor, stride: int = STRIDE) -> tuple[Tensor, Tensor]:
    """Codes boxes for the grid head.

    Args:
        boxes: (M, 4) xyxy with positive width and height, inside the canvas.
        stride: pixels per grid cell.
    Returns:
        cells: (M, 2) int64 ``(row, col)`` of the responsible cell.
        offsets: (M, 4) ``(tx, ty, tw, th)`` as in the module docstring, dtype of ``boxes``.
    """
    ### BEGIN SOLUTION
    cx, cy, w, h = box_xyxy_to_cxcywh(boxes).unbind(-1)
    col = torch.floor(cx / stride)
    row = torch.floor(cy / stride)
    offsets = torch.stack([cx / stride - col, cy / stride - row, torch.log(w / stride), torch.log(h / stride)], dim=-1)
    return torch.stack([row, col], dim=-1).to(torch.int64), offsets
    ### END SOLUTION


def decode(cells: Tensor, offsets: Tensor, stride: int = STRIDE) -> Tensor:
    """Inverse of ``encode``: cells (..., 2) ``(row, col)`` and offsets (..., 4) -> boxes (..., 4) xyxy.

    Works on any leading shape (the head decodes a whole (N, G, G) grid at once) and must be
    differentiable in ``offsets`` (the loss back-propagates through it).
    """
    ### BEGIN SOLUTION
    row, col = cells[..., 0].to(offsets.dtype), cells[..., 1].to(offsets.dtype)
    tx, ty, tw, th = offsets.unbind(-1)
    cxcywh = torch.stack([(col + tx) * stride, (row + ty) * stride,
                          stride * torch.exp(tw), stride * torch.exp(th)], dim=-1)
    return box_cxcywh_to_xyxy(cxcywh)
    ### END SOLUTION


def build_targets(boxes: Tensor, labels: Tensor, image_index: Tensor, n_images: int,
                  grid: int = GRID, stride: int = STRIDE) -> tuple[Tensor, Tensor, Tensor]:
    """The training targets of the grid head for a batch of canvases.

    Each box is assigned to its responsible cell (``encode``) on canvas ``image_index``.
    When two boxes of one canvas fall in the same cell, the box with the larger area is
    assigned; between equal areas, the box that comes first (lower index).

    Args:
        boxes: (M, 4) xyxy; labels: (M,) int64; image_index: (M,) int64 in [0, n_images).
    Returns:
        obj: (n_images, grid, grid), dtype of boxes: 1 at responsible cells, else 0.
        cls: (n_images, grid, grid) int64: the class at responsible cells, else -1.
        tbox: (n_images, grid, grid, 4) dtype of boxes: the assigned box (xyxy), else 0.
    """
    ### BEGIN SOLUTION
    obj = torch.zeros(n_images, grid, grid, dtype=boxes.dtype)
    cls = torch.full((n_images, grid, grid), -1, dtype=torch.int64)
    tbox = torch.zeros(n_images, grid, grid, 4, dtype=boxes.dtype)
    if len(boxes) == 0:
        return obj, cls, tbox
    cells, _ = encode(boxes, stride)
    area = box_area(boxes)
    # Later writes win: visit by increasing area, and among equal areas by decreasing index.
    order = sorted(range(len(boxes)), key=lambda k: (float(area[k]), -k))
    for k in order:
        n, r, c = int(image_index[k]), int(cells[k, 0]), int(cells[k, 1])
        obj[n, r, c] = 1
        cls[n, r, c] = labels[k]
        tbox[n, r, c] = boxes[k]
    return obj, cls, tbox
    ### END SOLUTION


def grid_cells(grid: int = GRID) -> Tensor:
    """(grid, grid, 2) int64: the ``(row, col)`` of every cell."""
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.stack([rows, cols], dim=-1)


def decode_head(raw: Tensor, stride: int = STRIDE) -> tuple[Tensor, Tensor, Tensor]:
    """Provided: the head's raw output (N, 5 + C, G, G) -> objectness logits (N, G, G),
    boxes (N, G, G, 4) xyxy (decoded with your ``decode``) and class logits (N, G, G, C)."""
    g = raw.shape[-1]
    offsets = torch.stack([torch.sigmoid(raw[:, 1]), torch.sigmoid(raw[:, 2]),
                           raw[:, 3].clamp(-TW_LIMIT, TW_LIMIT), raw[:, 4].clamp(-TW_LIMIT, TW_LIMIT)], dim=-1)
    boxes = decode(grid_cells(g).expand(raw.shape[0], g, g, 2), offsets, stride)
    return raw[:, 0], boxes, raw[:, 5:].permute(0, 2, 3, 1)
