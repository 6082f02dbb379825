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
    ### BEGIN SOLUTION
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ### END SOLUTION


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union: (A, 4) and (B, 4) xyxy -> (A, B).

    ``iou[i, j] = inter / (area1[i] + area2[j] - inter)`` where the intersection rectangle's
    width and height are clamped at 0 (disjoint boxes have intersection 0, never negative).
    Where the union is 0 (two zero-area boxes) the IoU is defined as 0, not NaN.
    """
    ### BEGIN SOLUTION
    lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (A, B, 2)
    rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter
    safe = torch.where(union > 0, union, torch.ones_like(union))
    return torch.where(union > 0, inter / safe, torch.zeros_like(inter))
    ### END SOLUTION


def box_xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h) with cx = (x1 + x2) / 2, w = x2 - x1; shape (M, 4)."""
    ### BEGIN SOLUTION
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)
    ### END SOLUTION


def box_cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) with x1 = cx - w / 2; shape (M, 4)."""
    ### BEGIN SOLUTION
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    order = torch.sort(-scores, stable=True).indices
    iou = box_iou(boxes, boxes)
    keep: list[int] = []
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)
    ### END SOLUTION


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression within each category: boxes of different ``idxs`` never suppress each other.

    Same visiting order and threshold rule as ``nms``. Returns the kept indices sorted by
    decreasing score, ties by increasing index (the order ``nms`` would visit them in).

    Args:
        boxes: (M, 4) xyxy. scores: (M,). idxs: (M,) int64 category of each box.
    Returns:
        (K,) int64 indices into ``boxes``.
    """
    ### BEGIN SOLUTION
    keep = torch.zeros(len(boxes), dtype=torch.bool)
    for c in torch.unique(idxs).tolist():
        members = torch.nonzero(idxs == c).flatten()
        keep[members[nms(boxes[members], scores[members], iou_threshold)]] = True
    kept = torch.nonzero(keep).flatten()  # increasing index
    return kept[torch.sort(-scores[kept], stable=True).indices]
    ### END SOLUTION
