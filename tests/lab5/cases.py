"""Lab 5 cases: object detection with PyTorch on generated MNIST canvases.

Each run function converts the NumPy inputs to tensors, calls the implementation and converts
the results back: the grading protocol carries only numeric arrays. Boxes are float64 in the
piece cases (gradient checks need it); the two training cases use float32 models.

The detection canvases come from ``grader.data.canvases`` (seeded, deterministic): training
canvases from the training digits, evaluation canvases from the held-out digits, whose boxes
and labels are private inputs (they never enter the sandbox). The trained models are scored
with the lab's metric functions taken from the reference package in grading (one source of
truth), never with the student's; only a local run of a release, which has no reference, scores
with the student's own functions, and says so.

Conventions the inputs follow: boxes with positive width and height unless a case is about
zero-area boxes; random upstream gradients; GIoU inputs at least 0.02 away from every min/max
tie and from the clamp of the intersection at 0, so central differences never straddle a kink.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grader.data import canvases as dd
from grader.judging.case import (
    Arrays,
    Close,
    Given,
    GradCheck,
    Lab,
    Metric,
    Mistake,
    Term,
    Terms,
    described,
    instructor,
)
from grader.judging.casekit import ConventionError
from grader.judging.gradcheck import numerical_gradient

try:
    import torch

    # backward() imports this (and sympy) lazily on its first call, which takes seconds: import
    # it here, while the sandboxed child starts, not inside the first timed case.
    import torch.fx.experimental.symbolic_shapes  # noqa: F401
except ImportError:  # the default install is small: lab 5 needs the torch extra
    torch = None

LAB = Lab("lab5", "Lab 5: object detection with PyTorch on MNIST canvases")

# Thresholds: the reference's worst held-out figure over training seeds 0-2 minus a margin for
# other reasonable designs, measured by `python scripts/lab5_measure.py --seeds 0 1 2 --threads 1`
# (quoted in the handout): part A 0.8060 / 0.8070 / 0.7970, part B 0.5082 / 0.5120 / 0.5000.
LOCALIZER_THRESHOLD = 0.75
LOCALIZER_REFERENCE = ("the reference localizer (4 conv blocks + 2 linear layers, 8 epochs of Adam) reaches "
                       "0.8033 on average over training seeds 0-2 (worst 0.7970)")
DETECTOR_THRESHOLD = 0.42
DETECTOR_REFERENCE = ("the reference detector (5 conv blocks + a 1x1 head, 12 epochs of Adam) reaches mAP@0.5 "
                      "0.5067 on average over training seeds 0-2 (worst 0.5000)")
TRAIN_THREADS = 1  # the training cases pin torch to one thread: the budget is measured that way
N_TRAIN_A, N_TEST_A, N_TRAIN_B, N_TEST_B = 4000, 1000, 4000, 500


# ----------------------------------------------------------------------------- helpers


def _torch() -> Any:
    if torch is None:
        raise ConventionError("Lab 5 needs PyTorch 2.13 (CPU): pip install torch==2.13.0, or "
                              "pip install -e '.[torch]' in the kit")
    return torch


def _t(a: np.ndarray) -> Any:
    """A NumPy input as a tensor (float64 stays float64, integers become int64)."""
    t = _torch().from_numpy(np.ascontiguousarray(a))
    return t.to(torch.int64) if a.dtype.kind in "iub" else t


def _np(value: Any, what: str) -> np.ndarray:
    """A returned tensor as a NumPy array (detached); anything else must already be array-like."""
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if value is None:
        raise ConventionError(f"{what} returned None: did the function forget to return?")
    return np.asarray(value)


def _index_array(value: Any, what: str) -> np.ndarray:
    arr = _np(value, what)
    if arr.dtype.kind not in "iu":
        raise ConventionError(f"{what} must return int64 indices (a LongTensor), got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


def single_box_problems(lab: Any, names: tuple[str, ...] = ("box_area", "box_iou")) -> str:
    """What the student's box_area and box_iou (of ``names``) return for one box, when that is not an array
    of one entry per box (a squeeze()): later functions that call them on one box fail for that reason.
    "" when fine, or when they raise (an error of their own: their cases report it)."""
    one = _t(np.array([[1.0, 2.0, 4.0, 7.0]]))
    calls = {"box_area": (lambda: lab.box_area(one), (1,)), "box_iou": (lambda: lab.box_iou(one, one), (1, 1))}
    found = []
    for name in names:
        call, want = calls[name]
        try:
            shape = tuple(_np(call(), name).shape)
        except Exception:  # noqa: BLE001 - not a shape problem
            continue
        if shape != want:
            found.append(f"your {name} returns shape {shape} for one box (expected {want})")
    return "; ".join(found)


def through_one_box(lab: Any, what: str, call: Any, names: tuple[str, ...] = ("box_area", "box_iou")) -> Any:
    """``call()``; when it raises and box_area or box_iou (of ``names``) return a wrong shape for one box, the
    error says so (the cause is charged in their own cases: fix them first)."""
    try:
        return call()
    except Exception as exc:
        problems = single_box_problems(lab, names)
        if problems:
            raise ConventionError(f"{what} raised {type(exc).__name__}: {exc}; {problems} (see box_area_values "
                                  "and box_iou_random): fix that first") from exc
        raise


def random_boxes(rng: np.random.Generator, m: int, extent: float = 32.0, min_size: float = 1.0,
                 max_size: float = 16.0) -> np.ndarray:
    """(m, 4) xyxy float64 boxes with positive sizes, corners in [0, extent + max_size]."""
    xy = rng.uniform(0, extent, size=(m, 2))
    wh = rng.uniform(min_size, max_size, size=(m, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def clustered(rng: np.random.Generator, m: int, n_clusters: int) -> Arrays:
    """Boxes jittered around a few centres (so that NMS has work), distinct random scores."""
    centres = random_boxes(rng, n_clusters, extent=48.0, min_size=6.0, max_size=16.0)
    boxes = centres[rng.integers(0, n_clusters, size=m)] + rng.normal(0, 1.5, size=(m, 4))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1.0)
    return {"boxes": boxes, "scores": rng.permutation(m) / m + rng.uniform(0, 0.5 / m, size=m)}


# ----------------------------------------------------------------------------- boxes


def area_inputs(m: int):
    def make(rng: np.random.Generator) -> Arrays:
        boxes = random_boxes(rng, m)
        boxes[: max(1, m // 4), 2] = boxes[: max(1, m // 4), 0]  # some zero-width boxes
        return {"boxes": boxes}
    return described(f"{m} boxes", make)


@LAB.case(points=2, inputs=area_inputs(8), hidden_inputs=(area_inputs(1), area_inputs(13)), checks=[
    Close("area", "box_area", mistakes=(
        Mistake("(x2 - x1 + 1) * (y2 - y1 + 1): the +1 pixel convention of old VOC code; here the "
                "width is x2 - x1", lambda i, e: (i["boxes"][:, 2] - i["boxes"][:, 0] + 1)
                * (i["boxes"][:, 3] - i["boxes"][:, 1] + 1)),
        Mistake("reading the boxes as (x, y, w, h): the area is (x2 - x1) * (y2 - y1) for xyxy boxes",
                lambda i, e: i["boxes"][:, 2] * i["boxes"][:, 3]),
    )),
    Close("area_one", "box_area of one box (M = 1): an array of shape (1,)"),
])
def box_area_values(lab, boxes):
    """box_area on (M, 4) xyxy boxes, a quarter of them with zero width, and on one box alone."""
    return {"area": _np(lab.box_area(_t(boxes)), "box_area"), "area_one": _np(lab.box_area(_t(boxes[:1])), "box_area")}


def with_pairs(mistakes: tuple[Mistake, ...]) -> tuple[Mistake, ...]:
    """The mistakes, then every two of them at once (instructor keys ``<what>.<a>.and.<b>``): their errors
    do not add up, so the engine's own pairing (sums of errors) cannot see them."""
    keys = [m.instructor_key or "" for m in mistakes]
    what = keys[0].split(".")[0]
    pairs = [Mistake(f"two known mistakes at once: {ma.description}; AND {mb.description}",
                     instructor(f"{what}.{ka.split('.', 1)[1]}.and.{kb.split('.', 1)[1]}"))
             for k, (ma, ka) in enumerate(zip(mistakes, keys, strict=True))
             for mb, kb in zip(mistakes[k + 1:], keys[k + 1:], strict=True)]
    return (*mistakes, *pairs)


