"""Lab 5's grader against realistic detection bugs, and against correct alternatives.

Every bug is a patch of the reference (``patched_reference`` with lab="lab5"), graded in-process
on every case but the two training runs. For each we declare the exact set of cases that must
fail and, per failing case, substrings of the message that name the bug. The classes: single known
mistakes; two of box_iou's mistakes at once (named as the pair); errors no mistake lists, said in
GIoU's own terms (tests/lab5/cases.py, Terms); cascades (a bug in box_iou, encode, the conversion or
decode costs only its own cases: the later ones are judged given the student's own results, and a
crash or a gradient they cause says where it comes from); regimes (an ignored stride, grid or
threshold, a squeeze() on one box: each fails a public case, not only a hidden variant). Correct
alternatives (IoU by loops, batched NMS by the coordinate-offset trick, AP by a loop, decode without
the conversion, NMS by filtering, GIoU backward by the quotient rule, ...) keep full marks. The
untouched stubs score 0. The two training cases' Metric checks are exercised on made-up outputs
(perfect, empty, malformed) without training.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import LabResult, grade

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

LAB = load_cases("lab5", paths.tests_dir())
POINTS = {c.name: c.points for c in LAB.cases}
TRAINING = ("localizer_accuracy", "detector_map")
FAST = [c.name for c in LAB.cases if c.name not in TRAINING]
FAST_MAX = 100 - sum(POINTS[c] for c in TRAINING)

BX, CO, LO, ME = "boxes.py", "coding.py", "loss.py", "metrics.py"
# Reference lines the patches replace (each must occur exactly once in its file).
IOU_CLAMP = "wh = (rb - lt).clamp(min=0)"
IOU_UNION = "union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter"
IOU_LT = "    lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (A, B, 2)\n"
TO_XYXY = "return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)"
NMS_ORDER = "    order = torch.sort(-scores, stable=True).indices\n    iou = box_iou(boxes, boxes)"
NMS_RULE = "suppressed |= iou[i] > iou_threshold"
BATCHED = "    keep = torch.zeros(len(boxes), dtype=torch.bool)\n"
ENVELOPE = "envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])"
UNUSED = "cand = torch.nonzero((gt_index == image_index[d]) & ~used).flatten()"
CELLS = "return torch.stack([row, col], dim=-1).to(torch.int64), offsets"
LOG_SIZES = "torch.log(w / stride), torch.log(h / stride)"
DECODE_CELLS = "row, col = cells[..., 0].to(offsets.dtype), cells[..., 1].to(offsets.dtype)"
ASSIGN = "order = sorted(range(len(boxes)), key=lambda k: (float(area[k]), -k))"
MASK_W = 'd_iw = d_inter * p["ih"].clamp(min=0) * (p["iw"] > 0)'
MASK_H = 'd_ih = d_inter * p["iw"].clamp(min=0) * (p["ih"] > 0)'
D_C = "d_c = g * union / big_c**2"
UPSTREAM = 'g, inter, union, big_c = grad_output, p["inter"], p["union"], p["enclosing"]'
ENCODE_BODY = ("col = torch.floor(cx / stride)\n    row = torch.floor(cy / stride)\n    offsets = torch.stack("
               "[cx / stride - col, cy / stride - row, torch.log(w / stride), torch.log(h / stride)], dim=-1)")
DECODE_BODY = ("cxcywh = torch.stack([(col + tx) * stride, (row + ty) * stride,\n"
               "                          stride * torch.exp(tw), stride * torch.exp(th)], dim=-1)")
TARGETS_START = "    obj = torch.zeros(n_images, grid, grid, dtype=boxes.dtype)\n"
IOU_RETURN = "return torch.where(union > 0, inter / safe, torch.zeros_like(inter))"
AREA = "return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])"
D_INTER = "d_inter = -g / union - d_union  # union = area_p + area_t - inter"
GIOU_FWD = 'return 2.0 - p["inter"] / p["union"] - p["union"] / p["enclosing"]'
OBJ_SUM = 'loss = F.binary_cross_entropy_with_logits(obj_logit, obj.to(raw.dtype), reduction="sum") / n'

NO_CLAMP = "not clamped at 0"
XYWH = "read as (x, y, w, h)"
NO_SUBTRACT = "without subtracting the intersection"
NOT_BY_SCORE = "visited in index order, not by decreasing score"
GE = "suppressed when IoU >= threshold"
REVERSED = "the comparison is reversed"
NO_CATEGORIES = "the categories are ignored"
NO_INTERP = "no interpolation"
REMATCH = "matched more than once"
COL_ROW = "(col, row) instead of (row, col)"
NO_LOG = "without the log"
DECODE_SWAP = "the cells read as (col, row)"
LAST_WINS = "the later box wins"
NO_MASK = "not masked where its width or height is clamped at 0"
C_CONST = "the enclosing box C is treated as a constant"
NO_UPSTREAM = "grad_output is ignored"
IOU_LOSS = "1 - IoU: the enclosing-box term"
OBJ_MEAN = "the objectness BCE is averaged over all cells"
GRAD = "numerical gradient"
FIRST_WINS = "the first box wins regardless of area"
SMALLER_WINS = "the SMALLER box wins"
STRICT = "a detection matched only when IoU > 0.5"
MATCH_RULE = "if ious[best] >= iou_threshold:"
PLUS_ONE = "the +1 pixel convention"
PENALTY_SIGN = "the enclosing-box penalty (area(C) - union) / area(C), which has the wrong sign"
ENCLOSING_SIGN = "the enclosing-box term (dL/dC times dC/dpred), which has the wrong sign"
WITHOUT_UNION_SHARE = "the intersection term (dL/dinter times dinter/dpred), which is without the union's share"
IGNORED_STRIDE = "the stride argument is ignored"
GIOU_DISAGREE = "your GIoULoss's backward and forward disagree on this case's boxes"
GIOU_INHERITED = "your GIoULoss.backward disagrees with the numerical gradient of your GIoULoss.forward"
IGNORED_THRESHOLD = "the iou_threshold argument is ignored"
TWO_MISTAKES = "two known mistakes at once"
DECODE_GIVEN_NOTE = ("judged given your own encode or box_cxcywh_to_xyxy's results, so the failure above is in "
                     "decode_round_trip's own logic")
IOU_GIVEN_NOTE = "judged given your own box_iou's results, so the failure above is in {}'s own logic"


def bug(bug_id: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, list[str]]):
    """One bug: its patches, and {case expected to fail: substrings its message must contain}."""
    return pytest.param(patches, fails, id=bug_id)


BUGS = [
    bug("iou-intersection-not-clamped", {BX: [(IOU_CLAMP, "wh = rb - lt")]}, {
        # Two disjoint boxes get a positive "overlap" (negative width times negative height): NMS
        # suppresses boxes it must keep. The greedy mAP matching happens to pick the same pairs.
        # nms, batched_nms and mAP are judged given the student's own box_iou: the bug costs its own cases only.
        "box_iou_random": [NO_CLAMP], "box_iou_edge_cases": [NO_CLAMP],
    }),
    bug("iou-plus-one-pixel-convention", {BX: [
        ("wh = (rb - lt).clamp(min=0)", "wh = (rb - lt + 1).clamp(min=0)"),
        (IOU_UNION, "area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)\n"
                    "    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter")]}, {
        "box_iou_random": [PLUS_ONE], "box_iou_edge_cases": [PLUS_ONE],
    }),
    bug("iou-plus-one-and-nms-not-sorted-by-score", {BX: [
        ("wh = (rb - lt).clamp(min=0)", "wh = (rb - lt + 1).clamp(min=0)"),
        (IOU_UNION, "area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)\n"
                    "    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter"),
        (NMS_ORDER, "    order = torch.arange(len(boxes))\n    iou = box_iou(boxes, boxes)")]}, {
        # nms judged given the student's +1 IoU still fails, for its own order, and says box_iou was not the cause.
        "box_iou_random": [PLUS_ONE], "box_iou_edge_cases": [PLUS_ONE],
        "nms_random": [IOU_GIVEN_NOTE.format("nms_random")],
        "nms_edge_cases": [IOU_GIVEN_NOTE.format("nms_edge_cases")],
        "batched_nms_categories": [IOU_GIVEN_NOTE.format("batched_nms_categories")],
    }),
    bug("iou-plus-one-and-not-clamped", {BX: [
        ("wh = (rb - lt).clamp(min=0)", "wh = rb - lt + 1"),
        (IOU_UNION, "area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)\n"
                    "    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter")]}, {
        # two known mistakes at once, whose errors do not add up: named as the pair
        "box_iou_random": [TWO_MISTAKES, PLUS_ONE, NO_CLAMP], "box_iou_edge_cases": [TWO_MISTAKES, PLUS_ONE, NO_CLAMP],
    }),
    bug("iou-boxes-read-as-xywh", {BX: [(IOU_LT, (
        "    boxes1 = torch.cat([boxes1[:, :2], boxes1[:, :2] + boxes1[:, 2:]], 1)\n"
        "    boxes2 = torch.cat([boxes2[:, :2], boxes2[:, :2] + boxes2[:, 2:]], 1)\n") + IOU_LT)]}, {
        "box_iou_random": [XYWH], "box_iou_edge_cases": [XYWH],
    }),
    bug("iou-union-without-intersection", {BX: [(IOU_UNION, IOU_UNION.replace(" - inter", ""))]}, {
        "box_iou_random": [NO_SUBTRACT], "box_iou_edge_cases": [NO_SUBTRACT],
    }),
    bug("cxcywh-centre-used-as-corner", {BX: [(TO_XYXY, "return torch.stack([cx, cy, cx + w, cy + h], dim=-1)")]}, {
        # detection_loss is judged given the student's decode (through decode_head), and decode given the
        # student's box_cxcywh_to_xyxy: charged in box_conversions only
        "box_conversions": ["the centre used as the top-left corner"],
    }),
    bug("nms-not-sorted-by-score", {BX: [(NMS_ORDER, "    order = torch.arange(len(boxes))\n"
                                                     "    iou = box_iou(boxes, boxes)")]}, {
        "nms_random": [NOT_BY_SCORE], "nms_edge_cases": [NOT_BY_SCORE], "batched_nms_categories": ["batched_nms"],
    }),
    bug("nms-suppresses-at-equal-iou", {BX: [(NMS_RULE, "suppressed |= iou[i] >= iou_threshold")]}, {
        "nms_edge_cases": [GE],
    }),
    bug("nms-keeps-the-overlapping-boxes", {BX: [(NMS_RULE, "suppressed |= iou[i] <= iou_threshold")]}, {
        "nms_random": [REVERSED], "nms_edge_cases": [REVERSED], "batched_nms_categories": ["batched_nms"],
    }),
    bug("batched-nms-ignores-categories", {BX: [(BATCHED, "    return nms(boxes, scores, iou_threshold)\n"
                                                          + BATCHED)]}, {
        "batched_nms_categories": [NO_CATEGORIES],
    }),
    bug("ap-without-interpolation", {ME: [(ENVELOPE, "envelope = precision")]}, {
        "average_precision_interpolation": [NO_INTERP], "map_fixed_predictions": ["mean_average_precision"],
    }),
    bug("map-matches-a-ground-truth-twice", {ME: [(UNUSED, "cand = torch.nonzero(gt_index == image_index[d])"
                                                           ".flatten()")]}, {
        "map_fixed_predictions": [REMATCH],
    }),
    bug("encode-col-row-swapped", {CO: [(CELLS, "return torch.stack([col, row], dim=-1).to(torch.int64), offsets")]}, {
        # the round trip and build_targets are judged given the student's own encode: not charged there
        "encode_boxes": [COL_ROW],
    }),
    bug("encode-sizes-without-log", {CO: [(LOG_SIZES, "w / stride, h / stride")]}, {
        "encode_boxes": [NO_LOG],
    }),
    bug("decode-inconsistent-with-encode", {CO: [(DECODE_CELLS, "col, row = cells[..., 0].to(offsets.dtype), "
                                                                "cells[..., 1].to(offsets.dtype)")]}, {
        "decode_round_trip": [DECODE_SWAP, "decode must invert encode exactly"],
    }),
    bug("encode-without-log-and-decode-swapped", {CO: [
            (LOG_SIZES, "w / stride, h / stride"),
            (DECODE_CELLS, "col, row = cells[..., 0].to(offsets.dtype), cells[..., 1].to(offsets.dtype)")]}, {
        # judged given the student's own encode, decode still fails for its own swap, and says so
        "encode_boxes": [NO_LOG],
        "decode_round_trip": [DECODE_SWAP, DECODE_GIVEN_NOTE],
    }),
    # Regimes: each hidden variant's kind of input has a public case (tests/lab5/cases.py), so these fail publicly.
    bug("encode-ignores-its-stride", {CO: [(ENCODE_BODY, ENCODE_BODY.replace("/ stride", "/ STRIDE"))]}, {
        # build_targets is judged given the student's own encode
        "encode_boxes": [IGNORED_STRIDE],
    }),
    bug("decode-ignores-its-stride", {CO: [(DECODE_BODY, DECODE_BODY.replace("stride", "STRIDE"))]}, {
        "decode_round_trip": [IGNORED_STRIDE],
    }),
    bug("targets-ignore-their-grid", {CO: [(TARGETS_START, "    grid = GRID\n" + TARGETS_START)]}, {
        "build_targets_assignment": ["shape: expected (3, 4, 4, 6), got (3, 8, 8, 6)"],
    }),
    bug("nms-threshold-fixed-at-half", {BX: [(NMS_RULE, "suppressed |= iou[i] > 0.5")]}, {
        "nms_random": [IGNORED_THRESHOLD], "batched_nms_categories": [IGNORED_THRESHOLD],
    }),
    bug("iou-squeezed", {BX: [(IOU_RETURN, IOU_RETURN + ".squeeze()")]}, {
        "box_iou_random": ["shape: expected (1, 7), got (7,)", "shape: expected (5, 1), got (5,)"],
        # a crash in the student's mAP on one box (no result to judge given their box_iou), said to come from box_iou
        "map_fixed_predictions": ["your box_iou returns shape () for one box (expected (1, 1))"],
    }),
    bug("conversions-squeezed", {BX: [(TO_XYXY, TO_XYXY + ".squeeze()")]}, {
        "box_conversions": ["shape: expected (1, 4), got (4,)"],
    }),
    bug("area-squeezed", {BX: [(AREA, "return (" + AREA[len("return "):] + ").squeeze()")]}, {
        "box_area_values": ["shape: expected (1,), got ()"],
        # box_iou calls box_area: it crashes on one box, and says box_area is why
        "box_iou_random": ["your box_area returns shape () for one box (expected (1,))"],
        "map_fixed_predictions": ["your box_area returns shape () for one box (expected (1,))"],
    }),
    bug("giou-forward-squeezed", {LO: [(GIOU_FWD, "return (" + GIOU_FWD[len("return "):] + ").squeeze()")]}, {
        "giou_forward": ["shape: expected (1,), got ()"],
    }),
    bug("decode-not-differentiable", {CO: [("tx, ty, tw, th = offsets.unbind(-1)",
                                            "tx, ty, tw, th = offsets.detach().unbind(-1)")]}, {
        # the loss's gradient misses its box term: autograd through the student's loss cannot be judged given decode
        "decode_round_trip": ["no gradient reaches offsets"],
        "detection_loss_gradient": ["your decode passes no gradient back to the head output"],
    }),
    bug("targets-first-box-wins", {CO: [(ASSIGN, "order = range(len(boxes) - 1, -1, -1)")]}, {
        "build_targets_assignment": [FIRST_WINS],
    }),
    bug("targets-smaller-box-wins", {CO: [(ASSIGN, ASSIGN.replace("(float(area[k]), -k)", "(-float(area[k]), -k)"))]}, {
        "build_targets_assignment": [SMALLER_WINS],
    }),
    bug("map-matches-only-above-threshold", {ME: [(MATCH_RULE, MATCH_RULE.replace(">=", ">"))]}, {
        "map_fixed_predictions": [STRICT],
    }),
    bug("targets-later-box-wins", {CO: [(ASSIGN, "order = range(len(boxes))")]}, {
        "build_targets_assignment": [LAST_WINS],
    }),
    bug("giou-backward-without-clamp-mask", {LO: [(MASK_W, MASK_W.replace(' * (p["iw"] > 0)', "")),
                                                  (MASK_H, MASK_H.replace(' * (p["ih"] > 0)', ""))]}, {
        "giou_backward": [GRAD, NO_MASK],
    }),
    bug("giou-backward-enclosing-box-constant", {LO: [(D_C, "d_c = 0 * g")]}, {
        "giou_backward": [GRAD, C_CONST], "detection_loss_gradient": [GIOU_INHERITED],
    }),
    bug("giou-backward-ignores-upstream", {LO: [(UPSTREAM, UPSTREAM.replace(
            "grad_output,", "torch.ones_like(grad_output),"))]}, {
        "giou_backward": [GRAD, NO_UPSTREAM], "detection_loss_gradient": [GIOU_INHERITED],
    }),
    bug("giou-forward-is-iou-loss", {LO: [(GIOU_FWD, 'return 1.0 - p["inter"] / p["union"]')]}, {
        "giou_forward": [IOU_LOSS], "giou_backward": [GRAD], "detection_loss_gradient": [GIOU_DISAGREE],
    }),
    # Errors no known mistake lists, said in the formula's own terms (Terms in tests/lab5/cases.py)
    bug("giou-forward-penalty-sign-flipped", {LO: [(GIOU_FWD, 'return 1.0 - p["inter"] / p["union"] - '
                                                              '(p["enclosing"] - p["union"]) / p["enclosing"]')]}, {
        "giou_forward": [PENALTY_SIGN], "giou_backward": [GRAD], "detection_loss_gradient": [GIOU_DISAGREE],
    }),
    bug("giou-backward-enclosing-term-sign-flipped", {LO: [(D_C, "d_c = -g * union / big_c**2")]}, {
        "giou_backward": [ENCLOSING_SIGN, "the error is in backward"], "detection_loss_gradient": [GIOU_INHERITED],
    }),
    bug("giou-backward-inter-without-union-share", {LO: [(D_INTER, "d_inter = -g / union")]}, {
        "giou_backward": [WITHOUT_UNION_SHARE, "the error is in backward"],
        "detection_loss_gradient": [GIOU_INHERITED],
    }),
    bug("objectness-mean-over-cells", {LO: [(OBJ_SUM, OBJ_SUM.replace('reduction="sum") / n', 'reduction="mean")'))]}, {
        "detection_loss_gradient": [OBJ_MEAN],
    }),
]


def failed(result: LabResult) -> set[str]:
    return {c.name for c in result.cases if not c.passed}


def outputs(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def test_lab5_points() -> None:
    assert LAB.max_score == 100


def test_unpatched_reference_passes_every_fast_case(grade_bug) -> None:
    """The control: a copy of the reference with no patch scores full marks."""
    grade_bug(LAB, "reference", {}, {}, FAST)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("patches", "fails"), BUGS)
def test_bug_fails_exactly_its_cases_with_a_message_naming_it(grade_bug, request, patches, fails) -> None:
    grade_bug(LAB, request.node.callspec.id, patches, fails, FAST, every_case_named=False)


def test_at_least_twelve_bugs() -> None:
    ids = [p.id for p in BUGS]
    assert len(ids) == len(set(ids)) >= 12


# ----------------------------------------------------------------------------- correct alternatives

IOU_BODY_START = "    lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # (A, B, 2)\n"
AP_START = "    tp = tp.to(torch.float64)\n"
ALTERNATIVES = [
    pytest.param({BX: [(IOU_BODY_START, (
        "    out = torch.zeros(len(boxes1), len(boxes2), dtype=boxes1.dtype)\n"
        "    for i, a in enumerate(boxes1.tolist()):\n"
        "        for j, b in enumerate(boxes2.tolist()):\n"
        "            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))\n"
        "            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))\n"
        "            u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih\n"
        "            out[i, j] = iw * ih / u if u > 0 else 0.0\n"
        "    return out\n") + IOU_BODY_START)]}, id="iou-by-loops"),
    pytest.param({BX: [(BATCHED, (
        "    if len(boxes) == 0:\n"
        "        return torch.zeros(0, dtype=torch.int64)\n"
        "    # the offset trick: move each category far away so that categories never overlap\n"
        "    shifted = boxes + (idxs.to(boxes.dtype) * (boxes.max() - boxes.min() + 1))[:, None]\n"
        "    return nms(shifted, scores, iou_threshold)\n") + BATCHED)]}, id="batched-nms-offset-trick"),
    pytest.param({ME: [(AP_START, (
        "    hits, prev, ap = 0, 0.0, 0.0\n"
        "    prec, rec = [], []\n"
        "    for k, t in enumerate(tp.tolist(), 1):\n"
        "        hits += t\n"
        "        prec.append(hits / k)\n"
        "        rec.append(hits / n_gt)\n"
        "    for k in range(len(prec)):\n"
        "        ap += (rec[k] - prev) * max(prec[k:])\n"
        "        prev = rec[k]\n"
        "    return ap\n") + AP_START)]}, id="average-precision-by-loops"),
]


GIOU_BACKWARD_START = "        p = _giou_parts(pred, target)\n        g, inter, union, big_c"
ALTERNATIVES += [
    pytest.param({CO: [(DECODE_CELLS, (
        "tx, ty, tw, th = offsets.unbind(-1)\n"
        "    cx = (cells[..., 1].to(offsets.dtype) + tx) * stride\n"
        "    cy = (cells[..., 0].to(offsets.dtype) + ty) * stride\n"
        "    w, h = stride * torch.exp(tw), stride * torch.exp(th)\n"
        "    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)\n"
        "    " + DECODE_CELLS))]}, id="decode-without-box-cxcywh-to-xyxy"),
    pytest.param({CO: [("col = torch.floor(cx / stride)\n    row = torch.floor(cy / stride)",
                        "col = cx // stride\n    row = cy // stride")]}, id="encode-by-floor-division"),
    pytest.param({CO: [(ASSIGN, (
        "best = {}\n"
        "    for k in range(len(boxes)):  # one pass: keep the larger box per cell, the first among equals\n"
        "        key = (int(image_index[k]), int(cells[k, 0]), int(cells[k, 1]))\n"
        "        if key not in best or float(area[k]) > best[key][0]:\n"
        "            best[key] = (float(area[k]), k)\n"
        "    for (n, r, c), (_, k) in best.items():\n"
        "        obj[n, r, c], cls[n, r, c], tbox[n, r, c] = 1, labels[k], boxes[k]\n"
        "    return obj, cls, tbox\n"
        "    " + ASSIGN))]}, id="build-targets-best-per-cell"),
    pytest.param({BX: [(NMS_ORDER, (
        "    order = torch.sort(-scores, stable=True).indices\n"
        "    iou = box_iou(boxes, boxes)\n"
        "    kept = []\n"
        "    while len(order):  # keep the best left, drop what it suppresses\n"
        "        kept.append(int(order[0]))\n"
        "        order = order[1:][iou[order[0], order[1:]] <= iou_threshold]\n"
        "    return torch.tensor(kept, dtype=torch.int64)\n") + NMS_ORDER)]}, id="nms-by-filtering-the-order"),
    pytest.param({LO: [(GIOU_BACKWARD_START, (
        "        px1, py1, px2, py2 = pred.unbind(-1)\n"
        "        tx1, ty1, tx2, ty2 = target.unbind(-1)\n"
        "        p = _giou_parts(pred, target)\n"
        "        iw, ih = p['iw'].clamp(min=0), p['ih'].clamp(min=0)\n"
        "        inter, union, big_c = p['inter'], p['union'], p['enclosing']\n"
        "        # quotient rule on loss = 2 - I / U - U / C, with the derivatives of I, U and C per coordinate\n"
        "        d_i = torch.stack([-ih * (px1 > tx1) * (p['iw'] > 0), -iw * (py1 > ty1) * (p['ih'] > 0),\n"
        "                           ih * (px2 < tx2) * (p['iw'] > 0), iw * (py2 < ty2) * (p['ih'] > 0)], -1)\n"
        "        w, h = px2 - px1, py2 - py1\n"
        "        d_u = torch.stack([-h, -w, h, w], -1) - d_i\n"
        "        d_c = torch.stack([-p['ch'] * (px1 < tx1), -p['cw'] * (py1 < ty1), p['ch'] * (px2 > tx2),\n"
        "                           p['cw'] * (py2 > ty2)], -1)\n"
        "        i_, u_, c_ = inter[:, None], union[:, None], big_c[:, None]\n"
        "        grad = -(d_i * u_ - i_ * d_u) / u_**2 - (d_u * c_ - u_ * d_c) / c_**2\n"
        "        return grad_output[:, None] * grad, None\n") + GIOU_BACKWARD_START)]},
        id="giou-backward-by-the-quotient-rule"),
]


@pytest.mark.parametrize("patches", ALTERNATIVES)
def test_correct_alternative_keeps_full_marks(patched_reference, request, patches) -> None:
    root = patched_reference(request.node.callspec.id, patches, lab="lab5")
    result = grade(LAB, root, isolated=False, only=FAST)
    assert failed(result) == set(), outputs(result)


def test_untouched_stubs_score_zero() -> None:
    result = grade(LAB, paths.labs_dir(), isolated=False, only=FAST)
    assert result.score == 0, {c.name: c.output for c in result.cases if c.passed}
    assert all("NotImplementedError" in c.output or "raised" in c.output for c in result.cases)
    assert not any("fix that first" in c.output for c in result.cases)  # a stub is no evidence of a wrong shape


# ----------------------------------------------------------------------------- the training cases' checks

def _detector_case_inputs():
    import numpy as np

    from grader.data.canvases import lab5_canvases

    test = lab5_canvases("B", "test", 40, 0)
    return {"test_boxes": test.boxes, "test_labels": test.labels, "test_index": test.image_index,
            "test_images": test.images}, np


def _grader_metric():
    """What grading scores the training cases with: the reference's metric functions."""
    from grader.judging.case import MetricPackage
    from grader.runner import reference

    if not (paths.solutions_dir() / "lab5").is_dir():
        pytest.skip("no solutions/ (student release)")
    return MetricPackage(reference("lab5"), own=False)


