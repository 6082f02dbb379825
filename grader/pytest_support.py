"""pytest glue: each lab case becomes one test, and the session ends with a score line.

Used by tests/conftest.py (the ``--impl`` option, the ``grade_case`` fixture, the summary)
and by each lab's test module (``case_params``). The same runner as ``gradelab test``
executes the cases, so pytest and the CLI can never disagree on a score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import fixtures, paths
from .case import Case
from .loading import load_cases
from .runner import CaseResult, InProcess, run_case


def case_params(lab: str) -> list:
    """One ``pytest.param`` per case, with its timeout and (for training cases) the ``slow`` mark."""
    params = []
    for case in load_cases(lab, paths.tests_dir()).cases:
        marks = [pytest.mark.timeout(case.timeout)] + ([pytest.mark.slow] if case.slow else [])
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
        result = run_case(case, self.executors[lab], fixtures.FixtureExpected(lab),
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
        return lines


def check_case(session: Session, lab: str, case: Case) -> None:
    """The body of every lab test: grade the case, fail with the grader's message."""
    result = session.grade(lab, case)
    if not result.passed:
        pytest.fail(result.output, pytrace=False)
