"""Expected values for a case: from the committed fixtures (students) or live from the reference (grading).

A student release has no ``solutions/``, so local runs compare against
``tests/<lab>/fixtures/public.npz`` (``FixtureExpected``), generated from the reference by
``gradelab fixtures`` (grader/authoring/fixtures.py). Keys are ``<case>/<seed>/<output>``;
``<case>/<seed>/__inputs__`` holds a SHA-256 of the inputs, so a change in how inputs are made
(or a NumPy whose RNG differs) is reported as stale fixtures instead of a confusing mismatch.
Isolated grading computes the same arrays live from the reference (``ReferenceExpected``).

Instructor predictions of known mistakes (``Mistake(..., instructor(key))``, grader/judging/case.py) are
stored the same way, under ``<case>/<seed>/__mistake__/<key>``, computed by the instructor-only
``solutions/<lab>/instructor/mistakes.py`` from the same inputs and expected values.

``timing.json`` beside the fixtures holds the reference's measured seconds per case, from which
each case's time limit is set (``case_timeout``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from grader import paths
from grader.judging.case import MISTAKE_PREFIX, Arrays, Case

INPUTS_KEY = "__inputs__"
# A case's time limit: this many times the reference's slowest measured run, plus a floor for
# process and machine noise; training cases (slow=True) keep their declared budget.
TIMING_FACTOR, TIMING_FLOOR = 10.0, 2.0


class FixtureError(Exception):
    """The fixtures are missing or do not fit the inputs; the message says how to fix it."""


def fixture_path(lab: str) -> Path:
    return paths.tests_dir() / lab / "fixtures" / "public.npz"


def case_rng(case: Case, seed: int) -> np.random.Generator:
    """The RNG a case's inputs are made from: the seed and the case name, so cases differ."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(case.name.encode()).digest()[:4], "big")])


def make_inputs(case: Case, seed: int, variant: int | None = None) -> Arrays:
    """The inputs of ``case`` for ``seed``: the public maker, or hidden variant ``variant``'s."""
    return {k: np.asarray(v) for k, v in case.inputs_maker(variant)(case_rng(case, seed)).items()}


