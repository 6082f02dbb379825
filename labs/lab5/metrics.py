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
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("average_precision: not implemented yet")


def match_detections(boxes: Tensor, scores: Tensor, image_index: Tensor,
                     gt_boxes: Tensor, gt_index: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Greedy matching of one class's detections: (K,) 0/1 ``tp`` in decreasing-score order (stable)."""
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("match_detections: not implemented yet")


def mean_average_precision(boxes: Tensor, scores: Tensor, labels: Tensor, image_index: Tensor,
                           gt_boxes: Tensor, gt_labels: Tensor, gt_index: Tensor,
                           iou_threshold: float = 0.5, num_classes: int = 10) -> tuple[float, Tensor]:
    """mAP@iou_threshold and the AP of each class (NaN for a class without ground truth).

    Detections: boxes (K, 4), scores (K,), labels (K,), image_index (K,) (their canvas).
    Ground truth: gt_boxes (M, 4), gt_labels (M,), gt_index (M,).
    """
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("mean_average_precision: not implemented yet")
