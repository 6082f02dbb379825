"""Lab 5's known-mistake predictors: instructor-only (they hold the solution's math).

``tests/lab5/cases.py`` names these by key (``Mistake(description, instructor(key))``); each is a
plain function ``(inputs, expected) -> array`` giving what an implementation with that bug outputs
for the checked array. They run in the grading process only: ``gradelab fixtures lab5`` stores
their predictions for the public seeds, isolated grading computes them for hidden variants
(grader/authoring/fixtures.py). This folder is never released (grader/authoring/stubs.py: release rule).

Keys: ``<what>.<bug>`` (and ``.<output>`` where one bug shows in several outputs), e.g.
``iou.no_clamp`` or ``targets.last.cls``. Everything here is NumPy in float64, independent of the
reference's PyTorch code, so a prediction never depends on the code it judges.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Arrays = dict[str, np.ndarray]
Predictor = Callable[[Arrays, Arrays], np.ndarray]

# ----------------------------------------------------------------------------- boxes and IoU


def _area(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _iou(a: np.ndarray, b: np.ndarray, *, clamp: bool = True, subtract: bool = True,
         plus_one: float = 0.0) -> np.ndarray:
    """Pairwise IoU (A, 4) x (B, 4) -> (A, B), 0 where the union is 0, with switchable mistakes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = rb - lt + plus_one
    if clamp:
        wh = np.clip(wh, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda x: (x[:, 2] - x[:, 0] + plus_one) * (x[:, 3] - x[:, 1] + plus_one)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - (inter if subtract else 0.0)
    with np.errstate(all="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _xywh(b: np.ndarray) -> np.ndarray:
    """What a box (x, y, w, h) would be as xyxy: the bug of reading xyxy as xywh."""
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def _to_cxcywh(b: np.ndarray) -> np.ndarray:
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)


# IoU's mistakes as switches, so that any two of them can be predicted at once (they do not add up: an
# unclamped +1 overlap is not the sum of the two errors, which is all the engine's own pairing can try).
_IOU_SWITCHES: dict[str, dict[str, object]] = {
    "no_clamp": {"clamp": False}, "no_subtract": {"subtract": False}, "xywh": {"xywh": True},
    "plus_one": {"plus_one": 1.0},
}  # in the order of cases.py's _IOU_MISTAKES: its pair keys name them in this order


def _iou_with(i: Arrays, names: tuple[str, ...]) -> np.ndarray:
    flags: dict[str, object] = {}
    for name in names:
        flags.update(_IOU_SWITCHES[name])
    move = _xywh if flags.pop("xywh", False) else (lambda b: b)
    return _iou(move(i["a"]), move(i["b"]), **flags)  # type: ignore[arg-type]


def _iou_pair(a: str, b: str) -> Predictor:
    """IoU with mistakes ``a`` and ``b`` both; None where that equals one of them alone (then the single
    mistake is the evidence, not the pair)."""
    def predict(i: Arrays, e: Arrays) -> np.ndarray | None:
        both = _iou_with(i, (a, b))
        for one in (_iou_with(i, (a,)), _iou_with(i, (b,))):
            if np.all(np.abs(both - one) <= 1e-10 + 1e-7 * np.abs(one)):
                return None
        return both
    return predict


# ----------------------------------------------------------------------------- the head's coding


def _encode(boxes: np.ndarray, stride: float) -> tuple[np.ndarray, np.ndarray]:
    c = _to_cxcywh(boxes)
    col, row = np.floor(c[:, 0] / stride), np.floor(c[:, 1] / stride)
    off = np.stack([c[:, 0] / stride - col, c[:, 1] / stride - row,
                    np.log(c[:, 2] / stride), np.log(c[:, 3] / stride)], 1)
    return np.stack([row, col], 1), off


def _decode(cells: np.ndarray, off: np.ndarray, stride: float, swap: bool = False, exp: bool = True) -> np.ndarray:
    row, col = (cells[..., 1], cells[..., 0]) if swap else (cells[..., 0], cells[..., 1])
    cx, cy = (col + off[..., 0]) * stride, (row + off[..., 1]) * stride
    size = np.exp(off[..., 2:]) if exp else off[..., 2:]
    w, h = stride * size[..., 0], stride * size[..., 1]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def _targets(i: Arrays, rule: str, cells: np.ndarray | None = None,
             grid: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """build_targets' (obj, cls, tbox) where a shared cell goes to the ``rule`` box (``cells``: each box's
    (row, col), the student's own encode's, instead of the true ones; ``grid``: another grid size)."""
    boxes, labels, index = i["boxes"], i["labels"], i["image_index"]
    n, grid = int(i["n_images"]), int(i["grid"]) if grid is None else grid
    cells = _encode(boxes, float(i["stride"]))[0] if cells is None else cells
    obj, cls, tbox = np.zeros((n, grid, grid)), np.full((n, grid, grid), -1.0), np.zeros((n, grid, grid, 4))
    order = {"larger": sorted(range(len(boxes)), key=lambda k: (_area(boxes)[k], -k)),
             "last": list(range(len(boxes))), "first": list(range(len(boxes)))[::-1],
             "smaller": sorted(range(len(boxes)), key=lambda k: (-_area(boxes)[k], -k))}[rule]
    for k in order:  # later writes win
        r, c = int(cells[k, 0]), int(cells[k, 1])
        obj[index[k], r, c], cls[index[k], r, c], tbox[index[k], r, c] = 1, labels[k], boxes[k]
    return obj, cls, tbox


# ----------------------------------------------------------------------------- NMS


def _nms(boxes: np.ndarray, scores: np.ndarray, thr: float, *, by_score: bool = True,
         suppress: Callable[[np.ndarray, float], np.ndarray] = lambda iou, t: iou > t,
         iou: np.ndarray | None = None) -> np.ndarray:
    """Greedy NMS with switchable mistakes: visiting order and suppression rule (``iou``: a given
    IoU matrix, the student's own, instead of the true one)."""
    order = np.argsort(-scores, kind="stable") if by_score else np.arange(len(boxes))
    iou = _iou(boxes, boxes) if iou is None else iou
    keep, dead = [], np.zeros(len(boxes), dtype=bool)
    for k in order:
        if dead[k]:
            continue
        keep.append(int(k))
        dead |= suppress(iou[k], thr)
        dead[k] = True
    return np.array(keep, dtype=np.int64)


def _batched_given(i: Arrays, iou: np.ndarray) -> np.ndarray:
    """The reference batched_nms applied to a given (M, M) IoU matrix: NMS per category, kept
    indices by decreasing score (ties by increasing index)."""
    keep = np.zeros(len(i["boxes"]), dtype=bool)
    for c in np.unique(i["idxs"]):
        m = np.flatnonzero(i["idxs"] == c)
        keep[m[_nms(i["boxes"][m], i["scores"][m], _THR(i), iou=iou[np.ix_(m, m)])]] = True
    kept = np.flatnonzero(keep)
    return kept[np.argsort(-i["scores"][kept], kind="stable")].astype(np.int64)


def _batched_grouped(boxes: np.ndarray, scores: np.ndarray, idxs: np.ndarray, thr: float) -> np.ndarray:
    """batched_nms whose kept indices stay grouped by category (not sorted by score)."""
    kept: list[int] = []
    for c in np.unique(idxs):
        members = np.flatnonzero(idxs == c)
        kept += members[_nms(boxes[members], scores[members], thr)].tolist()
    return np.array(kept, dtype=np.int64)


# ----------------------------------------------------------------------------- GIoU loss


def _giou_loss(p: np.ndarray, t: np.ndarray, enclosing: bool = True, clamp: bool = True) -> np.ndarray:
    """1 - GIoU row by row, with switchable mistakes."""
    if not enclosing:
        return 1.0 - np.diag(_iou(p, t))
    wh = np.minimum(p[:, 2:], t[:, 2:]) - np.maximum(p[:, :2], t[:, :2])
    inter = (np.clip(wh, 0, None) if clamp else wh).prod(1)
    union = _area(p) + _area(t) - inter
    c = (np.maximum(p[:, 2:], t[:, 2:]) - np.minimum(p[:, :2], t[:, :2])).prod(1)
    return 2.0 - inter / union - union / c


def _giou_grad(p: np.ndarray, t: np.ndarray, g: np.ndarray, *, mask: bool = True,
               enclosing: bool = True) -> np.ndarray:
    """The GIoU loss's gradient w.r.t. p, by hand, with switchable mistakes."""
    iw = np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0])
    ih = np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = _area(p) + _area(t) - inter
    cw = np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])
    ch = np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1])
    big_c = cw * ch
    d_c = g * union / big_c**2 if enclosing else 0 * g  # enclosing=False: C treated as a constant
    d_union = g * inter / union**2 - g / big_c
    d_inter = -g / union - d_union
    m_w, m_h = (iw > 0, ih > 0) if mask else (True, True)
    d_iw, d_ih = d_inter * np.clip(ih, 0, None) * m_w, d_inter * np.clip(iw, 0, None) * m_h
    d_cw, d_ch = d_c * ch, d_c * cw
    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    dx1 = -d_union * h - d_iw * (p[:, 0] > t[:, 0]) - d_cw * (p[:, 0] < t[:, 0])
    dx2 = d_union * h + d_iw * (p[:, 2] < t[:, 2]) + d_cw * (p[:, 2] > t[:, 2])
    dy1 = -d_union * w - d_ih * (p[:, 1] > t[:, 1]) - d_ch * (p[:, 1] < t[:, 1])
    dy2 = d_union * w + d_ih * (p[:, 3] < t[:, 3]) + d_ch * (p[:, 3] > t[:, 3])
    return np.stack([dx1, dy1, dx2, dy2], 1)


