"""The Lab 2 handout agrees with the graded cases and with what the grader prints.

The case table lists every case with its points, the threshold and the quoted reference accuracy
are those of cases.py, the worked failure message is the one the grader prints today for the
bug it describes, and the released copy is the source byte for byte.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import grade

RELEASED = paths.labs_dir() / "lab2" / "README.md"
SOURCE = paths.solutions_dir() / "lab2" / "README.md"
TABLE_HEADER = "| case | points | what it checks |"
ROW = re.compile(r"^\|\s*`(?P<name>\w+)`\s*\|\s*(?P<points>[0-9]+(?:\.[0-9]+)?)\s*\|")
LAB = load_cases("lab2", paths.tests_dir())
CASES = sys.modules[LAB.cases[0].run.__module__]


def handout() -> str:
    return RELEASED.read_text(encoding="utf-8")


def case_table(text: str) -> list[tuple[str, float]]:
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == TABLE_HEADER]
    assert len(starts) == 1, f"expected exactly one {TABLE_HEADER!r}"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.strip().startswith("|"):
            break
        match = ROW.match(line.strip())
        assert match, f"unreadable row: {line!r}"
        rows.append((match["name"], float(match["points"])))
    return rows


def test_case_table_lists_every_case_with_its_points_in_order() -> None:
    assert case_table(handout()) == [(c.name, float(c.points)) for c in LAB.cases]
    assert LAB.max_score == 100


def test_threshold_and_reference_accuracy_are_those_graded() -> None:
    text = handout()
    found = re.findall(r"\*\*Threshold: held-out accuracy >= ([0-9.]+)\*\*", text)
    assert found == [str(CASES.ACCURACY_THRESHOLD)]
    mean = re.search(r"\*\*mean of ([0-9.]+)\*\*", text)
    worst = re.search(r"\*\*worst seed scores ([0-9.]+)\*\*", text)
    assert mean and worst
    assert f"{mean[1]} on average" in CASES.REFERENCE_ACCURACY
    assert f"(worst {worst[1]})" in CASES.REFERENCE_ACCURACY


def test_handout_says_the_release_contains_lab1s_solution() -> None:
    words = " ".join(handout().split())
    assert "Lab 2's release contains Lab 1's solution" in words
    assert "releases Lab 2 after Lab 1's deadline" in words


def test_worked_failure_message_is_what_the_grader_prints(patched_reference) -> None:
    """The handout's example (x_hat used for x - mean in the staged backward), regraded now."""
    text = handout()
    start = text.index("bn1d_backward_dx (seed 0) failed:")
    example = text[start:text.index("```", start)].rstrip("\n")
    root = patched_reference("swapped", {"batchnorm.py": [
        ("distd = (dx_hat * xc).sum(axis=0)", "distd = (dx_hat * x_hat).sum(axis=0)")]}, lab="lab2")
    result = grade(LAB, root, isolated=False, only=["bn1d_backward_dx"])
    assert result.cases[0].output.rstrip("\n") == example


def test_released_handout_is_the_source_byte_for_byte() -> None:
    if not SOURCE.is_file():
        pytest.skip("no solutions/ (student release)")
    assert Path(RELEASED).read_bytes() == SOURCE.read_bytes(), "run `gradelab stubs` to release the handout"
