"""The Lab 1 handout agrees with the graded cases: the case table, the threshold, the release copy,
and the example failure messages (each is what the grader prints today for the bug it describes).

The handout (solutions/lab1/README.md, released verbatim as labs/lab1/README.md) is what a
student reads to learn what is graded; these tests fail when cases.py changes and it does not.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import grade

RELEASED = paths.labs_dir() / "lab1" / "README.md"
SOURCE = paths.solutions_dir() / "lab1" / "README.md"

TABLE_HEADER = "| case | points | what it checks |"
# The one sentence that states the MNIST threshold, e.g. "**Threshold: held-out accuracy >= 0.93**".
THRESHOLD_MARKER = re.compile(r"\*\*Threshold: held-out accuracy >= ([0-9]*\.[0-9]+)\*\*")
ROW = re.compile(r"^\|\s*`(?P<name>[A-Za-z_][A-Za-z0-9_]*)`\s*\|\s*(?P<points>[0-9]+(?:\.[0-9]+)?)\s*\|")


def handout() -> str:
    return RELEASED.read_text(encoding="utf-8")


def case_table(text: str) -> list[tuple[str, float]]:
    """(case, points) rows of the table under TABLE_HEADER, in order; every row must parse."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == TABLE_HEADER]
    assert len(starts) == 1, f"expected exactly one line {TABLE_HEADER!r} in {RELEASED}, found {len(starts)}"
    body = lines[starts[0] + 1:]
    assert body and re.fullmatch(r"\|(\s*-+\s*\|)+", body[0].strip()), "the case table has no separator row"
    rows = []
    for line in body[1:]:
        if not line.strip().startswith("|"):
            break
        match = ROW.match(line.strip())
        assert match, f"unreadable row in the handout's case table: {line!r}"
        rows.append((match["name"], float(match["points"])))
    return rows


def lab1_cases():
    return load_cases("lab1", paths.tests_dir())


def cases_module() -> ModuleType:
    """tests/lab1/cases.py as load_cases imported it (for ACCURACY_THRESHOLD and REFERENCE_ACCURACY)."""
    lab = lab1_cases()
    module = sys.modules[lab.cases[0].run.__module__]
    assert module.LAB is lab
    return module


def test_case_table_lists_every_case_with_its_points_in_order() -> None:
    rows = case_table(handout())
    expected = [(c.name, float(c.points)) for c in lab1_cases().cases]
    assert rows == expected


def test_case_table_points_sum_to_100() -> None:
    rows = case_table(handout())
    assert sum(points for _, points in rows) == 100
    assert lab1_cases().max_score == 100


def test_threshold_in_handout_is_the_graded_threshold() -> None:
    found = THRESHOLD_MARKER.findall(handout())
    assert len(found) == 1, f"expected the threshold sentence exactly once, found {len(found)}"
    assert float(found[0]) == cases_module().ACCURACY_THRESHOLD


def test_quoted_reference_accuracy_matches_cases() -> None:
    """The mean and worst-seed accuracies the handout quotes are those cases.py reports on failure."""
    text = handout()
    mean = re.search(r"\*\*mean of ([0-9.]+)\*\*", text)
    worst = re.search(r"\*\*worst seed scores ([0-9.]+)\*\*", text)
    assert mean and worst, "the handout no longer quotes the reference's mean and worst accuracy"
    reference = cases_module().REFERENCE_ACCURACY
    assert f"{mean[1]} on average" in reference
    assert f"(worst {worst[1]})" in reference


def test_released_handout_is_the_source_byte_for_byte() -> None:
    if not SOURCE.is_file():
        pytest.skip("no solutions/ (student release)")
    assert Path(RELEASED).read_bytes() == SOURCE.read_bytes(), "run `gradelab stubs` to release the handout"


EXAMPLE = re.compile(r"<!-- example: (?P<id>[\w-]+)[^>]*-->\n```text\n(?P<body>.*?)\n```", re.S)
# The submission each example in the handout comes from: a patch of the reference, and the case.
EXAMPLES = {
    "bias-grad-averaged": ({"layers.py": [("self.bias.grad += grad_output.sum(axis=0)",
                                           "self.bias.grad += grad_output.mean(axis=0)")]}, "linear_backward_bias"),
    "loss-grad-missing-1-over-N": ({"losses.py": [("return grad * (grad_output / n)", "return grad * grad_output")]},
                                   "softmax_ce_backward"),
    "relu-backward-modifies-grad-output": ({"layers.py": [(
        "return grad_output * self._mask", "grad_output[~self._mask] = 0.0\n        return grad_output")]},
        "relu_backward"),
    "sequential-backward-first-to-last": ({"layers.py": [("for layer in reversed(self.layers):",
                                                          "for layer in self.layers:")]},
                                          "sequential_forward_backward"),
}


def test_every_example_message_in_the_handout_is_what_the_grader_prints(patched_reference) -> None:
    found = {m["id"]: m["body"] for m in EXAMPLE.finditer(handout())}
    assert set(found) == set(EXAMPLES) | {"stubs"}, "an example in the handout has no submission here (or vice versa)"
    stubs = grade(lab1_cases(), paths.labs_dir(), isolated=False, only=["linear_backward_bias"])
    assert stubs.cases[0].output in found["stubs"]
    for example, (patches, case) in EXAMPLES.items():
        result = grade(lab1_cases(), patched_reference(example, patches), isolated=False, only=[case])
        assert result.cases[0].output == found[example], f"the handout's example {example!r} is out of date"