# The GIoU loss and its gradient as sums of terms (cases.py: Terms(..., instructor("giou.terms")) and
# "giou_grad.terms"), each followed by its variants in the order cases.py describes them; the engine fits a
# wrong array against them (grader/judging/terms.py) when no known mistake matches.


def _giou_terms(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """loss = 1 - IoU + (area(C) - union) / area(C): the constant, the IoU term, the enclosing-box penalty;
    then the penalty's variant divided by the union instead of area(C)."""
    wh = np.clip(np.minimum(p[:, 2:], t[:, 2:]) - np.maximum(p[:, :2], t[:, :2]), 0, None)
    inter = wh.prod(1)
    union = _area(p) + _area(t) - inter
    c = (np.maximum(p[:, 2:], t[:, 2:]) - np.minimum(p[:, :2], t[:, :2])).prod(1)
    return np.stack([np.ones_like(inter), -inter / union, (c - union) / c, (c - union) / union])


def _giou_grad_terms(p: np.ndarray, t: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dpred through the intersection, through pred's area in the union, and through the enclosing box
    (loss = 2 - inter / union - union / C with union = area_p + area_t - inter); then the intersection
    term's variant without the union's share (dL/dinter = -g / union alone)."""
    zero = np.zeros_like(g)
    iw = np.minimum(p[:, 2], t[:, 2]) - np.maximum(p[:, 0], t[:, 0])
    ih = np.minimum(p[:, 3], t[:, 3]) - np.maximum(p[:, 1], t[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = _area(p) + _area(t) - inter
    cw = np.maximum(p[:, 2], t[:, 2]) - np.minimum(p[:, 0], t[:, 0])
    ch = np.maximum(p[:, 3], t[:, 3]) - np.minimum(p[:, 1], t[:, 1])
    d_union = g * inter / union**2 - g / (cw * ch)

    def through_inter(d_inter: np.ndarray) -> np.ndarray:
        d_iw, d_ih = d_inter * np.clip(ih, 0, None) * (iw > 0), d_inter * np.clip(iw, 0, None) * (ih > 0)
        return np.stack([-d_iw * (p[:, 0] > t[:, 0]), -d_ih * (p[:, 1] > t[:, 1]),
                         d_iw * (p[:, 2] < t[:, 2]), d_ih * (p[:, 3] < t[:, 3])], 1)

    w, h = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
    area = np.stack([-d_union * h, -d_union * w, d_union * h, d_union * w], 1)
    d_c = g * union / (cw * ch) ** 2
    d_cw, d_ch = d_c * ch, d_c * cw
    enclosing = np.stack([-d_cw * (p[:, 0] < t[:, 0]), -d_ch * (p[:, 1] < t[:, 1]),
                          d_cw * (p[:, 2] > t[:, 2]), d_ch * (p[:, 3] > t[:, 3])], 1)
    return np.stack([through_inter(-g / union - d_union), area, enclosing, through_inter(-g / union + zero)])


# ----------------------------------------------------------------------------- the detection loss


def _detection_loss(i: Arrays, obj_mean: bool = False, box_weight: float = 2.0,
                    boxes_given: np.ndarray | None = None) -> np.ndarray:
    """The detection loss (see detection_loss's docstring), with switchable mistakes (``boxes_given``:
    the decoded (N, G, G, 4) boxes of the student's own decode instead of the true ones)."""
    raw, obj, cls, tbox = i["raw"], i["obj"], i["cls"], i["tbox"]
    n, g = raw.shape[0], raw.shape[-1]
    z = raw[:, 0]
    bce = np.maximum(z, 0) - z * obj + np.log1p(np.exp(-np.abs(z)))
    loss = bce.mean() if obj_mean else bce.sum() / n
    pos = obj > 0.5
    if pos.any():
        logits = np.moveaxis(raw[:, 5:], 1, -1)[pos]
        lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        loss += float(np.mean(lse - logits[np.arange(len(logits)), cls[pos]]))
        rows, cols = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        off = np.stack([sig(raw[:, 1]), sig(raw[:, 2]), np.clip(raw[:, 3], -4, 4), np.clip(raw[:, 4], -4, 4)], -1)
        cells = np.broadcast_to(np.stack([rows, cols], -1), (n, g, g, 2))
        boxes = (_decode(cells, off, 8.0) if boxes_given is None else boxes_given)[pos]
        loss += box_weight * float(np.mean(_giou_loss(boxes, tbox[pos])))
    return np.array(loss)


# ----------------------------------------------------------------------------- AP and mAP


def _ap(tp: np.ndarray, n_gt: int, mode: str = "all") -> float:
    """AP of one class: all-point interpolation, none ("raw"), or 11-point ("11")."""
    tp = np.asarray(tp, dtype=np.float64)
    ctp = np.cumsum(tp)
    recall, precision = ctp / n_gt, ctp / np.arange(1, len(tp) + 1)
    if mode == "raw":
        return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))
    if mode == "11":
        return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0
                              for r in np.linspace(0, 1, 11)]))
    envelope = np.maximum.accumulate(np.concatenate([precision, [0.0]])[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * envelope[:-1]))


