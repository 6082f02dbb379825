"""Shared pytest setup: which implementation the lab tests grade, and the score summary.

    pytest tests/lab1                      # your code in labs/
    pytest tests/lab1 --impl solutions     # another folder laid out like labs/
    pytest tests/lab1 -m "not slow"        # skip MNIST training while iterating
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader import paths
from grader.pytest_support import Session
from grader.sandbox import bwrap_available


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", default=None,
                     help="implementation folder laid out like labs/ (default: labs/)")


def pytest_configure(config: pytest.Config) -> None:
    impl = config.getoption("--impl")
    config.stash[_SESSION] = Session(Path(impl).resolve() if impl else paths.labs_dir())


_SESSION = pytest.StashKey[Session]()


@pytest.fixture(scope="session")
def grading(request: pytest.FixtureRequest) -> Session:
    return request.config.stash[_SESSION]


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for line in config.stash[_SESSION].summary():
        terminalreporter.write_line(line, bold=True)


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
