"""Average precision and mAP@0.5, as in the PASCAL VOC evaluation (all-point interpolation).

For one class: sort the detections by decreasing score (ties by increasing index: a stable
sort), and match them greedily: each detection, in that order, takes the not-yet-matched
ground-truth box of its class on its canvas with the highest IoU, if that IoU >= 0.5; it is
then a true positive (tp = 1), else a false positive (tp = 0). After k detections,

    precision_k = TP_k / k,     recall_k = TP_k / n_gt.

AP is the area under the interpolated precision-recall curve: the precision at recall r is
replaced by the best precision at any recall >= r (the "envelope"), and summed over every
recall step:  AP = sum_k (recall_k - recall_{k-1}) * max_{j >= k} precision_j.
mAP is the mean of AP over the classes that have ground truth.
"""

from __future__ import annotations

import torch  # noqa: F401 - your code needs it
from torch import Tensor

from .boxes import box_iou  # noqa: F401 - your code needs it


def average_precision(tp: Tensor, n_gt: int) -> float:
    """VOC all-point AP of one class from ``tp`` (K,) 0/1, detections sorted by decreasing score.

    ``n_gt`` > 0 is the number of ground-truth boxes of the class (unmatched ones lower the
    recall). With no detections, AP is 0.
    """
    ### BEGIN SOLUTION
    tp = tp.to(torch.float64)
    ctp = torch.cumsum(tp, 0)
    k = torch.arange(1, len(tp) + 1, dtype=torch.float64)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), ctp / n_gt])
    precision = torch.cat([ctp / k, torch.zeros(1, dtype=torch.float64)])
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    return float(torch.sum((recall[1:] - recall[:-1]) * envelope[:-1]))
    ### END SOLUTION


def match_detections(boxes: Tensor, scores: Tensor, image_index: Tensor,
                     gt_boxes: Tensor, gt_index: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy matching of one class's detections: (K,) 0/1 ``tp`` in decreasing-score order (stable)."""
    ### BEGIN SOLUTION
    order = torch.sort(-scores, stable=True).indices
    used = torch.zeros(len(gt_boxes), dtype=torch.bool)
    tp = torch.zeros(len(order), dtype=torch.float64)
    for rank, d in enumerate(order.tolist()):
        cand = torch.nonzero((gt_index == image_index[d]) & ~used).flatten()
        if len(cand) == 0:
            continue
        ious = box_iou(boxes[d:d + 1], gt_boxes[cand])[0]
        best = int(torch.argmax(ious))
        if ious[best] >= iou_threshold:
            used[cand[best]] = True
            tp[rank] = 1.0
    return tp
    ### END SOLUTION


def mean_average_precision(boxes: Tensor, scores: Tensor, labels: Tensor, image_index: Tensor,
                           gt_boxes: Tensor, gt_labels: Tensor, gt_index: Tensor,
                           iou_threshold: float = 0.5, num_classes: int = 10) -> tuple[float, Tensor]:
    """mAP@iou_threshold and the AP of each class (NaN for a class without ground truth).

    Detections: boxes (K, 4), scores (K,), labels (K,), image_index (K,) (their canvas).
    Ground truth: gt_boxes (M, 4), gt_labels (M,), gt_index (M,).
    """
    ### BEGIN SOLUTION
    aps = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for c in range(num_classes):
        gt, det = gt_labels == c, labels == c
        if not gt.any():
            continue
        tp = match_detections(boxes[det], scores[det], image_index[det], gt_boxes[gt], gt_index[gt], iou_threshold)
        aps[c] = average_precision(tp, int(gt.sum()))
    valid = ~torch.isnan(aps)
    return (float(aps[valid].mean()) if valid.any() else 0.0), aps
    ### END SOLUTION