def _aps(i: Arrays, mode: str) -> np.ndarray:
    return np.array([_ap(t, int(n), mode) for t, n in zip(i["tp"], i["n_gt"], strict=True)])


def _map_aps(i: Arrays, *, rematch: bool = False, ignore_class: bool = False,
             iou: np.ndarray | None = None, strict: bool = False) -> np.ndarray:
    """AP per class (-1 without ground truth) under greedy matching, with switchable mistakes
    (``iou``: a given (detections, ground truth) IoU matrix, the student's own, instead of the true one)."""
    aps = []
    labels = np.zeros_like(i["labels"]) if ignore_class else i["labels"]
    for c in range(int(i["num_classes"])):
        gt = i["gt_labels"] == c
        if not gt.any():
            aps.append(-1.0)
            continue
        det = (labels == c) if not ignore_class else np.ones(len(labels), bool)
        b, s, idx = i["boxes"][det], i["scores"][det], i["image_index"][det]
        order = np.argsort(-s, kind="stable")
        used = np.zeros(int(gt.sum()), bool)
        tp = np.zeros(len(order))
        for r, d in enumerate(order):
            cand = np.flatnonzero((i["gt_index"][gt] == idx[d]) & (rematch | ~used))
            if len(cand):
                if iou is None:
                    ious = _iou(b[d:d + 1], i["gt_boxes"][gt][cand])[0]
                else:
                    ious = iou[np.flatnonzero(det)[d]][np.flatnonzero(gt)[cand]]
                if ious.max() > 0.5 if strict else ious.max() >= 0.5:
                    used[cand[int(np.argmax(ious))]] = True
                    tp[r] = 1
        aps.append(_ap(tp, int(gt.sum())))
    return np.array(aps)


