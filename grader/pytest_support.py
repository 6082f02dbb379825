"""pytest plugin: each lab case becomes one test, and the session ends with a score line.

Loaded for every run by the kit's root ``conftest.py`` (``pytest_plugins``), which first checks
that this pytest runs in the kit's environment and otherwise says how to activate it. It adds the ``--impl
option, the ``grading`` fixture and the score summary; each lab's test module uses
``case_params`` and ``check_case``. The same runner as ``gradelab test`` executes the cases,
so pytest and the CLI can never disagree on a score.

    pytest tests/lab1                      # your code in labs/
    pytest tests/lab1 --impl solutions     # another folder laid out like labs/
    pytest tests/lab1 -m "not slow"        # skip MNIST training while iterating
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.judging import expected
from grader.judging.case import Case

from .runner import CaseResult, InProcess, run_case


def case_params(lab: str) -> list:
    """One ``pytest.param`` per case, with its timeout and (for training cases) the ``slow`` mark."""
    params = []
    for case in load_cases(lab, paths.tests_dir()).cases:
        # The same time limit as `gradelab test`: from the reference's measured time (expected.case_timeout).
        marks = [pytest.mark.timeout(expected.case_timeout(case))] + ([pytest.mark.slow] if case.slow else [])
        params.append(pytest.param(case, id=case.name, marks=marks))
    return params


@dataclass
class Session:
    """The implementation under test and the results so far, for the summary."""

    impl_root: Path
    executors: dict[str, InProcess] = field(default_factory=dict)
    results: dict[str, list[tuple[Case, CaseResult]]] = field(default_factory=dict)

    def grade(self, lab: str, case: Case) -> CaseResult:
        if lab not in self.executors:
            self.executors[lab] = InProcess(self.impl_root, lab, use_alarm=False)
        result = run_case(case, self.executors[lab], expected.FixtureExpected(lab),
                          [(s, False) for s in case.seeds])
        self.results.setdefault(lab, []).append((case, result))
        return result

    def summary(self) -> list[str]:
        lines = []
        for lab, rows in self.results.items():
            total = load_cases(lab, paths.tests_dir()).max_score
            score = sum(r.score for _, r in rows)
            ran = sum(c.points for c, _ in rows)
            note = "" if ran == total else f" (only {ran:g} of {total:g} points' worth of cases ran)"
            lines.append(f"{lab}: {score:g} / {total:g} points for {self.impl_root}{note}")
            if any(r.import_error for _, r in rows):
                lines.append(f"{lab}: your package could not be imported, so every case scores 0 (the first "
                             "failed test shows the error)")
        return lines


def check_case(session: Session, lab: str, case: Case) -> None:
    """The body of every lab test: grade the case, fail with the grader's message.

    An import error is shown in full once, in the first test that meets it; the others say so briefly.
    """
    result = session.grade(lab, case)
    if not result.passed:
        earlier = [r for _, r in session.results.get(lab, [])[:-1] if r.import_error]
        if result.import_error and not earlier:
            pytest.fail(f"YOUR PACKAGE COULD NOT BE IMPORTED, so every case scores 0:\n{result.import_error}",
                        pytrace=False)
        pytest.fail(result.output, pytrace=False)


_SESSION = pytest.StashKey[Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--impl", default=None,
                     help="implementation folder laid out like labs/ (default: labs/)")


def pytest_configure(config: pytest.Config) -> None:
    impl = config.getoption("--impl")
    config.stash[_SESSION] = Session(Path(impl).resolve() if impl else paths.labs_dir())


@pytest.fixture(scope="session")
def grading(request: pytest.FixtureRequest) -> Session:
    """The implementation under test (``--impl``) and the scores so far."""
    return request.config.stash[_SESSION]


_LINES = pytest.StashKey[list[str]]()


def summary_line(config: pytest.Config, text: str) -> None:
    """Adds a line to the end-of-session summary (e.g. a share a test measured), printed even with -q."""
    config.stash.setdefault(_LINES, []).append(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    for line in config.stash[_SESSION].summary() + config.stash.get(_LINES, []):
        terminalreporter.write_line(line, bold=True)
