"""Fixtures shared by the engine's tests. (The lab tests' ``--impl`` option, ``grading`` fixture and
score summary live in the plugin grader/pytest_support.py.)"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from grader import paths
from grader.isolation.sandbox import bwrap_available
from grader.judging.case import Lab
from grader.runner import LabResult, grade


def require(available: bool, what: str) -> None:
    """Skip when a tool is missing on a developer's machine; fail in CI, where .ci/run installs it."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run installs it)")
    pytest.skip(f"{what} is not available here")


@pytest.fixture
def sandbox() -> None:
    """Tests that need the bubblewrap sandbox."""
    require(bwrap_available(), "bubblewrap (bwrap)")


@pytest.fixture
def solutions() -> Path:
    """The reference solutions; absent in a student release, where these tests skip."""
    root = paths.solutions_dir()
    if not root.is_dir():
        pytest.skip("no solutions/ (student release)")
    return root


@pytest.fixture
def patched_reference(solutions: Path, tmp_path: Path):
    """Makes submissions by patching a copy of the reference: ``make(name, {file: [(old, new)]})``.

    Every ``old`` must occur exactly once in its file, so a patch cannot silently stop applying
    when the reference changes. Returns the submission root (laid out like labs/).
    """

    def make(name: str, patches: dict[str, list[tuple[str, str]]], lab: str = "lab1") -> Path:
        root = tmp_path / name
        shutil.copytree(solutions / lab, root / lab, ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
        for file, edits in patches.items():
            path = root / lab / file
            text = path.read_text()
            for old, new in edits:
                assert text.count(old) == 1, f"patch for {file} must match exactly once: {old!r}"
                text = text.replace(old, new)
            path.write_text(text)
        return root

    return make


@dataclass
class Graded:
    """A graded submission: the result, each case's message, and the cases that failed."""

    result: LabResult
    outputs: dict[str, str]
    failed: set[str]


def graded(result: LabResult) -> Graded:
    return Graded(result, {c.name: c.output for c in result.cases}, {c.name for c in result.cases if not c.passed})


@pytest.fixture
def grade_bug(patched_reference) -> Callable[..., Graded]:
    """Grades a patched reference in-process and checks the bug's footprint, the evidence that a
    lab's cases catch realistic mistakes: ``check(lab, name, patches, fails, only)``.

    The bug must fail EXACTLY the cases in ``fails`` (no unnoticed bug, no smear over unrelated
    cases), each message must contain that case's substrings (it names the bug), and the score
    must drop by exactly those cases' points. ``fails={}`` is the control: full marks. With
    ``every_case_named=False`` a case may list no substring (it fails, and its message only locates
    the difference: e.g. an optimizer's secondary trajectories).
    """

    def check(lab: Lab, name: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, Sequence[str]],
              only: Sequence[str], *, every_case_named: bool = True) -> Graded:
        got = graded(grade(lab, patched_reference(name, patches, lab=lab.name), isolated=False, only=list(only)))
        assert [c.name for c in got.result.cases] == list(only)
        assert got.failed == set(fails), "\n\n".join(
            f"[{case}]\n{got.outputs[case]}" for case in sorted(got.failed ^ set(fails)))
        for case, needles in fails.items():
            assert needles or not every_case_named, f"{case}: declare a substring of the message that names the bug"
            for needle in needles:
                assert needle in got.outputs[case], f"{case}: {needle!r} not in the message:\n{got.outputs[case]}"
        points = {c.name: c.max_score for c in got.result.cases}
        assert got.result.score == sum(points.values()) - sum(points[c] for c in fails)
        return got

    return check


@pytest.fixture(scope="session")
def torch():
    """PyTorch for cross-checks (installed by scripts/setup.sh; optional on a student's machine)."""
    try:
        import torch as _torch
    except ImportError:
        require(False, "PyTorch (pip install torch==2.13.0)")
    return _torch
