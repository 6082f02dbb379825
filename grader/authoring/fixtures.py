"""``gradelab fixtures``: generate and check the public expected values from the reference.

Writes ``tests/<lab>/fixtures/public.npz`` (the reference's outputs for every public case, and
the instructor predictions of known mistakes) and ``timing.json`` (the reference's seconds per
case, from which time limits are set); ``--check`` (run by CI) fails when the committed files no
longer match the reference. How they are read: grader/judging/expected.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from grader import paths
from grader.judging.case import Arrays, Case, Lab
from grader.judging.expected import (
    INPUTS_KEY,
    TIMING_FACTOR,
    TIMING_FLOOR,
    FixtureError,
    fixture_path,
    inputs_digest,
    load,
    load_instructor,
    load_timing,
    make_inputs,
    mistake_predictions,
    reference_outputs,
    timing_path,
)

TIMING_PREFIX = "__timing__/"  # generate() returns the measured seconds under these keys; save() moves them
# The reference is deterministic, but BLAS may sum in another order on another machine.
_RTOL, _ATOL = 1e-12, 1e-14


def measure_seconds(case: Case, reference: ModuleType, repeats: int = 2) -> float:
    """The reference's time for the case: the slowest input maker (public, each hidden one), best of ``repeats``."""
    worst = 0.0
    for variant in [None, *range(len(case.hidden_inputs))]:
        inputs = make_inputs(case, case.seeds[0], variant)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            case.call(reference, inputs)
            best = min(best, time.perf_counter() - start)
        worst = max(worst, best)
    return worst


def generate(lab: Lab, reference: ModuleType) -> Arrays:
    """Every public case's expected arrays (cases without Close checks store nothing), and the
    reference's measured seconds per non-training case under ``TIMING_PREFIX`` keys."""
    out: Arrays = {}
    for case in lab.cases:
        if not case.slow:
            out[TIMING_PREFIX + case.name] = np.array(measure_seconds(case, reference))
    for case in lab.cases:
        if not case.needs_reference:
            continue
        for seed in case.seeds:
            inputs = make_inputs(case, seed)
            out[f"{case.name}/{seed}/{INPUTS_KEY}"] = np.array(inputs_digest(inputs))
            expected = reference_outputs(case, reference, inputs)
            expected.update(mistake_predictions(case, load_instructor(lab.name), inputs, expected, strict=True))
            for name, arr in expected.items():
                out[f"{case.name}/{seed}/{name}"] = arr
    return out


def save(lab: str, arrays: Arrays) -> Path:
    """Writes the expected arrays to public.npz and the timings to timing.json (beside it)."""
    path = fixture_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    timing = {k[len(TIMING_PREFIX):]: round(float(v), 5) for k, v in arrays.items() if k.startswith(TIMING_PREFIX)}
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if not k.startswith(TIMING_PREFIX)})
    timing_path(lab).write_text(json.dumps({
        "about": f"the reference's seconds per case, measured by `gradelab fixtures {lab}`; a case's time limit "
                 f"is {TIMING_FACTOR:g} x this + {TIMING_FLOOR:g} s (grader/authoring/fixtures.py: case_timeout)",
        "seconds": timing}, indent=2, sort_keys=False) + "\n")
    return path


def check(lab: Lab, reference: ModuleType) -> list[str]:
    """Differences between the committed fixtures and what the reference gives now."""
    try:
        committed = load(lab.name)
    except FixtureError as exc:
        return [str(exc)]
    fresh = generate(lab, reference)
    problems = []
    # Timings: only that every non-training case has one and no case that is gone does (values vary).
    timed = {k[len(TIMING_PREFIX):] for k in fresh if k.startswith(TIMING_PREFIX)}
    have = set(load_timing(lab.name))
    problems += [f"no measured time for {c} in {timing_path(lab.name).name}" for c in sorted(timed - have)]
    problems += [f"stale time for {c} in {timing_path(lab.name).name} (no such case)" for c in sorted(have - timed)]
    fresh = {k: v for k, v in fresh.items() if not k.startswith(TIMING_PREFIX)}
    problems += [f"missing key {k}" for k in sorted(set(fresh) - set(committed))]
    problems += [f"stale key {k} (no such case/output any more)" for k in sorted(set(committed) - set(fresh))]
    for key in sorted(set(fresh) & set(committed)):
        a, b = fresh[key], committed[key]
        if key.endswith(INPUTS_KEY):
            same = str(a) == str(b)
        else:
            same = a.shape == b.shape and np.allclose(a, b, rtol=_RTOL, atol=_ATOL, equal_nan=True)
        if not same:
            problems.append(f"{key} differs from the reference")
    return problems


def main(labs: list[str], *, check_only: bool) -> int:
    """``gradelab fixtures [LAB...] [--check]``: 0 when written (or up to date), 1 when stale."""
    from grader.isolation.loading import load_cases
    from grader.runner import reference

    labs = labs or sorted(p.name for p in paths.solutions_dir().iterdir()
                          if (paths.tests_dir() / p.name / "cases.py").is_file())
    status = 0
    for name in labs:
        lab, ref = load_cases(name, paths.tests_dir()), reference(name)
        if check_only:
            problems = check(lab, ref)
            for p in problems:
                print(f"{name}: {p}")
            verdict = f"are STALE: run `gradelab fixtures {name}`" if problems else "are up to date"
            print(f"{name}: fixtures {verdict}")
            status |= bool(problems)
        else:
            print(f"{name}: wrote {save(name, generate(lab, ref))}")
    return status