def _mean_of(aps: np.ndarray) -> np.ndarray:
    valid = aps >= 0
    return np.array(aps[valid].mean() if valid.any() else 0.0)


# ----------------------------------------------------------------------------- the table

_THR = lambda i: float(i["iou_threshold"])  # noqa: E731
_STRIDE = lambda i: float(i["stride"])  # noqa: E731

PREDICTORS: dict[str, Predictor] = {
    "iou.no_clamp": lambda i, e: _iou(i["a"], i["b"], clamp=False),
    "iou.no_subtract": lambda i, e: _iou(i["a"], i["b"], subtract=False),
    "iou.xywh": lambda i, e: _iou(_xywh(i["a"]), _xywh(i["b"])),
    "iou.plus_one": lambda i, e: _iou(i["a"], i["b"], plus_one=1.0),
    "decode.swap": lambda i, e: _decode(i["cells"], i["offsets"], _STRIDE(i), swap=True),
    "decode.no_exp": lambda i, e: _decode(i["cells"], i["offsets"], _STRIDE(i), exp=False),
    # the round trip decodes the codes of the case's boxes (the reference's encode of them)
    "decode.swap.round_trip": lambda i, e: _decode(*_encode(i["boxes"], _STRIDE(i)), _STRIDE(i), swap=True),
    "decode.no_exp.round_trip": lambda i, e: _decode(*_encode(i["boxes"], _STRIDE(i)), _STRIDE(i), exp=False),
    "targets.last.cls": lambda i, e: _targets(i, "last")[1],
    "targets.first.cls": lambda i, e: _targets(i, "first")[1],
    "targets.last.tbox": lambda i, e: _targets(i, "last")[2],
    "targets.first.tbox": lambda i, e: _targets(i, "first")[2],
    "targets.smaller.cls": lambda i, e: _targets(i, "smaller")[1],
    "targets.smaller.tbox": lambda i, e: _targets(i, "smaller")[2],
    "encode.default_stride.cells": lambda i, e: _encode(i["boxes"], 8.0)[0],
    "encode.default_stride.offsets": lambda i, e: _encode(i["boxes"], 8.0)[1],
    "decode.default_stride": lambda i, e: _decode(i["cells"], i["offsets"], 8.0),
    "nms.fixed_half": lambda i, e: _nms(i["boxes"], i["scores"], 0.5),
    "batched.fixed_half": lambda i, e: _batched_given(
        {**i, "iou_threshold": np.array(0.5)}, _iou(i["boxes"], i["boxes"])),
    "nms.index_order": lambda i, e: _nms(i["boxes"], i["scores"], _THR(i), by_score=False),
    "nms.ge": lambda i, e: _nms(i["boxes"], i["scores"], _THR(i), suppress=lambda iou, t: iou >= t),
    "nms.reversed": lambda i, e: _nms(i["boxes"], i["scores"], _THR(i), suppress=lambda iou, t: iou <= t),
    "nms.increasing": lambda i, e: _nms(i["boxes"], -i["scores"], _THR(i)),
    "batched.no_categories": lambda i, e: _nms(i["boxes"], i["scores"], _THR(i)),
    "batched.grouped": lambda i, e: _batched_grouped(i["boxes"], i["scores"], i["idxs"], _THR(i)),
    "giou.no_enclosing": lambda i, e: _giou_loss(i["pred"], i["target"], enclosing=False),
    "giou.giou_itself": lambda i, e: 1.0 - _giou_loss(i["pred"], i["target"]),
    "giou.no_clamp": lambda i, e: _giou_loss(i["pred"], i["target"], clamp=False),
    "giou.terms": lambda i, e: _giou_terms(i["pred"], i["target"]),
    "giou_grad.terms": lambda i, e: _giou_grad_terms(i["pred"], i["target"], i["upstream"]),
    "giou_grad.no_mask": lambda i, e: _giou_grad(i["pred"], i["target"], i["upstream"], mask=False),
    "giou_grad.c_constant": lambda i, e: _giou_grad(i["pred"], i["target"], i["upstream"], enclosing=False),
    "giou_grad.no_upstream": lambda i, e: _giou_grad(i["pred"], i["target"], np.ones_like(i["upstream"])),
    "giou_grad.summed_upstream": lambda i, e: _giou_grad(i["pred"], i["target"],
                                                         np.full_like(i["upstream"], i["upstream"].sum())),
    "loss.obj_mean": lambda i, e: _detection_loss(i, obj_mean=True),
    "loss.no_box_weight": lambda i, e: _detection_loss(i, box_weight=1.0),
    "ap.raw": lambda i, e: _aps(i, "raw"),
    "ap.eleven_point": lambda i, e: _aps(i, "11"),
    "ap.by_detections": lambda i, e: np.array([_ap(t, len(t)) for t in i["tp"]]),
    "map_ap.rematch": lambda i, e: _map_aps(i, rematch=True),
    "map_ap.ignore_class": lambda i, e: _map_aps(i, ignore_class=True),
    "map.rematch": lambda i, e: _mean_of(_map_aps(i, rematch=True)),
    "map_ap.strict": lambda i, e: _map_aps(i, strict=True),
    "map.strict": lambda i, e: _mean_of(_map_aps(i, strict=True)),
}