_IOU_MISTAKES = with_pairs((
    Mistake("the intersection's width and height are not clamped at 0: two disjoint boxes get a "
            "'negative' overlap (and two negatives multiply to a positive area)", instructor("iou.no_clamp")),
    Mistake("the union is area1 + area2 without subtracting the intersection", instructor("iou.no_subtract")),
    Mistake("the boxes are read as (x, y, w, h) instead of (x1, y1, x2, y2)", instructor("iou.xywh")),
    Mistake("the +1 pixel convention (w = x2 - x1 + 1) of old VOC code; here w = x2 - x1",
            instructor("iou.plus_one")),
))


def iou_inputs(na: int, nb: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"a": random_boxes(rng, na, extent=24.0, max_size=20.0),
                "b": random_boxes(rng, nb, extent=24.0, max_size=20.0)}
    return described(f"A={na}, B={nb} boxes", make)


@LAB.case(points=7, inputs=iou_inputs(5, 7), hidden_inputs=(iou_inputs(1, 9), iou_inputs(6, 1)), checks=[
    Close("iou", "box_iou(a, b): the (A, B) matrix", mistakes=_IOU_MISTAKES),
    Close("iou_one_a", "box_iou(a[:1], b): one box on the left (A = 1), a (1, B) matrix"),
    Close("iou_one_b", "box_iou(a, b[:1]): one box on the right (B = 1), an (A, 1) matrix"),
])
def box_iou_random(lab, a, b):
    """box_iou on random overlapping and disjoint boxes, A=5 by B=7, and with one box on either side."""
    one_a = through_one_box(lab, "box_iou(a[:1], b)", lambda: lab.box_iou(_t(a[:1]), _t(b)), ("box_area",))
    one_b = through_one_box(lab, "box_iou(a, b[:1])", lambda: lab.box_iou(_t(a), _t(b[:1])), ("box_area",))
    return {"iou": _np(lab.box_iou(_t(a), _t(b)), "box_iou"), "iou_one_a": _np(one_a, "box_iou"),
            "iou_one_b": _np(one_b, "box_iou")}


# Hand-made pairs with known IoU (before the random shift and scale, which do not change it):
# identical, identical zero-area (union 0: IoU 0 by definition), disjoint, touching edges,
# one inside the other (16/64), half overlap (8/16 ... see expected in tests/engine).
EDGE_A = np.array([[0, 0, 4, 4], [2, 2, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 8, 8], [0, 0, 4, 4]], float)
EDGE_B = np.array([[0, 0, 4, 4], [2, 2, 2, 2], [5, 5, 7, 7], [2, 0, 4, 2], [2, 2, 6, 6], [0, 0, 4, 2]], float)
EDGE_IOU = np.array([1.0, 0.0, 0.0, 0.0, 16 / 64, 8 / 16])  # the diagonal of box_iou(EDGE_A, EDGE_B)


def edge_iou_inputs(rng: np.random.Generator) -> Arrays:
    shift = rng.integers(0, 40, size=2).astype(float)
    scale = float(2 ** rng.integers(0, 3))  # a power of two: every IoU stays exact
    move = lambda b: b * scale + np.tile(shift, 2)  # noqa: E731
    return {"a": move(EDGE_A), "b": move(EDGE_B)}


@LAB.case(points=3, inputs=edge_iou_inputs, hidden_inputs=(edge_iou_inputs,), checks=[
    Close("iou", "box_iou on edge cases (identical, zero-area, disjoint, touching, contained, half)",
          mistakes=_IOU_MISTAKES,
          explain="Two zero-area boxes have union 0: their IoU is defined as 0 (not NaN)."),
])
def box_iou_edge_cases(lab, a, b):
    """box_iou on hand-made pairs with known answers, shifted and scaled at random."""
    return {"iou": _np(lab.box_iou(_t(a), _t(b)), "box_iou")}


def convert_inputs(m: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"xyxy": random_boxes(rng, m), "cxcywh": np.concatenate(
            [rng.uniform(10, 50, size=(m, 2)), rng.uniform(1, 20, size=(m, 2))], axis=1)}
    return described(f"{m} boxes", make)


@LAB.case(points=4, inputs=convert_inputs(6), hidden_inputs=(convert_inputs(1), convert_inputs(11)), checks=[
    Close("cxcywh", "box_xyxy_to_cxcywh", mistakes=(
        Mistake("(x1, y1, w, h): the top-left corner instead of the centre",
                lambda i, e: np.concatenate([i["xyxy"][:, :2], i["xyxy"][:, 2:] - i["xyxy"][:, :2]], 1)),)),
    Close("xyxy", "box_cxcywh_to_xyxy", mistakes=(
        Mistake("(cx, cy, cx + w, cy + h): the centre used as the top-left corner",
                lambda i, e: np.concatenate([i["cxcywh"][:, :2], i["cxcywh"][:, :2] + i["cxcywh"][:, 2:]], 1)),
        Mistake("x1 = cx - w instead of cx - w / 2",
                lambda i, e: np.concatenate([i["cxcywh"][:, :2] - i["cxcywh"][:, 2:],
                                             i["cxcywh"][:, :2] + i["cxcywh"][:, 2:]], 1)),)),
    Close("round_trip", "box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(boxes)) == boxes"),
    Close("cxcywh_one", "box_xyxy_to_cxcywh of one box (M = 1): shape (1, 4)"),
    Close("xyxy_one", "box_cxcywh_to_xyxy of one box (M = 1): shape (1, 4)"),
])
def box_conversions(lab, xyxy, cxcywh):
    """xyxy <-> cxcywh both ways, the round trip, and both ways on one box alone."""
    return {"cxcywh": _np(lab.box_xyxy_to_cxcywh(_t(xyxy)), "box_xyxy_to_cxcywh"),
            "xyxy": _np(lab.box_cxcywh_to_xyxy(_t(cxcywh)), "box_cxcywh_to_xyxy"),
            "cxcywh_one": _np(lab.box_xyxy_to_cxcywh(_t(xyxy[:1])), "box_xyxy_to_cxcywh"),
            "xyxy_one": _np(lab.box_cxcywh_to_xyxy(_t(cxcywh[:1])), "box_cxcywh_to_xyxy"),
            "round_trip": _np(lab.box_cxcywh_to_xyxy(lab.box_xyxy_to_cxcywh(_t(xyxy))), "round trip")}


# ----------------------------------------------------------------------------- the head's coding


