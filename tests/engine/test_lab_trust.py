"""Grades that cannot be looked up or gamed (issue 15, items 5-7), on Labs 2 and 5.

* Lab 5's held-out canvases come from a public generator and labelled digits that ship with the
  release: a "model" that looks canvases up in a table built from that generator scores full marks
  on the public run, and must score 0 in grading, where a hidden variant's canvases come from a
  hidden seed.
* Lab 5's ``detect`` may return any number of boxes: only the 100 best per canvas reach the
  grader's mAP, so a reply of 400,000 detections costs the grading process at most 50,000.
* Lab 5's GIoU backward must be written by hand: one that differentiates the forward with
  autograd (``torch.autograd.grad``, ``.backward()``, ``torch.func``) loses ``giou_backward`` and
  is told why.
* Lab 2's Dropout mask must be random: a block of entries at a random offset, a mask drawn per
  row or per column, the same mask on every call, and a deterministic pattern lose the Dropout
  cases, each named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from grader import paths
from grader.data import canvases as dd
from grader.isolation.loading import load_cases, load_package
from grader.runner import grade

LAB5 = load_cases("lab5", paths.tests_dir())
LAB2 = load_cases("lab2", paths.tests_dir())
TRAINING = ["localizer_accuracy", "detector_map"]


# ----------------------------------------------------------------------------- Lab 5: a lookup table

LOOKUP_MODELS = '''

# --- the attack: no model, answers looked up by canvas hash in a table made from the public generator
import hashlib as _hashlib  # noqa: E402
import json as _json  # noqa: E402
import pathlib as _pathlib  # noqa: E402

_TABLE = _json.loads((_pathlib.Path(__file__).with_name("answers.json")).read_text())


def _key(image):
    return _hashlib.sha256(image.numpy().astype("uint8").tobytes()).hexdigest()


def fit_localizer(images, boxes, labels, seed=0):
    return None


def predict_localizer(model, images):
    found = [_TABLE["A"].get(_key(img), [[[0.0, 0.0, 1.0, 1.0]], [0]]) for img in images]
    return (torch.tensor([f[0][0] for f in found], dtype=torch.float64),
            torch.tensor([f[1][0] for f in found], dtype=torch.int64))


def fit_detector(images, boxes, labels, index, seed=0):
    return None


def detect(model, images, *args, **kwargs):
    out = []
    for img in images:
        boxes, labels = _TABLE["B"].get(_key(img), [[], []])
        out.append((torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
                    torch.ones(len(labels), dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)))
    return out
'''


def canvas_key(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def answer_table() -> dict[str, dict[str, list]]:
    """What a student can build from the release: the public evaluation canvases of both parts
    (generator seed 0, as the public run uses) and their boxes and labels, by canvas hash."""
    table: dict[str, dict[str, list]] = {}
    for part, name, count in (("A", "localizer_accuracy", 1000), ("B", "detector_map", 500)):
        assert f"({count} in the public run" in LAB5.get(name).checks[0].what  # what the handout says
        c = dd.lab5_canvases(part, "test", count, 0)
        table[part] = {canvas_key(img): [c.boxes[c.image_index == k].tolist(), c.labels[c.image_index == k].tolist()]
                       for k, img in enumerate(c.images)}
    return table


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, list]]:
    return answer_table()


def lookup_submission(patched_reference, table: dict, name: str) -> Path:
    root = patched_reference(name, {}, lab="lab5")
    (root / "lab5" / "answers.json").write_text(json.dumps(table))
    models = root / "lab5" / "models.py"
    models.write_text(models.read_text() + LOOKUP_MODELS)
    return root


@pytest.mark.slow
@pytest.mark.torch
def test_lookup_table_scores_full_marks_on_the_public_canvases(patched_reference, table) -> None:
    """The attack is real: the table answers every public evaluation canvas, with no training."""
    pytest.importorskip("torch")
    result = grade(LAB5, lookup_submission(patched_reference, table, "lookup-public"), isolated=False, only=TRAINING)
    assert result.score == sum(LAB5.get(n).points for n in TRAINING), [c.output for c in result.cases]


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.sandbox
def test_lookup_table_scores_zero_in_grading(sandbox, patched_reference, table) -> None:
    """In grading, each training case also evaluates on canvases composed from a hidden seed: the
    table built from the public generator knows none of them, and both cases score 0."""
    pytest.importorskip("torch")
    result = grade(LAB5, lookup_submission(patched_reference, table, "lookup-graded"), isolated=True, only=TRAINING)
    assert "bubblewrap" in result.isolation
    assert result.score == 0, [c.output for c in result.cases]
    for case in result.cases:
        assert "(hidden variant 0) failed" in case.output, case.output
        assert "below the threshold" in case.output, case.output


@pytest.mark.slow
def test_hidden_variants_of_the_training_cases_use_other_canvases() -> None:
    """A hidden variant's evaluation canvases differ from the public ones (other digits, places and
    number), its training canvases do not; one hidden seed each (a training run is costly)."""
    from grader.judging.expected import case_rng, make_inputs
    from grader.runner import hidden_seeds

    seeds = hidden_seeds("lab5")
    assert len(seeds) >= 1
    for name in TRAINING:
        case = LAB5.get(name)
        assert case.hidden and case.hidden_seeds(seeds) == seeds[:1]
        public = make_inputs(case, case.seeds[0])
        hidden = make_inputs(case, seeds[0], 0)
        np.testing.assert_array_equal(public["train_images"], hidden["train_images"])
        assert len(hidden["test_images"]) >= len(public["test_images"])
        shared = {canvas_key(i) for i in public["test_images"]} & {canvas_key(i) for i in hidden["test_images"]}
        assert not shared
        pick = case.run.__globals__["_hidden_test"]  # another hidden seed, another canvas seed
        assert pick(case_rng(case, seeds[0]), 10)[0] != pick(case_rng(case, seeds[0] + 1), 10)[0]


# ----------------------------------------------------------------------------- Lab 5: the detection cap

def _junk_and_truth(per_canvas: int, truth_first: bool) -> dict[str, np.ndarray]:
    """400,000-style reply: ``per_canvas`` detections per public part-B canvas, the true boxes with
    score 0.9 (``truth_first``) or 0.1, the rest tiny junk boxes scored 0.5."""
    c = dd.lab5_canvases("B", "test", 500, 0)
    rng = np.random.default_rng(1)
    boxes, scores, labels, index = [], [], [], []
    for k in range(len(c.images)):
        truth = c.boxes[c.image_index == k]
        junk = per_canvas - len(truth)
        xy = rng.uniform(0, 60, size=(junk, 2))
        boxes += [truth, np.concatenate([xy, xy + 1.0], 1)]
        scores += [np.full(len(truth), 0.9 if truth_first else 0.1), np.full(junk, 0.5)]
        labels += [c.labels[c.image_index == k], rng.integers(0, 10, junk)]
        index += [np.full(per_canvas, k)]
    return {"det_boxes": np.concatenate(boxes), "det_scores": np.concatenate(scores),
            "det_labels": np.concatenate(labels).astype(np.int64), "det_index": np.concatenate(index)}


@pytest.mark.slow
@pytest.mark.torch
def test_only_the_100_best_detections_per_canvas_reach_the_metric(solutions) -> None:
    """400,000 detections (800 per canvas): the grader's mAP sees at most 100 per canvas, the highest
    scored, so truth scored above the junk gives mAP 1, truth scored below 100 junk boxes gives 0."""
    pytest.importorskip("torch")
    from grader.judging.expected import make_inputs
    metrics = load_package(solutions, "lab5")
    case = LAB5.get("detector_map")
    seen: list[int] = []

    def counting_map(boxes, *rest):
        seen.append(len(boxes))
        return metrics.mean_average_precision(boxes, *rest)

    counting = SimpleNamespace(mean_average_precision=counting_map)
    inputs = make_inputs(case, case.seeds[0])
    metric = case.checks[0]
    for truth_first, expected in ((True, 1.0), (False, 0.0)):
        outputs = _junk_and_truth(800, truth_first)
        assert len(outputs["det_scores"]) == 400_000
        start = time.perf_counter()
        score = metric.score(counting, inputs, outputs)
        print(f"truth first={truth_first}: scored 400,000 detections in {time.perf_counter() - start:.2f} s")
        assert seen[-1] <= 100 * len(inputs["test_images"])
        assert score == pytest.approx(expected)
    assert "(50000 of them count: at most 100 per canvas)" in metric.describe(counting, inputs, outputs)


def test_cap_keeps_the_highest_scores_per_canvas_ties_by_position() -> None:
    capped = LAB5.get("detector_map").run.__globals__["capped_detections"]
    scores = np.array([0.1, 0.9, 0.5, 0.9, np.nan, 0.7, 0.2])
    index = np.array([0, 0, 0, 0, 0, 1, 1])
    o = {"det_boxes": np.arange(28, dtype=float).reshape(7, 4), "det_scores": scores,
         "det_labels": np.arange(7), "det_index": index}
    boxes, s, labels, idx = capped(o, 2, cap=2)
    assert labels.tolist() == [1, 3, 5, 6]  # canvas 0: the two 0.9s (both kept); canvas 1: both
    boxes, s, labels, idx = capped(o, 2, cap=3)
    assert labels.tolist() == [1, 2, 3, 5, 6]  # NaN ranks last, below 0.1
    with pytest.raises(ValueError, match="canvas numbers"):
        capped({**o, "det_index": index + 5}, 2)
    with pytest.raises(ValueError, match="det_scores has shape"):
        capped({**o, "det_scores": scores[:3]}, 2)


# ----------------------------------------------------------------------------- Lab 5: GIoU backward by hand

SAVED = "        pred, target = ctx.saved_tensors\n"
_REDO = ("            x = pred.detach().requires_grad_(True)\n"
         "            q = _giou_parts(x, target)\n"
         "            value = 2.0 - q['inter'] / q['union'] - q['union'] / q['enclosing']\n")
AUTOGRAD_BACKWARDS = {
    "giou-backward-by-autograd-grad": SAVED + "        with torch.enable_grad():\n" + _REDO
    + "            (dpred,) = torch.autograd.grad(value, x, grad_output)\n        return dpred, None\n",
    "giou-backward-by-backward-call": SAVED + "        with torch.enable_grad():\n" + _REDO
    + "            value.backward(grad_output)\n        return x.grad, None\n",
    "giou-backward-by-torch-func-vjp": SAVED + (
        "        def f(x):\n"
        "            q = _giou_parts(x, target)\n"
        "            return 2.0 - q['inter'] / q['union'] - q['union'] / q['enclosing']\n"
        "        _, vjp = torch.func.vjp(f, pred)\n"
        "        return vjp(grad_output)[0], None\n"),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(AUTOGRAD_BACKWARDS))
def test_giou_backward_that_lets_autograd_do_it_loses_the_case(grade_bug, name) -> None:
    """The gradient is right (it passes both gradient checks), but backward recorded an autograd
    graph (or ran a torch.func transform): giou_backward fails, saying why, and nothing else."""
    pytest.importorskip("torch")
    got = grade_bug(LAB5, name, {"loss.py": [(SAVED, AUTOGRAD_BACKWARDS[name])]},
                    {"giou_backward": ["GIoULoss.backward builds no autograd graph",
                                       "asks for a hand-written backward", "lets autograd do the task"]},
                    [c.name for c in LAB5.cases if c.name not in TRAINING])
    message = got.outputs["giou_backward"]
    assert "GIoULoss.backward: dL/dpred" not in message  # the gradient itself matched: only the graph is blamed
    assert ("got      = -1" in message) == name.endswith("vjp"), message


# ----------------------------------------------------------------------------- Lab 2: a random Dropout mask

MASK = "self._scale = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)"
_I = "\n            "  # the indentation of the mask's line in the reference


def _block(start: str) -> str:
    return (f"n = x.size{_I}k = int(round(self.p * n)){_I}start = {start}{_I}"
            f"flat = np.full(n, 1.0 / (1.0 - self.p)){_I}flat[(start + np.arange(k)) % n] = 0.0{_I}"
            "self._scale = flat.reshape(x.shape)")


DROPOUT = [c.name for c in LAB2.cases if c.name.startswith("dropout")]
FAST2 = [c.name for c in LAB2.cases if c.name != "mnist_accuracy"]
PER_ROW = "whole rows (samples) are dropped or kept"
PER_COLUMN = "every sample (row) has the same mask"
BLOCK = "one contiguous block"
RANDOM_ROWS = "is random per row"

DROPOUT_BUGS = [
    # Passed every graded property before: the drop fraction is exactly p, the scale right, a new
    # (shifted) block on each call, reproducible from self.rng.
    pytest.param({"dropout_train_forward": [RANDOM_ROWS, BLOCK, "two calls draw independent masks"]},
                 _block("int(self.rng.integers(n))"), id="dropout-block-at-random-offset"),
    pytest.param({"dropout_train_forward": [RANDOM_ROWS, "two calls draw different masks", "the same entries"],
                  "train_eval_nested": ["two training forwards differ"]},
                 _block("0"), id="dropout-fixed-block"),
    pytest.param({"dropout_train_forward": ["two calls draw independent masks", "both calls dropped the same entries",
                                            "two calls draw different masks"],
                  "train_eval_nested": ["two training forwards differ"]},
                 f"if getattr(self, '_fixed', None) is None or self._fixed.shape != x.shape:{_I}    "
                 f"self._fixed = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p){_I}self._scale = self._fixed",
                 id="dropout-same-random-mask-every-call"),
    pytest.param({"dropout_train_forward": [RANDOM_ROWS, PER_ROW],
                  "dropout_eval_and_edges": ["Dropout(p close to 1).forward: fraction of entries set to 0"]},
                 "self._scale = (self.rng.random((x.shape[0],) + (1,) * (x.ndim - 1)) >= self.p) "
                 "/ (1.0 - self.p) * np.ones_like(x)", id="dropout-mask-per-row"),
    pytest.param({"dropout_train_forward": ["is random per column", PER_COLUMN],
                  "dropout_eval_and_edges": ["Dropout(p close to 1).forward: fraction of entries set to 0"]},
                 "self._scale = (self.rng.random(x.shape[1:]) >= self.p) / (1.0 - self.p) * np.ones_like(x)",
                 id="dropout-same-mask-for-every-sample"),
    # Exactly p of every row and column, a new offset per call: only the spread and the
    # independence of the calls give it away.
    pytest.param({"dropout_train_forward": ["vary across rows and columns as independent draws do",
                                            "two calls draw independent masks"]},
                 f"i, j = np.indices(x.shape[:1] + (x[0].size,)){_I}off = int(self.rng.integers(100)){_I}"
                 "keep = ((7 * i + 3 * j + off) % 100 >= round(100 * self.p)).reshape(x.shape)"
                 f"{_I}self._scale = keep / (1.0 - self.p)", id="dropout-deterministic-stripes"),
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("fails", "mask"), DROPOUT_BUGS)
def test_dropout_mask_that_is_not_random_loses_the_dropout_cases(grade_bug, request, fails, mask) -> None:
    assert set(fails) <= set(DROPOUT) | {"train_eval_nested"}
    grade_bug(LAB2, request.node.callspec.id, {"dropout.py": [(MASK, mask)]}, fails, FAST2)


def test_random_mask_bounds_hold_for_valid_masks_and_fail_the_reference_rarely() -> None:
    """The bounds are exact binomial tails: over 200 valid masks (the reference's draw, at the cases'
    p) no check fails, and the bounds sit within a few standard deviations' reach of n p."""
    case = LAB2.get("dropout_train_forward")
    g = case.run.__globals__
    for n, p in ((250, 0.3), (400, 0.2), (250, 0.65)):
        lo, hi = g["binomial_bounds"](n, p)
        sd = (n * p * (1 - p)) ** 0.5
        assert 5 * sd < n * p - lo < 9 * sd and 5 * sd < hi - n * p < 9 * sd
    rng = np.random.default_rng(3)
    for p in (0.2, 0.3, 0.65):
        for _ in range(70):
            o = {"dropped": (rng.random((2, 400, 250)) < p).astype(np.uint8)}
            i = {"p": np.array(p), "x": np.ones((400, 250))}
            assert [c.score(i, o) for c in case.checks if hasattr(c, "score")] == [1.0] * 4


def test_dropout_masks_of_another_shape_are_refused_before_any_work() -> None:
    """The bounds' cost grows with the mask: a reply with a huge mask fails at once, unscored."""
    from grader.judging.compare import evaluate
    from grader.judging.expected import make_inputs

    case = LAB2.get("dropout_train_forward")
    inputs = make_inputs(case, case.seeds[0])
    huge = {"dropped": np.zeros((2, 8000, 8000), np.uint8)}
    messages = [m for c in case.checks if hasattr(c, "score")
                for m in evaluate(dataclasses.replace(case, checks=(c,)), inputs, huge, {})]
    assert len(messages) == 4 and all("could not be scored" in m and "(2, 400, 250)" in m for m in messages), messages
