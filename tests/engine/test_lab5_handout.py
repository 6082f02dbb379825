"""The Lab 5 handout agrees with the graded cases: the case table (names, points, order), the
two thresholds, and the release copy (labs/lab5/README.md is generated from solutions/)."""

from __future__ import annotations

import re
import sys

from grader import paths
from grader.isolation.loading import load_cases

ROW = re.compile(r"^\|\s*`(?P<name>\w+)`\s*\|\s*(?P<points>[0-9]+)\s*\|")


def handout() -> str:
    return (paths.labs_dir() / "lab5" / "README.md").read_text(encoding="utf-8")


def test_case_table_matches_the_cases() -> None:
    lab = load_cases("lab5", paths.tests_dir())
    lines = handout().splitlines()
    start = lines.index("| case | points | what it checks |")
    rows = [ROW.match(line) for line in lines[start + 2:] if line.startswith("|")]
    assert all(rows)
    assert [(m["name"], float(m["points"])) for m in rows] == [(c.name, c.points) for c in lab.cases]
    assert sum(float(m["points"]) for m in rows) == 100


def test_thresholds_in_the_handout_are_the_graded_ones() -> None:
    load_cases("lab5", paths.tests_dir())
    cases = sys.modules["_gradelab_cases_lab5"]
    text = handout()
    marker = re.search(r"\*\*Threshold: part A accuracy >= ([0-9.]+), part B mAP@0\.5 >= ([0-9.]+)\*\*", text)
    assert marker, "the handout states both thresholds in one bold sentence"
    assert float(marker[1]) == cases.LOCALIZER_THRESHOLD
    assert float(marker[2]) == cases.DETECTOR_THRESHOLD
    assert "REF_" not in text and "THRESH_" not in text  # no placeholder left


def test_release_copy_is_the_handout() -> None:
    if (paths.solutions_dir() / "lab5").is_dir():
        assert handout() == (paths.solutions_dir() / "lab5" / "README.md").read_text(encoding="utf-8")
