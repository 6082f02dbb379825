"""Public expected values: the reference's outputs for every public case, committed as data.

A student release has no ``solutions/``, so local runs compare against
``tests/<lab>/fixtures/public.npz``, generated from the reference by ``gradelab fixtures``.
Keys are ``<case>/<seed>/<output>``; ``<case>/<seed>/__inputs__`` holds a SHA-256 of the
inputs, so a change in how inputs are made (or a NumPy whose RNG differs) is reported as
stale fixtures instead of a confusing mismatch. ``gradelab fixtures --check`` (run by CI)
fails when the committed file no longer matches the reference.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType

import numpy as np

from . import paths
from .case import Arrays, Case, Lab

INPUTS_KEY = "__inputs__"
# The reference is deterministic, but BLAS may sum in another order on another machine.
_RTOL, _ATOL = 1e-12, 1e-14


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
    """The reference's arrays for the outputs that ``Close`` checks compare against."""
    result = case.call(reference, inputs)
    names = [c.output for c in case.checks if c.needs_reference]
    return {n: np.asarray(result[n]) for n in names}


def generate(lab: Lab, reference: ModuleType) -> Arrays:
    """Every public case's expected arrays (cases without Close checks store nothing)."""
    out: Arrays = {}
    for case in lab.cases:
        if not case.needs_reference:
            continue
        for seed in case.seeds:
            inputs = make_inputs(case, seed)
            out[f"{case.name}/{seed}/{INPUTS_KEY}"] = np.array(inputs_digest(inputs))
            for name, arr in reference_outputs(case, reference, inputs).items():
                out[f"{case.name}/{seed}/{name}"] = arr
    return out


def save(lab: str, arrays: Arrays) -> Path:
    path = fixture_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load(lab: str) -> Arrays:
    path = fixture_path(lab)
    if not path.is_file():
        raise FixtureError(f"no expected values at {path}; an instructor runs `gradelab fixtures {lab}`")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def check(lab: Lab, reference: ModuleType) -> list[str]:
    """Differences between the committed fixtures and what the reference gives now."""
    try:
        committed = load(lab.name)
    except FixtureError as exc:
        return [str(exc)]
    fresh = generate(lab, reference)
    problems = [f"missing key {k}" for k in sorted(set(fresh) - set(committed))]
    problems += [f"stale key {k} (no such case/output any more)" for k in sorted(set(committed) - set(fresh))]
    for key in sorted(set(fresh) & set(committed)):
        a, b = fresh[key], committed[key]
        if key.endswith(INPUTS_KEY):
            same = str(a) == str(b)
        else:
            same = a.shape == b.shape and np.allclose(a, b, rtol=_RTOL, atol=_ATOL)
        if not same:
            problems.append(f"{key} differs from the reference")
    return problems


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
    """Expected values computed live from the reference, in the grading process."""

    def __init__(self, reference: ModuleType) -> None:
        self.reference = reference

    def __call__(self, case: Case, seed: int, inputs: Arrays) -> Arrays:
        return reference_outputs(case, self.reference, inputs)