def inputs_digest(inputs: Arrays) -> str:
    h = hashlib.sha256()
    for key in sorted(inputs):
        arr = np.ascontiguousarray(inputs[key])
        h.update(f"{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def reference_outputs(case: Case, reference: ModuleType, inputs: Arrays) -> Arrays:
    """The reference's arrays for the outputs that ``Close`` checks compare against (and, for a
    case judged ``given`` an earlier function, the reference's results of that function)."""
    result = case.call(reference, inputs)
    names = [c.output for c in case.checks if c.needs_reference] + list(case.given.outputs if case.given else ())
    return {n: np.asarray(result[n]) for n in names}


def instructor_path(lab: str) -> Path:
    """The instructor-only predictors of a lab's known mistakes (absent in a student release)."""
    return paths.solutions_dir() / lab / "instructor" / "mistakes.py"


_INSTRUCTOR: dict[Path, tuple[int, ModuleType | None]] = {}


def load_instructor(lab: str) -> ModuleType | None:
    """The lab's instructor module (loaded by path, in this process only), or None when there is none.

    A module that exists but fails to import raises: that is the instructor's bug, and fixtures,
    ``--check`` and grading must say so rather than silently lose every hint.
    """
    path = instructor_path(lab)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _INSTRUCTOR.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    name = f"_gradelab_instructor_{lab}_{len(_INSTRUCTOR)}_{stamp}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    _INSTRUCTOR[path] = (stamp, module)
    return module


def predictor(module: ModuleType, key: str) -> Callable[[Arrays, Arrays], np.ndarray | None] | None:
    """The predictor named ``key``: ``module.PREDICTORS[key]``, else the module's function ``key``."""
    table = getattr(module, "PREDICTORS", {})
    fn = table.get(key) if isinstance(table, dict) else None
    if fn is None and not key.startswith("_"):
        fn = getattr(module, key, None)
    return fn if callable(fn) else None


def mistake_predictions(case: Case, module: ModuleType | None, inputs: Arrays, expected: Arrays, *,
                        strict: bool = False) -> Arrays:
    """Every instructor prediction of ``case`` for these inputs, under ``MISTAKE_PREFIX + key``.

    A predictor returning None (does not apply here) stores nothing. ``strict`` (making fixtures):
    an unknown key or a failing predictor raises; otherwise (grading) it is skipped: a hint must
    never break grading.
    """
    keys = case.instructor_keys
    if not keys:
        return {}
    if module is None:
        if strict:
            raise FixtureError(f"{case.name} names instructor predictions ({', '.join(keys)}) but there is no "
                               f"{instructor_path(case.lab)}")
        return {}
    out: Arrays = {}
    for key in keys:
        fn = predictor(module, key)
        if fn is None:
            if strict:
                raise FixtureError(f"{case.name}: no predictor {key!r} in {instructor_path(case.lab)} "
                                   "(PREDICTORS[key] or a function of that name)")
            continue
        try:
            with np.errstate(all="ignore"):
                value = fn({k: np.array(v, copy=True) for k, v in inputs.items()},
                           {k: np.array(v, copy=True) for k, v in expected.items()})
        except Exception:
            if strict:
                raise
            continue
        if value is not None:
            out[MISTAKE_PREFIX + key] = np.asarray(value)
    return out


def timing_path(lab: str) -> Path:
    return paths.tests_dir() / lab / "fixtures" / "timing.json"


def load_timing(lab: str) -> dict[str, float]:
    """The committed measured seconds per case ({} when there is no timing.json)."""
    path = timing_path(lab)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return {}
    return dict(_read_timing(str(path), stamp))


@functools.lru_cache(maxsize=16)
def _read_timing(path: str, stamp: int) -> tuple[tuple[str, float], ...]:
    data = json.loads(Path(path).read_text())
    return tuple((str(k), float(v)) for k, v in data.get("seconds", {}).items())


def case_timeout(case: Case) -> float:
    """The time limit of one run of ``case``: ``TIMING_FACTOR`` x the reference's measured time +
    ``TIMING_FLOOR``, at most ``case.timeout``; training cases and unmeasured ones get ``case.timeout``."""
    if case.slow or not case.lab:
        return case.timeout
    seconds = load_timing(case.lab).get(case.name)
    if seconds is None:
        return case.timeout
    return min(case.timeout, TIMING_FACTOR * seconds + TIMING_FLOOR)


def load(lab: str) -> Arrays:
    path = fixture_path(lab)
    if not path.is_file():
        raise FixtureError(f"no expected values at {path}; an instructor runs `gradelab fixtures {lab}`")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


class FixtureExpected:
    """Expected values from the committed fixtures (students' local runs)."""

    def __init__(self, lab: str) -> None:
        self.lab = lab
        self._arrays: Arrays | None = None
        self._error: str | None = None

    def __call__(self, case: Case, seed: int, inputs: Arrays) -> Arrays:
        if self._arrays is None and self._error is None:
            try:
                self._arrays = load(self.lab)
            except FixtureError as exc:
                self._error = str(exc)
        if self._error:
            raise FixtureError(self._error)
        assert self._arrays is not None
        prefix = f"{case.name}/{seed}/"
        digest = self._arrays.get(prefix + INPUTS_KEY)
        if digest is None:
            raise FixtureError(f"the fixtures have no expected values for {case.name} (seed {seed}); "
                               f"regenerate them with `gradelab fixtures {self.lab}`")
        if str(digest) != inputs_digest(inputs):
            raise FixtureError(f"the fixtures for {case.name} were made from different inputs (a "
                               "changed case, or a NumPy whose random numbers differ); regenerate "
                               f"them with `gradelab fixtures {self.lab}`")
        return {k[len(prefix):]: v for k, v in self._arrays.items()
                if k.startswith(prefix) and not k.endswith(INPUTS_KEY)}


class ReferenceExpected:
    """Expected values computed live from the reference, in the grading process, with the
    instructor predictions of the case's known mistakes (none without an instructor module)."""

    def __init__(self, reference: ModuleType) -> None:
        self.reference = reference

    def __call__(self, case: Case, seed: int, inputs: Arrays) -> Arrays:
        expected = reference_outputs(case, self.reference, inputs)
        if case.instructor_keys and case.lab:
            expected.update(mistake_predictions(case, load_instructor(case.lab), inputs, expected))
        return expected
