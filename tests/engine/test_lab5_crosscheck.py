"""Lab 5's reference and the grader's metrics against independent brute-force versions.

torchvision is not usable next to the CPU build of torch 2.13.0, so the reference's IoU, GIoU,
NMS, batched NMS and mAP are checked here against plain Python loops over boxes, against
hand-made cases with known answers, and (GIoU's hand-written backward) against
``torch.autograd.gradcheck``. Also: the canvas generator (deterministic, tight boxes, overlap
limit, digits from the right split), the PNG writer of ``lab5.show``, and torch in the sandbox.
"""

from __future__ import annotations

import struct
import sys
import zlib

import numpy as np
import pytest

from grader import paths
from grader.data import canvases as dd
from grader.data import mnist
from grader.isolation.loading import load_cases, load_package
from grader.judging import expected

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def ref():
    if not (paths.solutions_dir() / "lab5").is_dir():
        pytest.skip("no solutions/ (student release)")
    return load_package(paths.solutions_dir(), "lab5")


@pytest.fixture(scope="module")
def mistakes(ref):
    """The instructor-only predictors (their bug-free paths must agree with the loops too)."""
    return expected.load_instructor("lab5")


def cases_module():
    """Lab 5's cases.py as a module (its hand-made edge cases are checked here too)."""
    load_cases("lab5", paths.tests_dir())
    return sys.modules["_gradelab_cases_lab5"]


def rand_boxes(rng: np.random.Generator, m: int, extent: float = 20.0, size: float = 12.0) -> np.ndarray:
    xy = rng.uniform(0, extent, (m, 2))
    return np.concatenate([xy, xy + rng.uniform(0.5, size, (m, 2))], 1)


# ----------------------------------------------------------------------------- brute force