PREDICTORS.update({f"iou.{a}.and.{b}": _iou_pair(a, b) for k, a in enumerate(_IOU_SWITCHES)
                   for b in list(_IOU_SWITCHES)[k + 1:]})

# ----------------------------------------------------------------------------- given the student's box_iou
# ``Given(earlier, outputs, key)`` in cases.py: the reference's later function applied to the student's own
# results of the earlier one, ``(inputs, given) -> {output: expected}`` (grader/judging/given.py).


def _given_targets(i: Arrays, g: Arrays) -> Arrays:
    """build_targets given the student's encode: the true rule applied to their cells; where a cell is outside
    the grid, the case did not call build_targets and returned its marker -1 everywhere (cases.py, OUTSIDE_GRID)."""
    out: Arrays = {}
    grid, n = int(i["grid"]), int(i["n_images"])
    for used, coarse in (("cells_used", False), ("coarse_cells_used", True)):
        if used not in g:
            continue
        cells = np.asarray(g[used], dtype=np.int64)
        size = grid // 2 if coarse else grid
        if cells.min(initial=0) < 0 or cells.max(initial=0) >= size:
            stacked = np.full((n, size, size, 6), -1.0)
        elif cells.shape == (len(i["boxes"]), 2):
            obj, cls, tbox = _targets(i, "larger", cells=cells, grid=size)
            stacked = np.concatenate([obj[..., None], cls[..., None], tbox], -1)
        else:
            continue
        if coarse:
            out["coarse"] = stacked
        else:
            out.update({"obj": stacked[..., 0], "cls": stacked[..., 1], "tbox": stacked[..., 2:]})
    return out


