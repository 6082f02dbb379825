"""Boxes, IoU and non-maximum suppression, in PyTorch.

Conventions (as in torchvision): a box is ``(x1, y1, x2, y2)`` in pixels ("xyxy"), with
``x1 <= x2`` and ``y1 <= y2``; its width is ``x2 - x1``. A box tensor has shape ``(M, 4)``.
Every function works for any floating dtype and returns tensors on the input's device.
"""

from __future__ import annotations

import torch  # noqa: F401 - your code needs it
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """Areas of boxes: (M, 4) xyxy -> (M,), ``(x2 - x1) * (y2 - y1)``."""
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("box_area: not implemented yet")


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union: (A, 4) and (B, 4) xyxy -> (A, B).

    ``iou[i, j] = inter / (area1[i] + area2[j] - inter)`` where the intersection rectangle's
    width and height are clamped at 0 (disjoint boxes have intersection 0, never negative).
    Where the union is 0 (two zero-area boxes) the IoU is defined as 0, not NaN.
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("box_iou: not implemented yet")


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h) with cx = (x1 + x2) / 2, w = x2 - x1; shape (M, 4)."""
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("box_xyxy_to_cxcywh: not implemented yet")


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) with x1 = cx - w / 2; shape (M, 4)."""
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("box_cxcywh_to_xyxy: not implemented yet")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, by decreasing score.

    Visit the boxes by decreasing score; ties in score are visited by increasing index (a
    stable sort of ``-scores``). A box is kept unless it overlaps an already kept box with IoU
    strictly greater than ``iou_threshold`` (kept when IoU <= threshold, as in torchvision).

    Args:
        boxes: (M, 4) xyxy. scores: (M,). iou_threshold: a float in [0, 1].
    Returns:
        (K,) int64 indices into ``boxes``, in the order they were kept.
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("nms: not implemented yet")


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category: boxes of different ``idxs`` never suppress each other.

    Same visiting order and threshold rule as ``nms``. Returns the kept indices sorted by
    decreasing score, ties by increasing index (the order ``nms`` would visit them in).

    Args:
        boxes: (M, 4) xyxy. scores: (M,). idxs: (M,) int64 category of each box.
    Returns:
        (K,) int64 indices into ``boxes``.
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("batched_nms: not implemented yet")
