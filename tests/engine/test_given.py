"""Judging a function given the student's own earlier results (grader/judging/given.py), and hidden
variants that describe their inputs (grader/judging/case.py ``described``, quoted by the runner).

Real parts: Lab 5's cases and a patched copy of its reference (an IoU with the "+1" pixel
convention), graded in-process; the runner's hidden-variant path with the live reference.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.judging import given
from grader.judging.expected import ReferenceExpected
from grader.runner import InProcess, grade, reference, run_case

pytest.importorskip("torch")
pytestmark = pytest.mark.torch

IOU_PLUS_ONE = {"boxes.py": [
    ("wh = (rb - lt).clamp(min=0)", "wh = (rb - lt + 1).clamp(min=0)"),
    ("union = box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter",
     "area = lambda b: (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)\n"
     "    union = area(boxes1)[:, None] + area(boxes2)[None, :] - inter")]}
THROUGH_IOU = ["nms_random", "nms_edge_cases", "batched_nms_categories", "map_fixed_predictions"]


def test_an_iou_bug_costs_nothing_in_the_cases_built_on_box_iou(patched_reference) -> None:
    lab = load_cases("lab5", paths.tests_dir())
    root = patched_reference("iou-plus-one", IOU_PLUS_ONE, lab="lab5")
    result = grade(lab, root, isolated=False, only=["box_iou_random", *THROUGH_IOU])
    failed = {c.name: c.output for c in result.cases if not c.passed}
    assert set(failed) == {"box_iou_random"}, failed


def test_without_an_instructor_module_the_message_says_to_fix_the_earlier_function_first(
        patched_reference, monkeypatch) -> None:
    """A student's release has no solutions/: nothing can apply the reference to their IoU matrix."""
    monkeypatch.setattr(given, "load_instructor", lambda lab: None)
    lab = load_cases("lab5", paths.tests_dir())
    root = patched_reference("iou-plus-one-release", IOU_PLUS_ONE, lab="lab5")
    result = grade(lab, root, isolated=False, only=THROUGH_IOU)
    for case in result.cases:
        assert not case.passed, case.name
        assert "is computed through your box_iou, which differs from the reference" in case.output, case.output
        assert "fix box_iou first" in case.output and "yours" in case.output, case.output


def test_a_failing_hidden_variant_says_what_kind_of_input_it_used(patched_reference) -> None:
    """col2im ignoring its stride, on col2im_no_padding's hidden variant 1 (stride 2, no padding)."""
    lab = load_cases("lab3", paths.tests_dir())
    root = patched_reference("col2im-stride-hidden", {"conv.py": [(
        "xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += cols[:, :, u, v]",
        "xp[:, :, u:u + ho, v:v + wo] += cols[:, :, u, v]")]}, lab="lab3")
    case = lab.get("col2im_no_padding")
    executor = InProcess(root, "lab3", use_alarm=False)
    result = run_case(case, executor, ReferenceExpected(reference("lab3")), [(7, True), (8, True)])
    assert not result.passed
    assert "(hidden variant 0) (inputs: stride 1, no padding, 3x2 kernel)" not in result.output  # stride 1 passes
    assert "col2im_no_padding (hidden variant 1) (inputs: stride 2, no padding, 2x3 kernel) failed" in result.output, \
        result.output