def test_detector_metric_passes_perfect_and_fails_empty_and_malformed_outputs() -> None:
    from grader.judging.compare import evaluate

    grader_metric = _grader_metric()

    case = LAB.get("detector_map")
    inputs, np = _detector_case_inputs()
    perfect = {"det_boxes": inputs["test_boxes"], "det_scores": np.linspace(1, 0.5, len(inputs["test_boxes"])),
               "det_labels": inputs["test_labels"], "det_index": inputs["test_index"]}
    assert evaluate(case, inputs, perfect, {}, grader_metric) == []
    empty = {"det_boxes": np.zeros((0, 4)), "det_scores": np.zeros(0), "det_labels": np.zeros(0, np.int64),
             "det_index": np.zeros(0, np.int64)}
    [msg] = evaluate(case, inputs, empty, {}, grader_metric)
    assert "0.0000 is below the threshold 0.4200" in msg and "AP per digit" in msg and "0 detections" in msg
    assert "the reference detector" in msg
    shifted = {**perfect, "det_boxes": perfect["det_boxes"] + 30.0}  # every box misplaced
    assert "below the threshold" in evaluate(case, inputs, shifted, {}, grader_metric)[0]
    bad = {**perfect, "det_scores": np.zeros(3)}
    assert "could not be scored" in evaluate(case, inputs, bad, {}, grader_metric)[0]


