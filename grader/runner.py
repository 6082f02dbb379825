"""Running a lab's cases against an implementation and scoring them.

One loop serves every mode; what changes is where the student's code runs (the *executor*)
and where expected values come from:

    mode                        executor                 expected values         seeds
    student, local              InProcess (labs/)        committed fixtures      public
    reference check             InProcess (solutions/)   committed fixtures      public
    isolated grading            Sandboxed child          reference, live         public + hidden

Whatever the executor returns is judged here, in the grading process, by ``compare``.
"""

from __future__ import annotations

import linecache
import re
import signal
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Protocol

from grader import paths
from grader.isolation.libraries import numpy_only
from grader.isolation.loading import IMPORT_FAILED, LoadError, load_package, student_traceback
from grader.isolation.sandbox import Child, Reply, bwrap_available, isolation_name
from grader.judging.case import Arrays, Case, Close, GradCheck, Lab, Metric, MetricPackage
from grader.judging.compare import evaluate
from grader.judging.expected import FixtureError, FixtureExpected, ReferenceExpected, case_timeout, make_inputs
from grader.judging.given import describe_given_pass, judge_given
from grader.judging.guard import FEEDBACK_TAG
from grader.text import printable as clean

ExpectedFn = Callable[[Case, int, Arrays], Arrays]


@dataclass
class CaseResult:
    name: str
    score: float
    max_score: float
    output: str
    seconds: float
    import_error: str = ""  # set when the package could not be imported: reported once, on top
    own_metric: bool = False  # a Metric was scored with the student's own functions (a release's local run)

    @property
    def passed(self) -> bool:
        return self.score == self.max_score

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"


@dataclass
class LabResult:
    lab: str
    title: str
    impl: str
    isolation: str
    cases: list[CaseResult] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    import_error: str = ""  # the package could not be imported: one message, every case scores 0

    @property
    def score(self) -> float:
        return sum(c.score for c in self.cases)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.cases)


class Executor(Protocol):
    isolation: str

    def execute(self, case: Case, inputs: Arrays, timeout: float) -> Reply: ...

    def close(self) -> None: ...


class CaseTimeout(BaseException):
    """Raised in the main thread by SIGALRM when an in-process case runs too long."""


@contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Raises CaseTimeout after ``seconds``, unless a timer is already armed (e.g. pytest-timeout's):
    that one keeps guarding, and is left untouched."""
    if (not seconds or threading.current_thread() is not threading.main_thread()
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class InProcess:
    """Runs the implementation in this process: fast, for students and the reference check.

    ``use_alarm=False`` under pytest, where pytest-timeout owns SIGALRM.
    """

    isolation = "in-process"

    def __init__(self, impl_root: Path, lab: str, *, use_alarm: bool = True) -> None:
        self.impl_root, self.lab, self.use_alarm = Path(impl_root), lab, use_alarm
        try:
            with numpy_only(lab):  # the handout's rule on libraries, as in grading
                self.module, self.load_error = load_package(self.impl_root, lab), None
        except LoadError as exc:
            self.module, self.load_error = None, str(exc)

    def execute(self, case: Case, inputs: Arrays, timeout: float) -> Reply:
        if self.module is None:
            return Reply(None, self.load_error, "")
        try:
            with _alarm(timeout if self.use_alarm else None), numpy_only(self.lab):
                result = case.call(self.module, inputs)
        except CaseTimeout as exc:
            where = student_traceback(exc, self.impl_root / self.lab).rsplit("\n", 1)[0].rstrip()
            where = f"; it was executing:\n{where}" if where.strip() and "CaseTimeout" not in where else ""
            return Reply(None, f"did not finish within {timeout:.3g} s (an endless loop, or very slow code?)"
                               f"{where}", "")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - student code may raise anything, SystemExit too
            return Reply(None, student_traceback(exc, self.impl_root / self.lab), "")
        if not isinstance(result, dict):
            return Reply(None, f"the case returned a {type(result).__name__}, not a dict", "")
        return Reply(dict(result), None, "")

    def close(self) -> None:
        pass


class Sandboxed:
    """Runs the implementation in a sandboxed child (``grader.isolation.sandbox``): for grading."""

    def __init__(self, impl_root: Path, lab: str, *, use_bwrap: bool) -> None:
        self.isolation = isolation_name(use_bwrap)
        self.child = Child(Path(impl_root), lab, use_bwrap=use_bwrap)

    @property
    def notes(self) -> list[str]:
        return [f"skipped {n}" for n in self.child.notes]

    def execute(self, case: Case, inputs: Arrays, timeout: float) -> Reply:
        return self.child.run(case.name, case.public_inputs(inputs), timeout)

    def close(self) -> None:
        self.child.close()


def hidden_seeds(lab: str) -> tuple[int, ...]:
    """The lab's hidden seeds from ``solutions/<lab>/hidden.toml`` (instructor-only), or ()."""
    path = paths.solutions_dir() / lab / "hidden.toml"
    if not path.is_file():
        return ()
    with open(path, "rb") as f:
        seeds = tomllib.load(f).get("seeds", [])
    return tuple(int(s) for s in seeds)


def describe_pass(case: Case, metric_package: MetricPackage | None = None) -> str:
    parts = []
    for c in case.checks:
        if isinstance(c, Close):
            parts.append(f"{c.what} matches the reference" + ("" if c.exact else f" (rtol {c.rtol:g})"))
        elif isinstance(c, GradCheck):
            parts.append(f"{c.what} matches the numerical gradient (rtol {c.rtol:g})")
        else:
            note = metric_package.note(c) if metric_package and isinstance(c, Metric) else ""
            parts.append(f"{c.what} reaches {c.threshold:.4f}" + (f" ({note})" if note else ""))
    return "passed: " + "; ".join(parts)


def metric_package(case: Case, executor: Executor) -> MetricPackage | None:
    """The package that scores the case's ``Metric(scored_by=...)`` checks, or None if it has none.

    The reference whenever solutions/ holds it (isolated grading, the instructor's runs): the
    grader's metric. Without it, only an in-process run (a student's release) scores with the
    student's own package, and says so; a sandboxed run gets None, which fails the check as a
    grader set-up error.
    """
    if not any(isinstance(c, Metric) and c.scored_by for c in case.checks):
        return None
    if (paths.solutions_dir() / case.lab).is_dir():
        return MetricPackage(reference(case.lab), own=False)
    module = executor.module if isinstance(executor, InProcess) else None
    return MetricPackage(module, own=True) if module is not None else None


def run_case(case: Case, executor: Executor, expected: ExpectedFn,
             seeds: Sequence[tuple[int, bool]], timeout_scale: float = 1.0) -> CaseResult:
    """Runs one case on each seed (stopping at the first failure) and scores it."""
    start = time.perf_counter()
    failure = None
    given_pass = ""  # set when a seed passed only given the student's earlier results
    scorer: MetricPackage | None = None
    n_public = sum(1 for _, hidden in seeds if not hidden)
    for i, (seed, hidden) in enumerate(seeds):
        k = i - n_public  # hidden seeds follow the public ones
        variant = f"hidden variant {k}" if hidden else f"seed {seed}"
        kind = case.variant_description(k) if hidden else ""
        label = f"({variant})" + (f" (inputs: {kind})" if kind else "")  # what kind of input the variant used
        inputs = make_inputs(case, seed, k if hidden else None)
        reply = executor.execute(case, inputs, case_timeout(case) * timeout_scale)
        error, log = reply.error or "", timeout_frames(reply.log)
        if reply.outputs is None and _is_import_error(error, case):
            last = next((line for line in reversed(error.splitlines())
                         if line.strip() and not line.startswith("hint:")), "")
            return CaseResult(case.name, 0.0, case.points, f"{case.name}: not run: your package could not be "
                              f"imported ({last.strip()}); the whole error is shown once: on top of the report "
                              "(with pytest: in the first failed test)",
                              time.perf_counter() - start, import_error=error)
        if reply.outputs is None and error.startswith(FEEDBACK_TAG):
            failure = f"{case.name} {label} failed:\n{error[len(FEEDBACK_TAG):]}"
        elif reply.outputs is None:
            if error.startswith("did not finish within") and log[1]:
                error += f"; it was executing:\n{log[1]}"
            failure = f"{case.name} {label}: your code raised an error\n{error}"
        else:
            try:
                exp = expected(case, seed, inputs) if case.needs_reference else {}
            except FixtureError as exc:
                failure = f"{case.name}: cannot check: {exc}"
            else:
                scorer = scorer or metric_package(case, executor)
                first = evaluate(case, inputs, reply.outputs, exp, scorer)
                messages = judge_given(case, inputs, reply.outputs, exp, first, scorer)
                if first and not messages:  # passed only given the student's earlier results: say so
                    given_pass = describe_given_pass(case, reply.outputs, exp)
                if messages:
                    failure = f"{case.name} {label} failed:\n" + "\n".join(messages)
        if failure:
            if log[0].strip():  # what the student printed, without a stack dump (reported above if it matters)
                failure += f"\n--- what your code printed ---\n{log[0].rstrip()}"
            break
    seconds = time.perf_counter() - start
    own = bool(scorer and scorer.own)
    if failure:
        return CaseResult(case.name, 0.0, case.points, failure, seconds, own_metric=own)
    return CaseResult(case.name, case.points, case.points, given_pass or describe_pass(case, scorer), seconds,
                      own_metric=own)


def _is_import_error(error: str, case: Case) -> bool:
    return error.startswith(IMPORT_FAILED) or error.startswith(f"no {case.lab or ''} package in")


_DUMP_START = re.compile(r"^Timeout \(\d+:\d\d:\d\d(\.\d+)?\)!$", re.M)
_DUMP_FRAME = re.compile(r'^\s*File "(?P<path>[^"]*/submission/(?P<rel>[^"]+))", line (?P<line>\d+) in (?P<fn>\S+)',
                         re.M)


def timeout_frames(log: str) -> tuple[str, str]:
    """Splits a child's log into (what the student printed, where their code was when the time ran out).

    When a case's time runs out, the grader asks the worker for its stack before stopping it; the
    dump lands in the log. The student's frames are kept, most recent last as in a traceback,
    with their source line while the stage still exists.
    """
    match = _DUMP_START.search(log or "")
    if not match:
        return log, ""
    printed, dump = log[:match.start()], log[match.start():]
    frames = []
    for m in _DUMP_FRAME.finditer(dump):
        source = linecache.getline(m["path"], int(m["line"])).strip()
        frames.append(f'  File "{m["rel"]}", line {m["line"]}, in {m["fn"]}' + (f"\n    {source}" if source else ""))
    return printed, "\n".join(reversed(frames[:6]))  # faulthandler lists the innermost frame first


def run_lab(lab: Lab, executor: Executor, expected: ExpectedFn, *, impl: str,
            hidden: Sequence[int] = (), only: Sequence[str] | None = None,
            timeout_scale: float = 1.0) -> LabResult:
    """Runs every case (or those in ``only``) and collects the scores."""
    start = time.perf_counter()
    result = LabResult(lab.name, lab.title, impl, executor.isolation)
    cases = [lab.get(n) for n in only] if only else lab.cases
    try:
        for case in cases:
            seeds = [(s, False) for s in case.seeds] + [(s, True) for s in case.hidden_seeds(hidden)]
            result.cases.append(run_case(case, executor, expected, seeds, timeout_scale))
            result.import_error = result.import_error or result.cases[-1].import_error
    finally:
        executor.close()
    result.notes += getattr(executor, "notes", [])
    own = [c.name for c in result.cases if c.own_metric]
    if own:  # shown under the table, where a passing case's message is not
        result.notes.append(f"{', '.join(own)} scored with your own metric functions (this kit has no reference); "
                            "the grade uses the grader's metric")
    result.seconds = time.perf_counter() - start
    return result


class GradingError(Exception):
    """Grading cannot start (no reference, no sandbox when one is required)."""


def reference(lab: str) -> ModuleType:
    """The reference implementation, imported in the grading process."""
    if not (paths.solutions_dir() / lab).is_dir():
        raise GradingError(f"no reference at {paths.solutions_dir() / lab}: isolated grading and "
                           "fixtures need solutions/ (instructors only)")
    return load_package(paths.solutions_dir(), lab)


class Budgeted:
    """Wraps an executor with a wall-clock budget for the whole submission.

    Each case still has its own timeout; the budget caps their sum, so a submission that sleeps
    just under every case's timeout cannot hold the grader for the sum of them all. Once it is
    spent, every remaining call fails at once, saying so.
    """

    def __init__(self, inner: Executor, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds
        self.isolation = inner.isolation
        self.deadline = time.monotonic() + seconds
        self.exhausted = False

    @property
    def notes(self) -> list[str]:
        extra = [f"the submission used up its time budget of {self.seconds:g} s; the cases after that "
                 "were not run and score 0"] if self.exhausted else []
        return list(getattr(self.inner, "notes", [])) + extra

    def execute(self, case: Case, inputs: Arrays, timeout: float) -> Reply:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.exhausted = True
            return Reply(None, f"not run: the whole submission's time budget ({self.seconds:g} s) was used "
                               "up by earlier cases (code that is very slow or waits?)", "")
        return self.inner.execute(case, inputs, min(timeout, remaining))

    def close(self) -> None:
        self.inner.close()


BUDGET_MARGIN = 60.0  # seconds on top of the cases' timeouts: start-up, imports, the reference's own work


def submission_budget(lab: Lab, only: Sequence[str] | None, timeout_scale: float) -> float:
    """The wall-clock budget of one submission: each selected case's time limit (``case_timeout``:
    from the reference's measured time) once, not once per seed, plus a margin, times the
    timeout scale. A submission that runs just under every limit on every seed hits it."""
    cases = [lab.get(n) for n in only] if only else lab.cases
    return (sum(case_timeout(c) for c in cases) + BUDGET_MARGIN) * timeout_scale


def _printable_result(result: LabResult) -> LabResult:
    """Text from a submission may hold undecodable bytes or lone surrogates: escape them once
    here, so that reports, JSON and the gradebook can be written in any locale."""
    result.impl, result.isolation = clean(result.impl), clean(result.isolation)
    result.notes = [clean(n) for n in result.notes]
    for c in result.cases:
        c.output = clean(c.output)
    return result


UNSANDBOXED = "process (NOT sandboxed: --allow-unsandboxed; the submission could read the reference)"


def grade(lab: Lab, impl: Path, *, isolated: bool, only: Sequence[str] | None = None,
          timeout_scale: float = 1.0, require_sandbox: bool = False,
          allow_unsandboxed: bool = False) -> LabResult:
    """Grades one implementation folder (laid out like labs/).

    In-process: public seeds, expected values from the committed fixtures.
    Isolated: the implementation runs in a sandboxed child; public and hidden seeds; expected
    values from the reference, computed here. Without a working bubblewrap this refuses
    (GradingError) unless ``allow_unsandboxed``, and then the result says so. The whole
    submission has a wall-clock budget (``submission_budget``).
    """
    if not isolated:
        return _printable_result(run_lab(lab, InProcess(impl, lab.name), FixtureExpected(lab.name),
                                         impl=str(impl), only=only, timeout_scale=timeout_scale))
    use_bwrap = bwrap_available()
    if not use_bwrap and (require_sandbox or not allow_unsandboxed):
        raise GradingError("the bubblewrap sandbox is required for isolated grading but `bwrap` is not "
                           "usable here; install the Debian package bubblewrap (0.8 or later), or pass "
                           "--allow-unsandboxed to grade in a plain subprocess (the submission could then read "
                           "the reference)")
    expected = ReferenceExpected(reference(lab.name))
    executor = Budgeted(Sandboxed(impl, lab.name, use_bwrap=use_bwrap),
                        submission_budget(lab, only, timeout_scale))
    if not use_bwrap:
        executor.isolation = UNSANDBOXED
    result = run_lab(lab, executor, expected, impl=str(impl), hidden=hidden_seeds(lab.name), only=only,
                     timeout_scale=timeout_scale)
    return _printable_result(result)


def zero_result(lab: Lab, impl: Path, reason: str) -> LabResult:
    """A zero for every case, saying why, for a submission that could not be graded at all."""
    result = LabResult(lab.name, lab.title, str(impl), "none (not graded)")
    result.cases = [CaseResult(c.name, 0.0, c.points, f"{reason}; it scores 0", 0.0) for c in lab.cases]
    return result