def canvas_boxes(rng: np.random.Generator, m: int, canvas: int = 64, stride: int = 8) -> np.ndarray:
    """Boxes inside the canvas, sizes 2-40, centres at least 0.05 cell away from cell borders."""
    wh = rng.uniform(2, 40, size=(m, 2))
    cells = rng.integers(0, canvas // stride, size=(m, 2))
    centre = (cells + rng.uniform(0.05, 0.95, size=(m, 2))) * stride
    half = np.minimum(wh / 2, np.minimum(centre, canvas - centre) - 0.01)
    return np.concatenate([centre - half, centre + half], axis=1)


IGNORED_STRIDE = "the stride argument is ignored: this is what the default STRIDE = 8 gives"


def encode_inputs(m: int, stride: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"boxes": canvas_boxes(rng, m, 64, stride), "stride": np.array(stride)}
    return described(f"{m} boxes, stride {stride}", make)


# The public encode and decode cases use stride 16, not the default 8: code that ignores its stride argument
# fails here, not only in a hidden variant (which use strides 8 and 4).
@LAB.case(points=7, inputs=encode_inputs(9, 16), hidden_inputs=(encode_inputs(1, 8), encode_inputs(12, 4)), checks=[
    Close("cells", "encode: the responsible cell (row, col)", exact=True, mistakes=(
        Mistake("(col, row) instead of (row, col): the row comes from the y coordinate",
                lambda i, e: e["cells"][:, ::-1]),
        Mistake(IGNORED_STRIDE, instructor("encode.default_stride.cells")),)),
    Close("offsets", "encode: the offsets (tx, ty, tw, th)", mistakes=(
        Mistake("tw = w / stride without the log (sizes are coded on a log scale)",
                lambda i, e: np.concatenate([e["offsets"][:, :2], np.exp(e["offsets"][:, 2:])], 1)),
        Mistake("offsets measured from the cell's centre (tx - 0.5): tx is measured from its top-left corner",
                lambda i, e: np.concatenate([e["offsets"][:, :2] - 0.5, e["offsets"][:, 2:]], 1)),
        Mistake("log(w) instead of log(w / stride): sizes are in units of cells",
                lambda i, e: np.concatenate([e["offsets"][:, :2],
                                             e["offsets"][:, 2:] + np.log(float(i["stride"]))], 1)),
        Mistake(IGNORED_STRIDE, instructor("encode.default_stride.offsets")),
        Mistake("the box's corner (x1, y1) instead of its centre decides the cell and the offsets",
                lambda i, e: np.concatenate([i["boxes"][:, :2] / float(i["stride"])
                                             - np.floor(i["boxes"][:, :2] / float(i["stride"])),
                                             e["offsets"][:, 2:]], 1)),
    )),
])
def encode_boxes(lab, boxes, stride):
    """encode: responsible cell and (tx, ty, tw, th) of boxes on a 64x64 canvas, stride 16."""
    cells, offsets = lab.encode(_t(boxes), int(stride))
    return {"cells": _index_array(cells, "encode (cells)").reshape(-1, 2).astype(np.float64),
            "offsets": _np(offsets, "encode (offsets)")}


def decode_inputs(shape: tuple[int, ...], stride: int):
    def make(rng: np.random.Generator) -> Arrays:
        m = int(np.prod(shape))
        return {"cells": rng.integers(0, 64 // stride, size=(*shape, 2)).astype(np.int64),
                "offsets": np.concatenate([rng.uniform(0.05, 0.95, size=(m, 2)),
                                           rng.uniform(-1.2, 1.2, size=(m, 2))], 1).reshape(*shape, 4),
                "boxes": canvas_boxes(rng, 7, 64, stride), "stride": np.array(stride),
                "upstream": rng.normal(0, 1, size=(*shape, 4))}
    return described(f"codes of shape {shape}, stride {stride}", make)


def _centres_sizes(cells: Any, offsets: Any, stride: int) -> Any:
    """(cx, cy, w, h) of codes, by the handout's formula (cx = (col + tx) * stride, w = stride * exp(tw)):
    what a decode hands to box_cxcywh_to_xyxy, so that decode can be judged given the student's own
    conversion (the formula is the handout's, not a solution)."""
    tt = _torch()
    where = cells.to(offsets.dtype)  # (row, col)
    return tt.stack([(where[..., 1] + offsets[..., 0]) * stride, (where[..., 0] + offsets[..., 1]) * stride,
                     stride * tt.exp(offsets[..., 2]), stride * tt.exp(offsets[..., 3])], dim=-1)


def _own_conversion(lab: Any, cells: Any, offsets: Any, stride: int) -> np.ndarray:
    """The student's box_cxcywh_to_xyxy of the right (cx, cy, w, h) of these codes (any leading shape)."""
    cxcywh = _centres_sizes(cells, offsets, stride)
    return _np(lab.box_cxcywh_to_xyxy(cxcywh.reshape(-1, 4)), "box_cxcywh_to_xyxy").reshape(cxcywh.shape)


def _offsets_gradient(boxes_of: Any, offsets: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """d sum(boxes_of(offsets) * upstream) / d offsets by autograd; zeros when no gradient reaches offsets
    (the boxes do not depend on them in autograd's eyes: a .detach(), .item() or NumPy inside)."""
    off = _t(offsets).clone().requires_grad_(True)
    boxes = boxes_of(off)
    if not (isinstance(boxes, _torch().Tensor) and boxes.requires_grad):
        return np.zeros_like(offsets)
    (grad,) = _torch().autograd.grad((boxes * _t(upstream)).sum(), off, allow_unused=True)
    return np.zeros_like(offsets) if grad is None else _np(grad, "decode's gradient")


# decode calls box_cxcywh_to_xyxy, and the round trip goes through encode: both are charged in their
# own cases. The case is judged given the student's own results of both (instructor "given.decode":
# the reference's decode is the handout's centres and sizes through the student's conversion).
DECODE_GIVEN = Given("encode or box_cxcywh_to_xyxy", ("enc_cells", "enc_offsets", "xyxy_used", "xyxy_rt_used"),
                     "given.decode")


@LAB.case(points=5, inputs=decode_inputs((2, 3), 16), hidden_inputs=(decode_inputs((5,), 4), decode_inputs((1, 1), 8)),
          given=DECODE_GIVEN, checks=[
    Close("doffsets", "decode is differentiable in offsets: d sum(decode(cells, offsets) * upstream) / d offsets "
                      "by autograd", mistakes=(
        Mistake("no gradient reaches offsets: decode is not differentiable (a .detach(), .item(), "
                "torch.tensor(...) or NumPy inside it); the loss back-propagates through decode",
                lambda i, e: np.zeros_like(e["doffsets"])),)),
    Close("decoded", "decode(cells, offsets) on a (2, 3) grid of codes", mistakes=(
        Mistake("the cells read as (col, row) instead of (row, col)", instructor("decode.swap")),
        Mistake("w = stride * tw without exp (encode codes log(w / stride))", instructor("decode.no_exp")),
        Mistake(IGNORED_STRIDE, instructor("decode.default_stride")),
    )),
    Close("round_trip", "decode(*encode(boxes)): the same boxes back", mistakes=(
        Mistake("the cells read as (col, row) instead of (row, col)", instructor("decode.swap.round_trip")),
        Mistake("w = stride * tw without exp (encode codes log(w / stride))", instructor("decode.no_exp.round_trip")),
    ), explain=(
        "decode must invert encode exactly: cx = (col + tx) * stride, w = stride * exp(tw).")),
])
def decode_round_trip(lab, cells, offsets, boxes, stride, upstream):
    """decode on any leading shape (stride 16) and its gradient, and decode(encode(b)) == b."""
    s = int(stride)
    decoded = lab.decode(_t(cells), _t(offsets), s)
    enc_cells, enc_off = lab.encode(_t(boxes), s)
    out = {"decoded": _np(decoded, "decode"), "round_trip": _np(lab.decode(enc_cells, enc_off, s), "decode"),
           "doffsets": _offsets_gradient(lambda o: lab.decode(_t(cells), o, s), offsets, upstream)}
    try:  # what decode is judged given: your encode's codes and your conversion (their own cases report errors)
        own_cells = _t(_index_array(enc_cells, "encode (cells)").reshape(-1, 2))
        own_off = _t(_np(enc_off, "encode (offsets)").astype(np.float64).reshape(-1, 4))
        out.update({"enc_cells": _np(own_cells, "encode").astype(np.float64), "enc_offsets": _np(own_off, "encode"),
                    "xyxy_used": _own_conversion(lab, _t(cells), _t(offsets), s),
                    "doffsets_used": _offsets_gradient(lambda o: lab.box_cxcywh_to_xyxy(
                        _centres_sizes(_t(cells), o, s).reshape(-1, 4)).reshape(o.shape), offsets, upstream),
                    "xyxy_rt_used": _own_conversion(lab, own_cells, own_off, s)})
    except Exception:  # noqa: BLE001 - then decode is judged as it is
        pass
    return out


def targets_inputs(n: int, grid: int, stride: int, m: int):
    def make(rng: np.random.Generator) -> Arrays:
        canvas = grid * stride
        boxes = canvas_boxes(rng, m, canvas, stride)
        index = rng.integers(0, n, size=m)
        # Two pairs sharing a cell: boxes 0 and 1 share a centre, box 0 smaller (box 1 must win);
        # boxes 2 and 3 have equal areas, exactly (multiples of 1/8 shifted by 1/4: box 2 must win).
        cx, cy = (boxes[1, 0] + boxes[1, 2]) / 2, (boxes[1, 1] + boxes[1, 3]) / 2
        hw = 0.7 * (cx - boxes[1, 0])
        boxes[0] = [cx - hw, cy - 0.5, cx + hw, cy + 0.5]
        index[1] = index[0]
        if m >= 4:
            boxes[2] = np.round(boxes[2] * 8) / 8
            d = np.where(boxes[2, 2:] + 0.25 <= canvas, 0.25, -0.25)
            boxes[3] = boxes[2] + np.tile(d, 2)
            index[3] = index[2]
        if m >= 6:  # boxes 4 and 5 share a centre, box 4 larger (box 4 must win): "first box wins" and
            # "smaller box wins" then predict different targets (on the pair 0, 1 both give box 0)
            c4 = (boxes[4, :2] + boxes[4, 2:]) / 2
            half = 0.6 * (c4 - boxes[4, :2])
            boxes[5] = np.concatenate([c4 - half, c4 + half])
            index[5] = index[4]
        return {"boxes": boxes, "labels": rng.integers(0, 10, size=m), "image_index": index,
                "n_images": np.array(n), "grid": np.array(grid), "stride": np.array(stride)}
    return described(f"{n} canvases, {grid}x{grid} grid, stride {stride}, {m} boxes", make)


@LAB.case(points=5, inputs=targets_inputs(3, 8, 8, 10),
          hidden_inputs=(targets_inputs(1, 4, 16, 5), targets_inputs(2, 8, 8, 4)),
          given=Given("encode", ("cells_used", "coarse_cells_used"), "given.targets"), checks=[
    Close("obj", "build_targets: obj (1 at responsible cells)", exact=True, mistakes=(
        Mistake("the grid indexed [col, row] instead of [row, col]",
                lambda i, e: np.swapaxes(e["obj"], 1, 2)),)),
    Close("cls", "build_targets: cls (class at responsible cells, -1 elsewhere)", exact=True, mistakes=(
        Mistake("when two boxes share a cell, the later box wins; the rule is: the larger area, "
                "then the lower index", instructor("targets.last.cls")),
        Mistake("when two boxes share a cell, the first box wins regardless of area; the rule is: "
                "the larger area, then the lower index", instructor("targets.first.cls")),
        Mistake("when two boxes share a cell, the SMALLER box wins; the rule is: the larger area, then the "
                "lower index", instructor("targets.smaller.cls")),
        Mistake("the grid indexed [col, row] instead of [row, col]",
                lambda i, e: np.swapaxes(e["cls"], 1, 2)),)),
    Close("tbox", "build_targets: tbox (the assigned box, xyxy)", mistakes=(
        Mistake("when two boxes share a cell, the later box wins; the rule is: the larger area, "
                "then the lower index", instructor("targets.last.tbox")),
        Mistake("when two boxes share a cell, the first box wins regardless of area",
                instructor("targets.first.tbox")),
        Mistake("when two boxes share a cell, the SMALLER box wins; the rule is: the larger area, then the "
                "lower index", instructor("targets.smaller.tbox")),)),
    # The grid size and stride are arguments: a grid half as fine on the same canvases (hidden variants use
    # 4x4 grids of stride 16 too).
    Close("coarse", "build_targets with grid // 2 and 2 * stride (the same canvases): obj, cls and tbox "
                    "stacked on the last axis, (N, grid // 2, grid // 2, 6)", exact=True),
])
def build_targets_assignment(lab, boxes, labels, image_index, n_images, grid, stride):
    """build_targets on 3 canvases: two pairs sharing a cell (the larger wins; once first, once second) and an
    equal-area pair (the lower index wins); and on the same canvases with a grid half as fine."""
    out: dict[str, np.ndarray] = {}
    try:  # what build_targets is judged given: your encode's cells (encode's own cases report its errors)
        for name, s in (("cells_used", int(stride)), ("coarse_cells_used", 2 * int(stride))):
            out[name] = _index_array(lab.encode(_t(boxes), s)[0], "encode (cells)").reshape(-1, 2).astype(np.float64)
    except Exception:  # noqa: BLE001 - then build_targets is judged as it is
        out = {}
    fine = _targets_or_marker(lab, boxes, labels, image_index, int(n_images), int(grid), int(stride),
                              out.get("cells_used"))
    out.update({"obj": fine[..., 0], "cls": fine[..., 1], "tbox": fine[..., 2:]})
    out["coarse"] = _targets_or_marker(lab, boxes, labels, image_index, int(n_images), int(grid) // 2,
                                       2 * int(stride), out.get("coarse_cells_used"))
    return out


# build_targets' outputs when your encode puts a box in a cell outside the grid: nothing can be assigned there,
# so build_targets is not called (it would fail for encode's error); judged given your encode, this is expected.
OUTSIDE_GRID = -1.0


def _targets_or_marker(lab: Any, boxes: np.ndarray, labels: np.ndarray, index: np.ndarray, n: int, grid: int,
                       stride: int, own_cells: np.ndarray | None) -> np.ndarray:
    """build_targets' (obj, cls, tbox) stacked as (N, grid, grid, 6), or OUTSIDE_GRID everywhere when the
    student's own encode puts a box outside the grid."""
    if own_cells is not None and (own_cells.min(initial=0) < 0 or own_cells.max(initial=0) >= grid):
        return np.full((n, grid, grid, 6), OUTSIDE_GRID)
    return _stack_targets(*lab.build_targets(_t(boxes), _t(labels), _t(index), n, grid, stride))


def _stack_targets(obj: Any, cls: Any, tbox: Any) -> np.ndarray:
    """(obj, cls, tbox) as one (N, G, G, 6) array: obj, cls, then the box on the last axis."""
    parts = [_np(obj, "build_targets (obj)").astype(np.float64)[..., None],
             _np(cls, "build_targets (cls)").astype(np.float64)[..., None], _np(tbox, "build_targets (tbox)")]
    if len({a.shape[:-1] for a in parts}) != 1 or parts[2].shape[-1:] != (4,):
        raise ConventionError(f"build_targets returned obj, cls, tbox of shapes {[a.shape[:-1] for a in parts]} "
                              f"(tbox without its last axis): they must all be (n_images, grid, grid)")
    return np.concatenate(parts, axis=-1)


# ----------------------------------------------------------------------------- NMS


def _given_iou(key: str) -> Given:
    """Judged given the student's own box_iou: its IoU matrix on the case's boxes is returned as
    ``iou_used``, and a wrong box_iou is charged in box_iou's cases only (grader/judging/given.py)."""
    return Given("box_iou", ("iou_used",), key)


def _iou_used(lab: Any, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The student's box_iou(a, b): what their nms / mAP computes through."""
    return _np(lab.box_iou(_t(a), _t(b)), "box_iou").astype(np.float64)


IGNORED_THRESHOLD = "the iou_threshold argument is ignored: this is what a fixed threshold 0.5 gives"


def _nms_mistakes(key: str = "keep") -> tuple[Mistake, ...]:
    return (
        Mistake("the boxes are visited in index order, not by decreasing score", instructor("nms.index_order")),
        Mistake("a box is suppressed when IoU >= threshold; it is kept when IoU <= threshold "
                "(suppressed only when IoU > threshold)", instructor("nms.ge")),
        Mistake("the comparison is reversed: boxes that overlap LESS than the threshold are suppressed",
                instructor("nms.reversed")),
        Mistake("the kept indices are returned in index order; return them in the order they were "
                "kept (by decreasing score)", lambda i, e: np.sort(e[key])),
        Mistake("boxes are visited by INCREASING score", instructor("nms.increasing")),
        Mistake(IGNORED_THRESHOLD, instructor("nms.fixed_half")),
    )


def nms_inputs(m: int, clusters: int, thr: float):
    def make(rng: np.random.Generator) -> Arrays:
        return {**clustered(rng, m, clusters), "iou_threshold": np.array(thr)}
    return described(f"{m} boxes around {clusters} centres, threshold {thr}", make)


# Public thresholds other than 0.5 (nms_edge_cases uses 0.5): a threshold fixed in the code fails publicly.
@LAB.case(points=6, inputs=nms_inputs(30, 5, 0.45),
          hidden_inputs=(nms_inputs(17, 3, 0.3), nms_inputs(40, 6, 0.7)), given=_given_iou("given.nms"), checks=[
    Close("keep", "nms: the kept indices, in the order kept", exact=True, mistakes=_nms_mistakes()),
])
def nms_random(lab, boxes, scores, iou_threshold):
    """nms on 30 boxes jittered around 5 centres, threshold 0.45 (hidden: other sizes and thresholds)."""
    return {"keep": _index_array(lab.nms(_t(boxes), _t(scores), float(iou_threshold)), "nms"),
            "iou_used": _iou_used(lab, boxes, boxes)}


# Edge cases: two identical boxes with equal scores (the lower index wins), a third identical one
# with a lower score, zero-area boxes (IoU 0 with everything: never suppressed), a pair with
# IoU exactly 0.5 (kept at threshold 0.5), a box inside another (IoU 0.25), a disjoint box.
EDGE_BOXES = np.array([[0, 0, 4, 4], [0, 0, 4, 4], [0, 0, 4, 4], [10, 10, 10, 10], [10, 10, 10, 10],
                       [20, 0, 24, 4], [20, 0, 24, 2], [30, 0, 38, 8], [32, 2, 36, 6], [50, 50, 52, 52]], float)
EDGE_SCORES = np.array([0.9, 0.9, 0.5, 0.7, 0.7, 0.8, 0.6, 0.4, 0.3, 0.2])


def nms_edge_inputs(rng: np.random.Generator) -> Arrays:
    perm = rng.permutation(len(EDGE_BOXES))
    scale = float(2 ** rng.integers(0, 3))
    shift = np.tile(rng.integers(0, 8, size=2).astype(float), 2)
    return {"boxes": EDGE_BOXES[perm] * scale + shift, "scores": EDGE_SCORES[perm], "iou_threshold": np.array(0.5)}


@LAB.case(points=5, inputs=nms_edge_inputs, hidden_inputs=(nms_edge_inputs,), given=_given_iou("given.nms"), checks=[
    Close("keep", "nms on edge cases (identical boxes, equal scores, zero-area, IoU exactly at the "
                  "threshold, contained, disjoint)", exact=True, mistakes=_nms_mistakes(),
          explain="Ties in score are visited by increasing index (a stable sort of -scores); a box is "
                  "kept when its IoU with every kept box is <= the threshold."),
])
def nms_edge_cases(lab, boxes, scores, iou_threshold):
    """nms on hand-made edge cases in a random order."""
    return {"keep": _index_array(lab.nms(_t(boxes), _t(scores), float(iou_threshold)), "nms"),
            "iou_used": _iou_used(lab, boxes, boxes)}


def batched_inputs(m: int, clusters: int, n_classes: int, thr: float):
    def make(rng: np.random.Generator) -> Arrays:
        return {**clustered(rng, m, clusters), "idxs": rng.integers(0, n_classes, size=m),
                "iou_threshold": np.array(thr)}
    return described(f"{m} boxes, {n_classes} categories, threshold {thr}", make)


@LAB.case(points=5, inputs=batched_inputs(24, 4, 3, 0.55),
          hidden_inputs=(batched_inputs(9, 2, 2, 0.4), batched_inputs(35, 5, 6, 0.6)),
          given=_given_iou("given.batched_nms"), checks=[
    Close("keep", "batched_nms: the kept indices, by decreasing score", exact=True, mistakes=(
        Mistake("the categories are ignored (plain nms over every box): boxes of different "
                "categories must never suppress each other", instructor("batched.no_categories")),
        Mistake("the kept indices are grouped by category; return them sorted by decreasing score",
                instructor("batched.grouped")),
        Mistake("the kept indices are returned in index order; sort them by decreasing score",
                lambda i, e: np.sort(e["keep"])),
        Mistake(IGNORED_THRESHOLD, instructor("batched.fixed_half")),
    )),
])
def batched_nms_categories(lab, boxes, scores, idxs, iou_threshold):
    """batched_nms with 3 categories over clustered boxes."""
    return {"keep": _index_array(lab.batched_nms(_t(boxes), _t(scores), _t(idxs), float(iou_threshold)),
                                 "batched_nms"), "iou_used": _iou_used(lab, boxes, boxes)}


# ----------------------------------------------------------------------------- GIoU loss


def giou_pairs(m: int):
    """Pairs that overlap, are disjoint or nested; every coordinate difference and every
    intersection width/height at least 0.02 away from 0 (no kink within reach of h = 1e-6)."""
    def make(rng: np.random.Generator) -> Arrays:
        pred, target = np.zeros((m, 4)), np.zeros((m, 4))
        for k in range(m):
            while True:
                t = random_boxes(rng, 1, extent=20.0, min_size=2.0, max_size=12.0)[0]
                kind = k % 3
                if kind == 0:  # overlapping
                    p = t + rng.uniform(-3, 3, size=4)
                elif kind == 1:  # disjoint: shifted right or down by more than the size
                    p = t + np.tile([rng.uniform(13, 20), rng.uniform(-5, 5)], 2)[[0, 1, 0, 1]]
                else:  # nested inside
                    p = np.concatenate([t[:2] + rng.uniform(0.1, 0.4, 2) * (t[2:] - t[:2]),
                                        t[2:] - rng.uniform(0.1, 0.4, 2) * (t[2:] - t[:2])])
                iw = min(p[2], t[2]) - max(p[0], t[0])
                ih = min(p[3], t[3]) - max(p[1], t[1])
                if (p[2:] - p[:2]).min() > 0.5 and np.abs(p[:, None] - t[None, :]).min() > 0.02 \
                        and min(abs(iw), abs(ih)) > 0.02:
                    break
            pred[k], target[k] = p, t
        return {"pred": pred, "target": target, "upstream": rng.normal(0, 1, size=m)}
    return make


def _giou_call(lab: Any, pred: np.ndarray, target: np.ndarray) -> Any:
    return lab.giou_loss(_t(pred), _t(target))


# The loss and its gradient as sums of terms: an error no known mistake matches is said in their words
# (grader/judging/terms.py). The loss's terms are the handout's formula; the gradient's are named only by the
# path they take (deriving them is the exercise), computed by the instructor module.
GIOU_TERMS = Terms("1 - GIoU = 1 - IoU + (area(C) - union) / area(C)", (
    Term("the constant 1", short="constant"),
    Term("the IoU term -inter / union", short="IoU term"),
    Term("the enclosing-box penalty (area(C) - union) / area(C)", ("divided by the union instead of area(C)",),
         short="penalty"),
), instructor("giou.terms"))
GIOU_GRAD_TERMS = Terms("dL/dpred's three paths (through the intersection, through pred's area in the union, "
                        "through the enclosing box C)", (
    Term("the intersection term (dL/dinter times dinter/dpred)",
         ("without the union's share of it (the union = area_p + area_t - inter depends on inter too)",),
         short="intersection term"),
    Term("the area term (dL/dunion times d area(pred)/dpred)", short="area term"),
    Term("the enclosing-box term (dL/dC times dC/dpred)", short="enclosing-box term"),
), instructor("giou_grad.terms"))


@LAB.case(points=4, inputs=giou_pairs(9), hidden_inputs=(giou_pairs(1), giou_pairs(14)), checks=[
    Close("loss", "GIoULoss.forward: 1 - GIoU per pair", terms=GIOU_TERMS, mistakes=(
        Mistake("1 - IoU: the enclosing-box term (area(C) - union) / area(C) is missing",
                instructor("giou.no_enclosing")),
        Mistake("GIoU itself instead of the loss 1 - GIoU", instructor("giou.giou_itself")),
        Mistake("the intersection is not clamped at 0 for disjoint boxes", instructor("giou.no_clamp")),
    )),
    Close("loss_one", "GIoULoss.forward on one pair (M = 1): shape (1,)"),
])
def giou_forward(lab, pred, target):
    """giou_loss (your GIoULoss Function) on overlapping, disjoint and nested pairs, and on one pair alone."""
    return {"loss": _np(_giou_call(lab, pred, target), "giou_loss"),
            "loss_one": _np(_giou_call(lab, pred[:1], target[:1]), "giou_loss")}


@LAB.case(points=9, inputs=giou_pairs(9), hidden_inputs=(giou_pairs(1), giou_pairs(14)), checks=[
    Close("custom_function", "giou_loss applies your GIoULoss Function (its grad_fn)", exact=True,
          explain="giou_loss must return GIoULoss.apply(pred, target), so that the gradient comes "
                  "from your hand-written backward, not from autograd."),
    GradCheck("dpred", "dpred_numeric", "GIoULoss.backward: dL/dpred"),
    Close("dpred", "GIoULoss.backward: dL/dpred", terms=GIOU_GRAD_TERMS, mistakes=(
        Mistake("the intersection's gradient is not masked where its width or height is clamped at 0 "
                "(disjoint boxes: the intersection is constant there)", instructor("giou_grad.no_mask")),
        Mistake("the enclosing box C is treated as a constant (its gradient is missing)",
                instructor("giou_grad.c_constant")),
        Mistake("grad_output is ignored (multiply by the upstream gradient)", instructor("giou_grad.no_upstream")),
        Mistake("the gradient is summed over the batch (grad_output.sum()) instead of row by row",
                instructor("giou_grad.summed_upstream")),
    )),
    Close("autograd_in_backward", "GIoULoss.backward builds no autograd graph (tensors autograd saved while "
          "it ran; -1: it called a torch.func transform)", exact=True,
          explain="The handout asks for a hand-written backward: compute dL/dpred from the saved tensors with "
                  "plain tensor operations. Calling torch.autograd.grad, .backward() or torch.func on the "
                  "forward inside backward (under torch.enable_grad()) lets autograd do the task."),
])
def giou_backward(lab, pred, target, upstream):
    """GIoULoss.backward against central differences of its forward (float64, random upstream)."""
    tt = _torch()
    p = _t(pred).clone().requires_grad_(True)
    loss = lab.giou_loss(p, _t(target))
    fn = getattr(getattr(loss, "grad_fn", None), "_forward_cls", None)
    custom = float(fn is not None and issubclass(fn, tt.autograd.Function) and fn.__name__ == "GIoULoss")
    if not isinstance(loss, tt.Tensor) or loss.shape != p.shape[:1]:
        raise ConventionError(f"giou_loss must return a tensor of shape ({len(pred)},), one loss per pair; "
                              f"got {getattr(loss, 'shape', type(loss).__name__)}")
    loss.backward(_t(upstream))
    dpred = p.grad
    if dpred is None:
        raise ConventionError("GIoULoss.backward gave no gradient for pred (does backward return (dpred, None)?)")

    def forward(x: np.ndarray) -> float:
        with tt.no_grad():
            return float((lab.giou_loss(_t(x), _t(target)) * _t(upstream)).sum())

    return {"custom_function": np.array(custom), "dpred": _np(dpred, "GIoULoss.backward"),
            "dpred_numeric": numerical_gradient(forward, pred),
            "autograd_in_backward": np.array(float(_autograd_saves_in_backward(lab, pred, target, upstream)))}


def _autograd_saves_in_backward(lab: Any, pred: np.ndarray, target: np.ndarray, upstream: np.ndarray) -> int:
    """How many tensors autograd saved for a backward pass while GIoULoss.backward ran; -1 when it
    called a torch.func transform.

    A hand-written backward runs in autograd's backward pass, where grad mode is off: it records
    nothing. One that differentiates the forward again (torch.autograd.grad or .backward() under
    torch.enable_grad()) records a graph, and every multiplication or division in it saves its
    inputs through the saved-tensor hooks, which the autograd engine carries into backward.
    torch.func transforms refuse to run while such hooks are set: that is evidence too. The hooks
    are set around the backward call only, so what the forward saved is not counted.
    """
    tt = _torch()
    p = _t(pred).clone().requires_grad_(True)
    loss = lab.giou_loss(p, _t(target))
    saved = [0]

    def pack(t: Any) -> Any:
        saved[0] += 1
        return t

    try:
        with tt.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss.backward(_t(upstream))
    except RuntimeError as exc:
        if "saved tensor hooks" in str(exc):  # torch.func.grad/vjp/jacrev inside backward
            return -1
        raise
    return saved[0]


# ----------------------------------------------------------------------------- the detection loss


def loss_inputs(n: int, grid: int, positives: int):
    def make(rng: np.random.Generator) -> Arrays:
        stride = 8
        raw = rng.normal(0, 0.7, size=(n, 15, grid, grid))
        obj = np.zeros((n, grid, grid))
        cls = np.full((n, grid, grid), -1, dtype=np.int64)
        tbox = np.zeros((n, grid, grid, 4))
        for img in range(n - (n > 2)):  # with n > 2 the last canvas has no object
            cells = rng.choice(grid * grid, size=min(positives, grid * grid), replace=False)
            for c in cells:
                r, col = divmod(int(c), grid)
                centre = (np.array([col, r]) + rng.uniform(0.2, 0.8, 2)) * stride
                half = rng.uniform(2, 12, 2)
                obj[img, r, col], cls[img, r, col] = 1, rng.integers(0, 10)
                tbox[img, r, col] = np.concatenate([centre - half, centre + half])
        return {"raw": raw, "obj": obj, "cls": cls, "tbox": tbox}
    return described(f"N={n}, {grid}x{grid} grid, {positives} objects per canvas", make)


# Not predictions: what the run measured about the pieces dL/draw flows through (the student's decode and GIoU
# Function on this case's boxes); each applies only when that measurement shows the piece is wrong.
LOSS_GRADIENT_CAUSES = (
    Mistake("your decode passes no gradient back to the head output (see decode_round_trip): the GIoU term's "
            "share of dL/draw is missing",
            lambda i, e, got: got["draw"] if _flag_is_zero(got, "decode_grad") else None),
    Mistake("your GIoULoss.backward disagrees with the numerical gradient of your GIoULoss.forward on this case's "
            "boxes (see giou_backward): dL/draw inherits that error",
            lambda i, e, got: got["draw"] if _flag_is_zero(got, "giou_consistent") else None),
)


@LAB.case(points=8, inputs=loss_inputs(3, 3, 2), hidden_inputs=(loss_inputs(1, 2, 1), loss_inputs(3, 3, 3)),
          given=Given("decode", ("boxes_used",), "given.loss"), checks=[
    Close("loss", "detection_loss: the scalar loss", mistakes=(
        Mistake("the objectness BCE is averaged over all cells; it is summed over the cells and "
                "divided by the number of canvases N", instructor("loss.obj_mean")),
        Mistake("the GIoU term is not multiplied by box_weight (2.0)", instructor("loss.no_box_weight")),
        # measured, not predicted: the GIoU Function the loss goes through is inconsistent on these boxes
        Mistake("your GIoULoss's backward and forward disagree on this case's boxes (see giou_forward and "
                "giou_backward): the loss's GIoU term goes through them",
                lambda i, e, got: got["loss"] if _flag_is_zero(got, "giou_consistent") else None),
    )),
    GradCheck("draw", "draw_numeric", "detection_loss: dL/d(head output)", mistakes=LOSS_GRADIENT_CAUSES),
    Close("draw", "detection_loss: dL/d(head output) by autograd through your loss", mistakes=LOSS_GRADIENT_CAUSES),
])
def detection_loss_gradient(lab, raw, obj, cls, tbox):
    """detection_loss and its gradient w.r.t. the raw head output (N=3, 3x3 grid, the last canvas without objects)."""
    tt = _torch()
    r = _t(raw).clone().requires_grad_(True)
    loss = lab.detection_loss(r, _t(obj), _t(cls), _t(tbox))
    loss.backward()
    if r.grad is None:
        raise ConventionError("detection_loss gave no gradient for the head output")

    def forward(x: np.ndarray) -> float:
        with tt.no_grad():
            return float(lab.detection_loss(_t(x), _t(obj), _t(cls), _t(tbox)))

    out = {"loss": _np(loss, "detection_loss").astype(np.float64), "draw": _np(r.grad, "dL/draw"),
           "draw_numeric": numerical_gradient(forward, raw)}
    try:  # the boxes your decode gives for this head output (decode_head is provided): judged given them
        boxes = lab.decode_head(_t(raw).clone().requires_grad_(True))[1]
        out["boxes_used"] = _np(boxes, "decode_head").astype(np.float64)
        out["decode_grad"] = np.array(float(isinstance(boxes, tt.Tensor) and boxes.requires_grad))
        responsible = obj == 1
        out["giou_consistent"] = np.array(float(_giou_consistent(lab, out["boxes_used"][responsible],
                                                                 tbox[responsible])))
    except Exception:  # noqa: BLE001 - decode's and GIoU's own cases report their errors
        pass
    return out


def _giou_consistent(lab: Any, pred: np.ndarray, target: np.ndarray) -> bool:
    """Whether the student's GIoULoss.backward agrees with the numerical gradient of its own forward on these
    pairs (the gradient check of giou_backward, on the loss's boxes)."""
    if len(pred) == 0:
        return True
    weights = _t(np.linspace(0.5, 1.5, len(pred)))  # an upstream gradient other than ones (grad_output matters)
    boxes = _t(pred).clone().requires_grad_(True)
    (lab.giou_loss(boxes, _t(target)) * weights).sum().backward()
    if boxes.grad is None:
        return False

    def forward(x: np.ndarray) -> float:
        with _torch().no_grad():
            return float((lab.giou_loss(_t(x), _t(target)) * weights).sum())

    return bool(np.allclose(_np(boxes.grad, "GIoULoss.backward"), numerical_gradient(forward, pred), rtol=1e-5,
                            atol=1e-7))


def _flag_is_zero(got: Any, name: str) -> bool:
    """Whether the run measured ``name`` (a 0/1 flag) as 0."""
    flag = got.get(name)
    return flag is not None and np.asarray(flag).size == 1 and float(np.asarray(flag)) == 0.0


# ----------------------------------------------------------------------------- mAP


def ap_inputs(s: int, k: int):
    def make(rng: np.random.Generator) -> Arrays:
        tp = (rng.uniform(size=(s, k)) < rng.uniform(0.2, 0.9, size=(s, 1))).astype(np.float64)
        tp[0] = 1.0
        if s > 1:
            tp[1] = 0.0
        return {"tp": tp, "n_gt": tp.sum(1).astype(np.int64) + rng.integers(1, 4, size=s)}
    return described(f"{s} sequences of {k} detections", make)


@LAB.case(points=4, inputs=ap_inputs(6, 12), hidden_inputs=(ap_inputs(1, 1), ap_inputs(4, 30)), checks=[
    Close("ap", "average_precision of 0/1 sequences (VOC all-point interpolation)", mistakes=(
        Mistake("no interpolation: the raw precision at each recall step, not the best precision at "
                "any recall >= it (the envelope)", instructor("ap.raw")),
        Mistake("11-point interpolation (VOC 2007); the lab uses all-point interpolation",
                instructor("ap.eleven_point")),
        Mistake("recall divided by the number of detections instead of the number of ground-truth boxes",
                instructor("ap.by_detections")),
    )),
])
def average_precision_interpolation(lab, tp, n_gt):
    """average_precision on several tp sequences (one all hits, one all misses)."""
    out = []
    for t, n in zip(tp, n_gt, strict=True):
        value = lab.average_precision(_t(t), int(n))
        out.append(float(value.item() if hasattr(value, "item") else value))
    return {"ap": np.array(out)}


STRICT_MATCH = ("a detection matched only when IoU > 0.5: the rule is IoU >= iou_threshold (a detection with "
                "IoU exactly 0.5 is a true positive)")


def map_inputs(n_images: int, n_classes: int):
    def make(rng: np.random.Generator) -> Arrays:
        gt_index = np.repeat(np.arange(n_images), rng.integers(1, 5, size=n_images))
        m = len(gt_index)
        gt_boxes = random_boxes(rng, m, extent=40.0, min_size=6.0, max_size=20.0)
        gt_labels = rng.integers(0, n_classes - 1, size=m)  # the last class has no ground truth
        boxes, labels, index = [], [], []
        for k in range(m):
            for _ in range(int(rng.integers(0, 3))):  # 0-2 detections per object: duplicates are FPs
                boxes.append(gt_boxes[k] + rng.normal(0, 2.0, size=4))
                labels.append(gt_labels[k] if rng.uniform() < 0.85 else int(rng.integers(0, n_classes)))
                index.append(gt_index[k])
        for _ in range(m // 2):  # background false positives
            boxes.append(random_boxes(rng, 1, extent=40.0, min_size=4.0, max_size=20.0)[0])
            labels.append(int(rng.integers(0, n_classes)))
            index.append(int(rng.integers(0, n_images)))
        boxes_arr = np.array(boxes).reshape(-1, 4)
        boxes_arr[:, 2:] = np.maximum(boxes_arr[:, 2:], boxes_arr[:, :2] + 1.0)
        # A detection with IoU exactly 0.5 (16 / 32, exact in floating point) with a ground-truth box away from
        # the others, scored highest: it is a match (IoU >= threshold), so `>` instead of `>=` is visible.
        half_gt = np.array([[100.0, 100.0, 106.0, 104.0]])
        gt_boxes = np.concatenate([gt_boxes, half_gt])
        gt_labels = np.append(gt_labels, 0)
        gt_index = np.append(gt_index, 0)
        boxes_arr = np.concatenate([boxes_arr, half_gt + [2.0, 0.0, 2.0, 0.0]])
        labels.append(0)
        index.append(0)
        scores = np.append(rng.uniform(0, 0.99, size=len(boxes_arr) - 1), 0.995)
        return {"boxes": boxes_arr, "scores": scores,
                "labels": np.array(labels, dtype=np.int64), "image_index": np.array(index, dtype=np.int64),
                "gt_boxes": gt_boxes, "gt_labels": gt_labels, "gt_index": gt_index,
                "num_classes": np.array(n_classes)}
    return described(f"{n_images} canvases, {n_classes} classes", make)


@LAB.case(points=5, inputs=map_inputs(8, 5), hidden_inputs=(map_inputs(1, 3), map_inputs(12, 6)),
          given=_given_iou("given.map"), checks=[
    Close("ap_per_class", "mean_average_precision: AP per class (-1 here for a class without ground truth)",
          mistakes=(
              Mistake("a ground-truth box is matched more than once: a duplicate detection of a "
                      "matched object is a false positive", instructor("map_ap.rematch")),
              Mistake("the class is ignored when matching detections to ground truth",
                      instructor("map_ap.ignore_class")),
              Mistake(STRICT_MATCH, instructor("map_ap.strict")),
          )),
    Close("map", "mean_average_precision: mAP@0.5 (mean over classes with ground truth)", mistakes=(
        Mistake("a ground-truth box is matched more than once: a duplicate detection of a matched "
                "object is a false positive", instructor("map.rematch")),
        Mistake("classes without ground truth count as AP 0 in the mean; leave them out",
                lambda i, e: np.array(np.where(e["ap_per_class"] < 0, 0.0, e["ap_per_class"]).mean())),
        Mistake(STRICT_MATCH, instructor("map.strict")),
    )),
])
def map_fixed_predictions(lab, boxes, scores, labels, image_index, gt_boxes, gt_labels, gt_index, num_classes):
    """mean_average_precision on fixed detections: jittered hits, duplicates, wrong classes, background."""
    m, aps = through_one_box(lab, "mean_average_precision", lambda: lab.mean_average_precision(
        _t(boxes), _t(scores), _t(labels), _t(image_index), _t(gt_boxes), _t(gt_labels), _t(gt_index), 0.5,
        int(num_classes)))
    aps = _np(aps, "mean_average_precision (AP per class)").astype(np.float64)
    return {"map": np.array(float(m.item() if hasattr(m, "item") else m)),
            "ap_per_class": np.where(np.isnan(aps), -1.0, aps), "iou_used": _iou_used(lab, boxes, gt_boxes)}


# ----------------------------------------------------------------------------- training: parts A and B


# The evaluation canvases of the public run are always the same (generator seed 0), and the
# generator and the labelled held-out digits ship with the release: their answers can be looked
# up. Each hidden variant composes its evaluation canvases (which digits, how many per canvas,
# where, how big, the clutter, and how many canvases) from a seed drawn from the case's RNG, which
# in grading comes from the instructor-only hidden seeds: a table built from the public generator
# does not know them. The training canvases stay those of seed 0 (the model trained is the same).


def _hidden_test(rng: np.random.Generator, n: int) -> tuple[int, int]:
    """(generator seed, number) of a hidden variant's evaluation canvases: a 62-bit seed (too many
    to tabulate) and n to 1.2 n canvases."""
    return int(rng.integers(1, 2**62)), int(rng.integers(n, n + n // 5 + 1))


def localizer_inputs(rng: np.random.Generator | None = None, *, test_seed: int = 0, n_test: int = N_TEST_A) -> Arrays:
    train, test = dd.lab5_canvases("A", "train", N_TRAIN_A, 0), dd.lab5_canvases("A", "test", n_test, test_seed)
    return {"train_images": train.images, "train_boxes": train.boxes, "train_labels": train.labels,
            "test_images": test.images, "test_boxes": test.boxes, "test_labels": test.labels}


def localizer_hidden_inputs(rng: np.random.Generator) -> Arrays:
    """The public training canvases; evaluation canvases from a seed of the (hidden) case RNG."""
    seed, n = _hidden_test(rng, N_TEST_A)
    return localizer_inputs(test_seed=seed, n_test=n)


# The training cases are scored with the lab's own metric functions, taken from ``metrics``: the
# reference package in grading (the grader's metric), the student's own package in a local run of
# a release (see grader/judging/case.py, Metric.scored_by). Nothing here re-implements them.


def _paired_iou(metrics: Any, i: Arrays, o: dict[str, np.ndarray]) -> np.ndarray:
    """IoU of each canvas's predicted box with its true box, by ``metrics.box_iou``."""
    boxes, labels = o["pred_boxes"].astype(np.float64), o["pred_labels"]
    if boxes.shape != i["test_boxes"].shape or labels.shape != i["test_labels"].shape:
        raise ValueError(f"expected boxes {i['test_boxes'].shape} and labels {i['test_labels'].shape}, "
                         f"got {boxes.shape} and {labels.shape}")
    return np.diag(_np(metrics.box_iou(_t(boxes), _t(i["test_boxes"])), "box_iou")).astype(np.float64)


def _localizer_score(metrics: Any, i: Arrays, o: dict[str, np.ndarray]) -> float:
    """Part A's accuracy: a canvas counts when its box has IoU >= 0.5 and its class is right."""
    iou = _paired_iou(metrics, i, o)
    return float(np.mean((iou >= 0.5) & (o["pred_labels"] == i["test_labels"])))


def _localizer_detail(metrics: Any, i: Arrays, o: dict[str, np.ndarray]) -> str:
    iou = _paired_iou(metrics, i, o)
    return (f"class right on {np.mean(o['pred_labels'] == i['test_labels']):.4f} of the canvases, "
            f"IoU >= 0.5 on {np.mean(iou >= 0.5):.4f} (mean IoU {iou.mean():.3f})")


@LAB.case(points=9, inputs=localizer_inputs, private=["test_boxes", "test_labels"],
          hidden_inputs=(localizer_hidden_inputs,), max_hidden=1, timeout=600, slow=True, checks=[
    Metric("pred_boxes", _localizer_score, LOCALIZER_THRESHOLD,
           "part A: fit_localizer + predict_localizer, accuracy (IoU >= 0.5 and class right) on "
           f"held-out canvases ({N_TEST_A} in the public run)", reference=LOCALIZER_REFERENCE,
           describe=_localizer_detail,
           scored_by="box_iou"),
])
def localizer_accuracy(lab, train_images, train_boxes, train_labels, test_images):
    """Part A: train your localizer (provided loop, one torch thread) and localize held-out digits."""
    tt = _torch()
    tt.set_num_threads(TRAIN_THREADS)
    model = lab.fit_localizer(_t(train_images).to(tt.uint8), _t(train_boxes), _t(train_labels), seed=0)
    boxes, labels = lab.predict_localizer(model, _t(test_images).to(tt.uint8))
    return {"pred_boxes": _np(boxes, "predict_localizer (boxes)").astype(np.float64),
            "pred_labels": _index_array(labels, "predict_localizer (labels)")}


def detector_inputs(rng: np.random.Generator | None = None, *, test_seed: int = 0, n_test: int = N_TEST_B) -> Arrays:
    train, test = dd.lab5_canvases("B", "train", N_TRAIN_B, 0), dd.lab5_canvases("B", "test", n_test, test_seed)
    return {"train_images": train.images, "train_boxes": train.boxes, "train_labels": train.labels,
            "train_index": train.image_index, "test_images": test.images, "test_boxes": test.boxes,
            "test_labels": test.labels, "test_index": test.image_index}


def detector_hidden_inputs(rng: np.random.Generator) -> Arrays:
    """The public training canvases; evaluation canvases from a seed of the (hidden) case RNG."""
    seed, n = _hidden_test(rng, N_TEST_B)
    return detector_inputs(test_seed=seed, n_test=n)


# As COCO's evaluation does, only each canvas's MAX_DETECTIONS highest-scoring detections count
# (the handout says so). The cap also bounds the grading process's work: mAP's matching is
# linear in the detections, and a reply may otherwise hold millions (400,000 took 61 s).
MAX_DETECTIONS = 100


def capped_detections(o: dict[str, np.ndarray], n_images: int,
                      cap: int = MAX_DETECTIONS) -> tuple[np.ndarray, ...]:
    """(boxes, scores, labels, index) of each canvas's ``cap`` highest-scoring detections.

    Ties keep the lower index (a stable order, like the NMS of the lab); a NaN score ranks last.
    Raises ValueError for arrays that do not fit together or a canvas index out of range: work
    done here is O(K log K) in the K detections of the reply, before anything else looks at them.
    """
    boxes = np.asarray(o["det_boxes"]).reshape(-1, 4).astype(np.float64)
    n = len(boxes)
    for key in ("det_scores", "det_labels", "det_index"):
        if np.shape(o[key]) != (n,):
            raise ValueError(f"{key} has shape {np.shape(o[key])}, expected ({n},)")
    scores = np.asarray(o["det_scores"]).astype(np.float64)
    labels, index = np.asarray(o["det_labels"]).astype(np.int64), np.asarray(o["det_index"]).astype(np.int64)
    if n and (index.min() < 0 or index.max() >= n_images):
        raise ValueError(f"det_index must be canvas numbers 0..{n_images - 1}")
    rank_score = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((np.arange(n), -rank_score, index))  # by canvas, then score down, then position
    sorted_index = index[order]
    first = np.searchsorted(sorted_index, sorted_index, side="left")  # where each canvas's run starts
    keep = np.sort(order[np.arange(n) - first < cap])
    return boxes[keep], scores[keep], labels[keep], index[keep]


def _cap_note(i: Arrays, o: dict[str, np.ndarray]) -> str:
    kept = len(capped_detections(o, _n_canvases(i))[1])
    return f" ({kept} of them count: at most {MAX_DETECTIONS} per canvas)" if kept < len(o["det_scores"]) else ""


def _n_canvases(i: Arrays) -> int:
    """How many evaluation canvases there are (from the images; else the last one with a digit)."""
    return len(i["test_images"]) if "test_images" in i else int(np.max(i["test_index"], initial=-1)) + 1


_LAST_MAP: list[Any] = []  # (inputs, outputs, result): score and describe share one computation


def _detector_map(metrics: Any, i: Arrays, o: dict[str, np.ndarray]) -> tuple[float, np.ndarray]:
    """(mAP@0.5, AP per digit) of each canvas's 100 best detections, by ``metrics.mean_average_precision``."""
    if _LAST_MAP and _LAST_MAP[0] is i and _LAST_MAP[1] is o and _LAST_MAP[2] is metrics:
        return _LAST_MAP[3]
    boxes, scores, labels, index = capped_detections(o, _n_canvases(i))
    m, aps = metrics.mean_average_precision(
        _t(boxes), _t(scores), _t(labels), _t(index),
        _t(i["test_boxes"]), _t(i["test_labels"]), _t(i["test_index"]), 0.5, 10)
    result = float(m), _np(aps, "mean_average_precision (AP per class)").astype(np.float64).reshape(-1)
    _LAST_MAP[:] = [i, o, metrics, result]  # held here, so their ids cannot be reused meanwhile
    return result


@LAB.case(points=12, inputs=detector_inputs, private=["test_boxes", "test_labels", "test_index"],
          hidden_inputs=(detector_hidden_inputs,), max_hidden=1, timeout=600, slow=True, checks=[
    Metric("det_boxes", lambda m, i, o: _detector_map(m, i, o)[0], DETECTOR_THRESHOLD,
           f"part B: fit_detector + detect, mAP@0.5 on held-out canvases ({N_TEST_B} in the public run, "
           f"1-4 digits each; at most the {MAX_DETECTIONS} highest-scoring detections per canvas count)",
           reference=DETECTOR_REFERENCE, scored_by="mean_average_precision",
           describe=lambda m, i, o: "AP per digit: " + " ".join(
               f"{c}:{a:.2f}" for c, a in enumerate(_detector_map(m, i, o)[1]))
           + f"; {len(o['det_scores'])} detections for {len(i['test_boxes'])} digits"
           + _cap_note(i, o)),
])
def detector_map(lab, train_images, train_boxes, train_labels, train_index, test_images):
    """Part B: train your detector (provided loop, one torch thread) and detect digits on held-out canvases."""
    tt = _torch()
    tt.set_num_threads(TRAIN_THREADS)
    model = lab.fit_detector(_t(train_images).to(tt.uint8), _t(train_boxes), _t(train_labels), _t(train_index), seed=0)
    dets = lab.detect(model, _t(test_images).to(tt.uint8))
    if len(dets) != len(test_images):
        raise ConventionError(f"detect must return one (boxes, scores, labels) per canvas: {len(test_images)}, "
                              f"got {len(dets)}")
    boxes, scores, labels, index = [], [], [], []
    for k, (b, s, c) in enumerate(dets):
        boxes.append(_np(b, "detect (boxes)").astype(np.float64).reshape(-1, 4))
        scores.append(_np(s, "detect (scores)").astype(np.float64).reshape(-1))
        labels.append(_index_array(c, "detect (labels)"))
        index.append(np.full(len(scores[-1]), k, dtype=np.int64))
    return {"det_boxes": np.concatenate(boxes), "det_scores": np.concatenate(scores),
            "det_labels": np.concatenate(labels), "det_index": np.concatenate(index)}