def test_localizer_metric_names_what_is_wrong() -> None:
    import numpy as np

    from grader.data.canvases import lab5_canvases
    from grader.judging.compare import evaluate

    grader_metric = _grader_metric()

    case = LAB.get("localizer_accuracy")
    test = lab5_canvases("A", "test", 50, 0)
    inputs = {"test_boxes": test.boxes, "test_labels": test.labels}
    assert evaluate(case, inputs, {"pred_boxes": test.boxes, "pred_labels": test.labels}, {}, grader_metric) == []
    [msg] = evaluate(case, inputs, {"pred_boxes": test.boxes, "pred_labels": (test.labels + 1) % 10}, {}, grader_metric)
    assert "class right on 0.0000 of the canvases, IoU >= 0.5 on 1.0000" in msg
    swapped = {"pred_boxes": test.boxes[:, [1, 0, 3, 2]], "pred_labels": test.labels}
    [msg] = evaluate(case, inputs, swapped, {}, grader_metric)
    assert "class right on 1.0000" in msg
    assert "could not be scored" in evaluate(case, inputs, {"pred_boxes": test.boxes[:3],
                                                            "pred_labels": test.labels}, {}, grader_metric)[0]
    assert np.isfinite(case.checks[0].threshold)


def test_handout_example_message_is_what_the_grader_prints(patched_reference) -> None:
    """The handout quotes the terms hint of a GIoU backward whose enclosing-box term has the wrong sign."""
    text = (paths.labs_dir() / "lab5" / "README.md").read_text(encoding="utf-8")
    [example] = [line.strip() for line in text.splitlines() if line.strip().startswith("hint: fitted term by term")]
    root = patched_reference("giou-enclosing-sign-handout", {LO: [(D_C, "d_c = -g * union / big_c**2")]}, lab="lab5")
    result = grade(LAB, root, isolated=False, only=["giou_backward"])
    assert example in [line.strip() for line in result.cases[0].output.splitlines()], result.cases[0].output


def test_without_an_instructor_module_the_cascades_say_which_earlier_function_to_fix(
        patched_reference, monkeypatch) -> None:
    """A student's release has no solutions/: an encode bug then fails the cases built on encode too, each
    saying that encode (or the conversion) differs and is to be fixed first; graded, they pass (BUGS above)."""
    from grader.judging import given

    monkeypatch.setattr(given, "load_instructor", lambda lab: None)
    root = patched_reference("encode-swap-release", {CO: [
        (CELLS, "return torch.stack([col, row], dim=-1).to(torch.int64), offsets")]}, lab="lab5")
    result = grade(LAB, root, isolated=False, only=["encode_boxes", "decode_round_trip", "build_targets_assignment"])
    out = outputs(result)
    assert failed(result) == {"encode_boxes", "decode_round_trip", "build_targets_assignment"}, out
    assert "decode_round_trip is computed through your encode or box_cxcywh_to_xyxy, which differs from the " \
           "reference" in out["decode_round_trip"], out["decode_round_trip"]
    assert "fix encode or box_cxcywh_to_xyxy first" in out["decode_round_trip"]
    assert "build_targets_assignment is computed through your encode" in out["build_targets_assignment"]
    assert "fix encode first" in out["build_targets_assignment"]
