"""The Lab 4 handout says what the grader does: case table, threshold, measured accuracy, example message."""

from __future__ import annotations

import re

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import grade

SOURCE = paths.solutions_dir() / "lab4" / "README.md"
RELEASED = paths.labs_dir() / "lab4" / "README.md"
LAB = load_cases("lab4", paths.tests_dir())
CASES = __import__("sys").modules[LAB.cases[0].run.__module__]  # tests/lab4/cases.py as the loader imported it


def handout() -> str:
    return RELEASED.read_text()


def test_released_handout_is_the_source_byte_for_byte() -> None:
    if not SOURCE.is_file():
        pytest.skip("no solutions/ (student release)")
    assert RELEASED.read_bytes() == SOURCE.read_bytes(), "run `gradelab stubs` to release the handout"


def test_case_table_lists_every_case_with_its_points_in_order() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \|", handout(), re.M)
    assert [(n, float(p)) for n, p in rows] == [(c.name, float(c.points)) for c in LAB.cases]
    assert LAB.max_score == 100


def test_threshold_and_measured_accuracy_are_the_graded_ones() -> None:
    text = handout()
    assert f"The threshold is **{CASES.ACCURACY_THRESHOLD:.2f}**" in text
    for number in re.findall(r"0\.9\d{3}", CASES.REFERENCE_ACCURACY):
        assert f"**{number}**" in text, f"the handout does not quote {number} from cases.py"


def test_example_message_is_what_the_grader_prints(patched_reference) -> None:
    match = re.search(r"<!-- example: adam-without-bias-correction[^>]*-->\n```text\n(.*?)\n```", handout(), re.S)
    assert match, "the handout's example block is missing"
    root = patched_reference("adam-without-bias-correction", {"optim.py": [(
        "m_hat = m / (1.0 - beta1**t)\n            v_hat = v / (1.0 - beta2**t)", "m_hat = m\n            v_hat = v")]},
        lab="lab4")
    output = grade(LAB, root, isolated=False, only=["adam"]).cases[0].output
    example = match.group(1)
    assert output.startswith(example + "\n"), f"the handout's example is out of date; the grader prints:\n{output}"