def _given_map(i: Arrays, g: Arrays) -> Arrays:
    aps = _map_aps(i, iou=g["iou_used"])
    return {"ap_per_class": aps, "map": _mean_of(aps)}


# An expected value named with this prefix is a mistake's prediction (grader/judging/case.py, MISTAKE_PREFIX): a
# given-function may return predictions re-made for the student's earlier results, which replace the stored ones.
_PREDICTION = "__mistake__/"


def _given_decode(i: Arrays, g: Arrays) -> Arrays:
    """decode_round_trip given the student's encode and box_cxcywh_to_xyxy: the reference's decode hands the
    right (cx, cy, w, h) to the conversion, so its result is the student's conversion of them (``xyxy_used``
    for the case's codes, ``xyxy_rt_used`` for their encode's codes of the boxes), and its gradient the one
    through their conversion (``doffsets_used``).

    Where the student's conversion is right on the case's codes (only encode differs), the decode mistakes'
    predictions are given again: of the case's codes as stored, of the round trip for the student's own codes."""
    out = {}
    for output, used in (("decoded", "xyxy_used"), ("round_trip", "xyxy_rt_used"), ("doffsets", "doffsets_used")):
        if used in g:
            out[output] = np.asarray(g[used], dtype=np.float64)
    right = _decode(i["cells"], i["offsets"], _STRIDE(i))
    used = np.asarray(g.get("xyxy_used", np.nan), dtype=np.float64)
    if used.shape == right.shape and np.all(np.abs(used - right) <= 1e-10 + 1e-7 * np.abs(right)):
        out.update({_PREDICTION + key: PREDICTORS[key](i, {}) for key in ("decode.swap", "decode.no_exp")})
        if "enc_cells" in g and "enc_offsets" in g:  # the same mistakes on the student's own codes of the boxes
            codes = np.asarray(g["enc_cells"]), np.asarray(g["enc_offsets"], dtype=np.float64)
            out[_PREDICTION + "decode.swap.round_trip"] = _decode(*codes, _STRIDE(i), swap=True)
            out[_PREDICTION + "decode.no_exp.round_trip"] = _decode(*codes, _STRIDE(i), exp=False)
    return out


PREDICTORS.update({
    # dL/draw through the student's decode: the case's GradCheck already holds it to the numerical gradient
    # of their own loss, and the loss value is held to the reference's on their decoded boxes.
    "given.loss": lambda i, g: {"loss": _detection_loss(i, boxes_given=g["boxes_used"]), "draw": g["draw"]},
    "given.nms": lambda i, g: {"keep": _nms(i["boxes"], i["scores"], _THR(i), iou=g["iou_used"])},
    "given.batched_nms": lambda i, g: {"keep": _batched_given(i, g["iou_used"])},
    "given.map": _given_map,
    "given.decode": _given_decode,
    "given.targets": _given_targets,
})
