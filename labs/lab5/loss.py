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
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("GIoULoss.forward: not implemented yet")

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        """grad_output (M,) = dL/dloss -> (dL/dpred (M, 4), None), written by hand (no autograd).

        Chain rule through loss = 2 - inter / union - union / C: find dL/dinter, dL/dunion and
        dL/dC, then each corner's share. Where a min/max picks pred's coordinate, the gradient
        goes to pred; where the intersection's width or height is clamped at 0, it is 0.
        """
        pred, target = ctx.saved_tensors
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("GIoULoss.backward: not implemented yet")


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
    # TODO: your code here (see the docstring above).
    raise NotImplementedError("detection_loss: not implemented yet")
