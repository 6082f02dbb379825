"""Fixtures shared by the engine's tests. (The lab tests' ``--impl`` option, ``grading`` fixture and
score summary live in the plugin grader/pytest_support.py.)"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader import paths
from grader.sandbox import bwrap_available


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


@pytest.fixture(scope="session")
def torch():
    """PyTorch for cross-checks (installed by scripts/setup.sh; optional on a student's machine)."""
    try:
        import torch as _torch
    except ImportError:
        require(False, "PyTorch (pip install torch==2.13.0)")
    return _torch
