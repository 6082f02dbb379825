"""The Lab 3 handout agrees with the graded cases: the case table, the threshold, the release copy."""

from __future__ import annotations

import re
import sys

from grader import paths
from grader.isolation.loading import load_cases

RELEASED = paths.labs_dir() / "lab3" / "README.md"
TABLE_HEADER = "| case | points | what it checks |"
THRESHOLD_MARKER = re.compile(r"\*\*Threshold: held-out accuracy >= ([0-9]*\.[0-9]+)\*\*")
ROW = re.compile(r"^\|\s*`(?P<name>[A-Za-z_][A-Za-z0-9_]*)`\s*\|\s*(?P<points>[0-9]+(?:\.[0-9]+)?)\s*\|")


def case_table(text: str) -> list[tuple[str, float]]:
    lines = text.splitlines()
    start = lines.index(TABLE_HEADER)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"unreadable row in the handout's case table: {line!r}"
        rows.append((match["name"], float(match["points"])))
    return rows


def test_case_table_lists_every_case_with_its_points_in_order() -> None:
    lab = load_cases("lab3", paths.tests_dir())
    assert case_table(RELEASED.read_text(encoding="utf-8")) == [(c.name, c.points) for c in lab.cases]


def test_threshold_and_reference_accuracy_match_cases_py() -> None:
    lab = load_cases("lab3", paths.tests_dir())
    cases = sys.modules[lab.cases[0].run.__module__]
    text = RELEASED.read_text(encoding="utf-8")
    assert [float(t) for t in THRESHOLD_MARKER.findall(text)] == [cases.ACCURACY_THRESHOLD]
    mean, worst = re.search(r"reaches (0\.[0-9]+) on average over seeds 0-4 \(worst (0\.[0-9]+)\)",
                            cases.REFERENCE_ACCURACY).groups()
    assert f"{mean} on" in text and f"worst {worst}" in text
    assert lab.get("mnist_accuracy").checks[0].threshold == cases.ACCURACY_THRESHOLD


def test_handout_has_no_unfilled_placeholder_and_says_lab1_is_released_inside() -> None:
    text = RELEASED.read_text(encoding="utf-8")
    assert "BENCH_TABLE" not in text
    assert "Lab 1's solution" in text and "after Lab 1's deadline" in text


def test_the_example_failure_message_is_what_the_grader_prints(patched_reference) -> None:
    """The handout's example (col2im assigning instead of adding) is the grader's real output, line for line."""
    from grader.runner import grade

    text = RELEASED.read_text(encoding="utf-8")
    block = text.split("col2im (seed 0) failed:", 1)[1].split("```", 1)[0]
    expected = ["col2im (seed 0) failed:"] + [line for line in block.splitlines() if line.strip()]
    add = "xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += cols[:, :, u, v]"
    root = patched_reference("col2im-assigns", {"conv.py": [(add, add.replace("+=", "="))]}, lab="lab3")
    result = grade(load_cases("lab3", paths.tests_dir()), root, isolated=False, only=["col2im"])
    printed = result.cases[0].output.splitlines()
    assert printed == expected


def test_the_broken_models_script_still_patches_the_reference_and_the_handout_quotes_it(tmp_path) -> None:
    """scripts/lab3_broken_models.py (the figures the handout quotes next to the threshold) must stay runnable:
    each model's patch still applies to the reference, and changes it."""
    import importlib.util

    import pytest

    if not (paths.solutions_dir() / "lab3").is_dir():
        pytest.skip("no solutions/ (student release)")
    path = paths.project_root() / "scripts" / "lab3_broken_models.py"
    spec = importlib.util.spec_from_file_location("_lab3_broken", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for model, edits in script.PATCHES.items():
        root = script.patched(model, tmp_path)
        for file in edits:
            assert (root / "lab3" / file).read_text() != (paths.solutions_dir() / "lab3" / file).read_text(), model
    text = RELEASED.read_text(encoding="utf-8")
    assert "scripts/lab3_broken_models.py" in text and "0.8935" in text
