"""The detector's loss, with the GIoU loss as a custom autograd Function whose backward you write.

Generalised IoU (Rezatofighi et al., 2019) of two boxes P and T, with C the smallest box
enclosing both:

    GIoU = IoU - (area(C) - union) / area(C)             in (-1, 1]
    loss = 1 - GIoU = 2 - inter / union - union / area(C)

Unlike 1 - IoU it still has a gradient when P and T do not overlap (the enclosing box
shrinks when P moves towards T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401 - your code needs it
from torch import Tensor

from .coding import decode_head  # noqa: F401 - your code needs it

BOX_WEIGHT = 2.0  # weight of the GIoU term in detection_loss


def _giou_parts(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """The intermediate quantities of the GIoU loss, row by row (pred, target: (M, 4) xyxy)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    tx1, ty1, tx2, ty2 = target.unbind(-1)
    iw = torch.minimum(px2, tx2) - torch.maximum(px1, tx1)
    ih = torch.minimum(py2, ty2) - torch.maximum(py1, ty1)
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    area_p = (px2 - px1) * (py2 - py1)
    area_t = (tx2 - tx1) * (ty2 - ty1)
    union = area_p + area_t - inter
    cw = torch.maximum(px2, tx2) - torch.minimum(px1, tx1)
    ch = torch.maximum(py2, ty2) - torch.minimum(py1, ty1)
    return {"iw": iw, "ih": ih, "inter": inter, "union": union, "cw": cw, "ch": ch, "enclosing": cw * ch}


class GIoULoss(torch.autograd.Function):
    """loss[m] = 1 - GIoU(pred[m], target[m]) for (M, 4) xyxy boxes of positive width and height.

    The gradient flows to ``pred`` only (``target`` is data): backward returns (d pred, None).
    """

    @staticmethod
    def forward(ctx, pred: Tensor, target: Tensor) -> Tensor:
        """(M, 4), (M, 4) -> (M,) losses."""
        ctx.save_for_backward(pred, target)
        ### BEGIN SOLUTION
        p = _giou_parts(pred, target)
        return 2.0 - p["inter"] / p["union"] - p["union"] / p["enclosing"]
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        """grad_output (M,) = dL/dloss -> (dL/dpred (M, 4), None), written by hand (no autograd).

        Chain rule through loss = 2 - inter / union - union / C: find dL/dinter, dL/dunion and
        dL/dC, then each corner's share. Where a min/max picks pred's coordinate, the gradient
        goes to pred; where the intersection's width or height is clamped at 0, it is 0.
        """
        pred, target = ctx.saved_tensors
        ### BEGIN SOLUTION
        p = _giou_parts(pred, target)
        g, inter, union, big_c = grad_output, p["inter"], p["union"], p["enclosing"]
        d_c = g * union / big_c**2
        d_union = g * inter / union**2 - g / big_c
        d_inter = -g / union - d_union  # union = area_p + area_t - inter
        d_area_p = d_union
        px1, py1, px2, py2 = pred.unbind(-1)
        tx1, ty1, tx2, ty2 = target.unbind(-1)
        d_iw = d_inter * p["ih"].clamp(min=0) * (p["iw"] > 0)
        d_ih = d_inter * p["iw"].clamp(min=0) * (p["ih"] > 0)
        d_cw, d_ch = d_c * p["ch"], d_c * p["cw"]
        w, h = px2 - px1, py2 - py1
        dx1 = -d_area_p * h - d_iw * (px1 > tx1) - d_cw * (px1 < tx1)
        dx2 = d_area_p * h + d_iw * (px2 < tx2) + d_cw * (px2 > tx2)
        dy1 = -d_area_p * w - d_ih * (py1 > ty1) - d_ch * (py1 < ty1)
        dy2 = d_area_p * w + d_ih * (py2 < ty2) + d_ch * (py2 > ty2)
        return torch.stack([dx1, dy1, dx2, dy2], dim=-1), None
        ### END SOLUTION


def giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """(M,) per-box GIoU losses through your Function (so that your backward is used)."""
    return GIoULoss.apply(pred, target)


def detection_loss(raw: Tensor, obj: Tensor, cls: Tensor, tbox: Tensor, box_weight: float = BOX_WEIGHT) -> Tensor:
    """The detector's training loss: objectness + classification + box_weight * GIoU.

    With ``decode_head(raw)`` -> objectness logits (N, G, G), boxes (N, G, G, 4), class logits
    (N, G, G, C), and the targets of ``build_targets`` (P = the responsible cells, obj == 1):

        L_obj = sum over all N*G*G cells of BCE-with-logits(objectness, obj) / N
        L_cls = mean over P of cross-entropy(class logits, cls)
        L_box = mean over P of giou_loss(box, tbox)      (your Function)
        L     = L_obj + L_cls + box_weight * L_box       (L_cls = L_box = 0 when P is empty)

    Returns a scalar tensor.
    """
    ### BEGIN SOLUTION
    obj_logit, boxes, cls_logits = decode_head(raw)
    n = raw.shape[0]
    loss = F.binary_cross_entropy_with_logits(obj_logit, obj.to(raw.dtype), reduction="sum") / n
    pos = obj > 0.5
    if pos.any():
        loss = loss + F.cross_entropy(cls_logits[pos], cls[pos])
        loss = loss + box_weight * giou_loss(boxes[pos], tbox[pos].to(raw.dtype)).mean()
    return loss
    ### END SOLUTION