def iou_loop(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def giou_loss_loop(p: list[float], t: list[float]) -> float:
    iw = max(0.0, min(p[2], t[2]) - max(p[0], t[0]))
    ih = max(0.0, min(p[3], t[3]) - max(p[1], t[1]))
    inter = iw * ih
    union = (p[2] - p[0]) * (p[3] - p[1]) + (t[2] - t[0]) * (t[3] - t[1]) - inter
    c = (max(p[2], t[2]) - min(p[0], t[0])) * (max(p[3], t[3]) - min(p[1], t[1]))
    return 1.0 - (inter / union - (c - union) / c)


def nms_loop(boxes: list[list[float]], scores: list[float], thr: float) -> list[int]:
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(iou_loop(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


def batched_loop(boxes, scores, idxs, thr) -> list[int]:
    kept = []
    for c in sorted(set(idxs)):
        members = [i for i in range(len(boxes)) if idxs[i] == c]
        kept += [members[k] for k in nms_loop([boxes[i] for i in members], [scores[i] for i in members], thr)]
    return sorted(kept, key=lambda i: (-scores[i], i))


def ap_loop(tp: list[int], n_gt: int) -> float:
    precisions, recalls, hits = [], [], 0
    for k, t in enumerate(tp, 1):
        hits += t
        precisions.append(hits / k)
        recalls.append(hits / n_gt)
    ap, prev = 0.0, 0.0
    for k in range(len(tp)):
        if recalls[k] > prev:
            ap += (recalls[k] - prev) * max(precisions[k:])
            prev = recalls[k]
    return ap


def map_loop(det, gt, num_classes: int, thr: float = 0.5) -> list[float]:
    """det: list of (box, score, label, image); gt: list of (box, label, image). NaN: no ground truth."""
    aps = []
    for c in range(num_classes):
        g = [x for x in gt if x[1] == c]
        if not g:
            aps.append(float("nan"))
            continue
        d = sorted([(k, x) for k, x in enumerate(det) if x[2] == c], key=lambda kx: (-kx[1][1], kx[0]))
        used, tp = [False] * len(g), []
        for _, (box, _s, _l, img) in d:
            best, best_iou = -1, -1.0
            for j, (gbox, _gl, gimg) in enumerate(g):
                if gimg == img and not used[j]:
                    v = iou_loop(box, gbox)
                    if v > best_iou:
                        best, best_iou = j, v
            if best >= 0 and best_iou >= thr:
                used[best] = True
                tp.append(1)
            else:
                tp.append(0)
        aps.append(ap_loop(tp, len(g)))
    return aps


# ----------------------------------------------------------------------------- IoU and boxes


@pytest.mark.parametrize("seed", range(5))
def test_box_iou_matches_loops(ref, mistakes, seed):
    rng = np.random.default_rng(seed)
    a, b = rand_boxes(rng, 7), rand_boxes(rng, 9)
    a[0, 2] = a[0, 0]  # a zero-width box
    got = ref.box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    want = np.array([[iou_loop(list(x), list(y)) for y in b] for x in a])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(mistakes._iou(a, b), want, rtol=1e-12, atol=1e-15)


def test_box_iou_known_answers(ref):
    mod = cases_module()
    got = ref.box_iou(torch.from_numpy(mod.EDGE_A), torch.from_numpy(mod.EDGE_B)).numpy().diagonal()
    np.testing.assert_array_equal(got, [1.0, 0.0, 0.0, 0.0, 0.25, 0.5])
    np.testing.assert_array_equal(mod.EDGE_IOU, [1.0, 0.0, 0.0, 0.0, 0.25, 0.5])
    assert iou_loop([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)
    assert float(ref.box_iou(torch.tensor([[0.0, 0, 2, 2]]), torch.tensor([[1.0, 1, 3, 3]]))) == pytest.approx(1 / 7)


def test_conversions_and_coding_round_trip(ref):
    rng = np.random.default_rng(3)
    b = torch.from_numpy(rand_boxes(rng, 20, extent=40.0, size=20.0))
    np.testing.assert_allclose(ref.box_cxcywh_to_xyxy(ref.box_xyxy_to_cxcywh(b)).numpy(), b.numpy(), rtol=1e-12)
    cells, off = ref.encode(b, 8)
    c = ref.box_xyxy_to_cxcywh(b).numpy()
    np.testing.assert_array_equal(cells.numpy(), np.floor(c[:, [1, 0]] / 8))
    assert (off[:, :2] >= 0).all() and (off[:, :2] < 1).all()
    np.testing.assert_allclose(ref.decode(cells, off, 8).numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_build_targets_rule_by_hand(ref):
    boxes = torch.tensor([[1.0, 1, 5, 5], [0, 0, 6, 6], [17, 17, 23, 23], [18, 18, 22, 22], [40, 40, 44, 44],
                          [40.5, 40.5, 44.5, 44.5]], dtype=torch.float64)
    labels = torch.tensor([1, 2, 3, 4, 5, 6])
    index = torch.tensor([0, 0, 0, 0, 1, 1])
    obj, cls, tbox = ref.build_targets(boxes, labels, index, 2, 8, 8)
    assert obj.sum() == 3
    assert cls[0, 0, 0] == 2  # the larger of two boxes in cell (0, 0)
    assert cls[0, 2, 2] == 3  # the larger box (36 vs 16)
    assert cls[1, 5, 5] == 5  # equal areas: the lower index
    assert torch.equal(tbox[1, 5, 5], boxes[4])


# ----------------------------------------------------------------------------- GIoU


def test_giou_forward_matches_loops(ref):
    rng = np.random.default_rng(4)
    p, t = rand_boxes(rng, 30), rand_boxes(rng, 30)
    got = ref.giou_loss(torch.from_numpy(p), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(got, [giou_loss_loop(list(x), list(y)) for x, y in zip(p, t, strict=True)], rtol=1e-12)
    # Known answers: identical boxes lose 0; far apart boxes approach 2.
    same = torch.tensor([[0.0, 0, 2, 2]], dtype=torch.float64)
    assert float(ref.giou_loss(same, same)) == pytest.approx(0.0, abs=1e-15)
    far = float(ref.giou_loss(same, torch.tensor([[98.0, 98, 100, 100]], dtype=torch.float64)))
    assert far == pytest.approx(2 - 8 / 10000)


def test_giou_backward_gradcheck_and_autograd(ref):
    cases = load_cases("lab5", paths.tests_dir())
    inputs = cases.get("giou_backward").make_inputs(np.random.default_rng(9))
    p = torch.from_numpy(inputs["pred"]).requires_grad_(True)
    t = torch.from_numpy(inputs["target"])
    assert torch.autograd.gradcheck(lambda x: ref.giou_loss(x, t), (p,), eps=1e-6, atol=1e-8, rtol=1e-6)
    # The hand-written backward equals autograd through the same formula in plain torch ops.
    g = torch.from_numpy(inputs["upstream"])
    ref.giou_loss(p, t).backward(g)
    q = p.detach().clone().requires_grad_(True)
    iw = (torch.minimum(q[:, 2], t[:, 2]) - torch.maximum(q[:, 0], t[:, 0])).clamp(min=0)
    ih = (torch.minimum(q[:, 3], t[:, 3]) - torch.maximum(q[:, 1], t[:, 1])).clamp(min=0)
    union = (q[:, 2] - q[:, 0]) * (q[:, 3] - q[:, 1]) + (t[:, 2] - t[:, 0]) * (t[:, 3] - t[:, 1]) - iw * ih
    c = (torch.maximum(q[:, 2], t[:, 2]) - torch.minimum(q[:, 0], t[:, 0])) * \
        (torch.maximum(q[:, 3], t[:, 3]) - torch.minimum(q[:, 1], t[:, 1]))
    ((2 - iw * ih / union - union / c) * g).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- NMS


@pytest.mark.parametrize("seed", range(6))
def test_nms_and_batched_nms_match_loops(ref, seed):
    rng = np.random.default_rng(seed)
    centres = rand_boxes(rng, 4, extent=30.0, size=10.0)
    boxes = centres[rng.integers(0, 4, 25)] + rng.normal(0, 1.5, (25, 4))
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
    scores = np.round(rng.uniform(0, 1, 25), 1)  # many ties in score
    idxs = rng.integers(0, 3, 25)
    for thr in (0.2, 0.5, 0.8):
        got = ref.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr).tolist()
        assert got == nms_loop(boxes.tolist(), scores.tolist(), thr)
        got_b = ref.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(idxs), thr).tolist()
        assert got_b == batched_loop(boxes.tolist(), scores.tolist(), idxs.tolist(), thr)


def test_nms_edge_cases_by_hand(ref):
    mod = cases_module()
    keep = ref.nms(torch.from_numpy(mod.EDGE_BOXES), torch.from_numpy(mod.EDGE_SCORES), 0.5).tolist()
    # 0 (ties with 1: lower index wins; 1 and 2 suppressed), 5, then 3 and 4 (zero area: never
    # suppressed), 6 (IoU exactly 0.5 with 5: kept), 7, 8 (inside 7, IoU 0.25), 9 (disjoint).
    assert keep == [0, 5, 3, 4, 6, 7, 8, 9]
    assert ref.nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []


# ----------------------------------------------------------------------------- AP and mAP


def test_average_precision_known_answers(ref):
    assert ref.average_precision(torch.tensor([1.0, 0, 1]), 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert ref.average_precision(torch.tensor([0.0, 1, 1]), 2) == pytest.approx(2 / 3)
    assert ref.average_precision(torch.tensor([1.0, 1]), 4) == pytest.approx(0.5)
    assert ref.average_precision(torch.zeros(0), 3) == 0.0
    # The envelope: precision 1/2 at recall 1/3 is raised to 2/3 (reached later at recall 2/3).
    assert ref.average_precision(torch.tensor([0.0, 1, 1, 0]), 3) == pytest.approx(2 / 3 * 2 / 3)
    assert ap_loop([0, 1, 1, 0], 3) == pytest.approx(4 / 9)


@pytest.mark.parametrize("seed", range(4))
def test_map_matches_loops(ref, mistakes, seed):
    cases = load_cases("lab5", paths.tests_dir())
    i = cases.get("map_fixed_predictions").make_inputs(np.random.default_rng(seed))
    det = list(zip(i["boxes"].tolist(), i["scores"].tolist(), i["labels"].tolist(), i["image_index"].tolist(),
                   strict=True))
    gt = list(zip(i["gt_boxes"].tolist(), i["gt_labels"].tolist(), i["gt_index"].tolist(), strict=True))
    want = np.array(map_loop(det, gt, int(i["num_classes"])))
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in i.items()}
    m, aps = ref.mean_average_precision(t["boxes"], t["scores"], t["labels"], t["image_index"], t["gt_boxes"],
                                        t["gt_labels"], t["gt_index"], 0.5, int(i["num_classes"]))
    np.testing.assert_allclose(aps.numpy(), want, rtol=1e-12)
    assert m == pytest.approx(np.nanmean(want))
    # the instructor predictors' bug-free matching (-1: a class without ground truth)
    np.testing.assert_allclose(mistakes._map_aps(i), np.where(np.isnan(want), -1.0, want), rtol=1e-12)


def test_map_perfect_and_empty(ref):
    """The grader's metric (the reference's, Metric.scored_by): 1 for perfect detections, 0 for none."""
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float64)
    labels, index = torch.tensor([1, 2]), torch.tensor([0, 0])
    m, _ = ref.mean_average_precision(gt, torch.tensor([0.9, 0.8], dtype=torch.float64), labels, index, gt,
                                      labels, index)
    assert m == 1.0
    none = torch.zeros(0, dtype=torch.int64)
    m, _ = ref.mean_average_precision(torch.zeros((0, 4), dtype=torch.float64), torch.zeros(0, dtype=torch.float64),
                                      none, none, gt, labels, index)
    assert m == 0.0


# ----------------------------------------------------------------------------- the canvases


def test_canvases_are_deterministic_with_tight_boxes_and_limited_overlap():
    a = dd.lab5_canvases("B", "train", 60, 5)
    b = dd.lab5_canvases("B", "train", 60, 5)
    for x, y in ((a.images, b.images), (a.boxes, b.boxes), (a.labels, b.labels), (a.image_index, b.image_index)):
        np.testing.assert_array_equal(x, y)
    assert a.images.shape == (60, 64, 64) and a.images.dtype == np.uint8
    assert set(np.bincount(a.image_index, minlength=60)) <= {1, 2, 3, 4}
    assert ((a.labels >= 0) & (a.labels <= 9)).all()
    for k in range(60):
        own = a.boxes[a.image_index == k]
        iou = np.array([[iou_loop(list(x), list(y)) for y in own] for x in own])
        assert (iou[~np.eye(len(own), dtype=bool)] <= 0.3 + 1e-12).all()
    one = dd.lab5_canvases("A", "test", 40, 2)
    for img, box in zip(one.images, one.boxes, strict=True):
        x1, y1, x2, y2 = box.astype(int)
        ink = img >= dd.INK
        assert ink[y1:y2, x1:x2].sum() == ink.sum()  # every ink pixel inside the box
        assert ink[y1, x1:x2].any() and ink[y2 - 1, x1:x2].any()  # tight: ink on every edge
        assert ink[y1:y2, x1].any() and ink[y1:y2, x2 - 1].any()


def test_train_and_test_canvases_use_disjoint_digits():
    split = mnist.load_mnist()
    calls = []

    def spy(images, labels, n, seed, **kw):
        calls.append(images)
        return dd.Canvases(np.zeros((0, 64, 64), np.uint8), np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, int))

    original = dd.make_canvases
    dd.make_canvases = spy
    try:
        dd.lab5_canvases("A", "train", 1, 0)
        dd.lab5_canvases("A", "test", 1, 0)
    finally:
        dd.make_canvases = original
    assert calls[0] is split.train_images and calls[1] is split.test_images


def test_show_writes_a_valid_png(ref, tmp_path):
    show = __import__(ref.__name__ + ".show", fromlist=["write_png"])
    img = np.zeros((5, 7, 3), np.uint8)
    img[2, 3] = (255, 0, 0)
    show.write_png(tmp_path / "x.png", img)
    data = (tmp_path / "x.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (7, 5)
    idat = data.index(b"IDAT")
    n = struct.unpack(">I", data[idat - 4:idat])[0]
    raw = np.frombuffer(zlib.decompress(data[idat + 4:idat + 4 + n]), np.uint8).reshape(5, 1 + 7 * 3)
    np.testing.assert_array_equal(raw[:, 1:].reshape(5, 7, 3), img)


# ----------------------------------------------------------------------------- torch in the sandbox


@pytest.mark.sandbox
def test_torch_pieces_grade_in_the_sandbox(sandbox, solutions):
    """The torch cases run in the bwrap child (8 GiB address-space cap) and score full marks."""
    from grader.runner import grade

    lab = load_cases("lab5", paths.tests_dir())
    only = ["box_iou_random", "nms_edge_cases", "giou_backward", "detection_loss_gradient"]
    result = grade(lab, solutions, isolated=True, only=only)
    assert "bubblewrap" in result.isolation
    assert result.score == sum(lab.get(n).points for n in only), [c.output for c in result.cases]
