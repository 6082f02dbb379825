"""Judging a function given the student's own results of an earlier function it calls (``Given``).

A case such as ``nms_random`` fails today for two different reasons: ``nms`` is wrong, or the
``box_iou`` it calls is. The second is already charged in ``box_iou``'s own cases, so here the
case is judged again, when the student's ``box_iou`` results on this case's inputs differ from
the reference's, against the reference's ``nms`` applied to the student's IoU matrix (computed by
the instructor-only module: the reference's math stays out of the released cases.py). A bug then
costs points once, in the case that tests it, and the message says which function to fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from .case import Arrays, Case, GradCheck, MetricPackage, split_predictions
from .compare import describe_non_numeric, evaluate, find_mismatch
from .expected import load_instructor, predictor

# The earlier function's results count as the reference's within this tolerance (as a Close check).
RTOL, ATOL = 1e-7, 1e-10


def _differences(case: Case, got: Mapping[str, Any], expected: Arrays) -> list[tuple[str, str]]:
    """Where the student's earlier results differ from the reference's: (function, phrase) per output."""
    assert case.given is not None
    out: list[tuple[str, str]] = []
    for name in case.given.outputs:
        if name not in expected or name not in got or describe_non_numeric(got[name]):
            continue
        mine, ref = np.asarray(got[name], dtype=np.float64), np.asarray(expected[name], dtype=np.float64)
        function = case.given.function_of(name)
        if mine.shape != ref.shape:
            out.append((function, f"{name} has shape {mine.shape}, the reference's {ref.shape}"))
            continue
        # A lower float precision differs even where the rounded values agree within RTOL: what the case
        # computes from them (e.g. an eval forward from float32 running statistics) inherits the rounding.
        narrow, wide = np.asarray(got[name]).dtype, np.asarray(expected[name]).dtype
        if narrow.kind == "f" and wide.kind == "f" and narrow.itemsize < wide.itemsize:
            out.append((function, f"{name} is {narrow}, the reference's {wide}"))
            continue
        mismatch = find_mismatch(mine, ref, RTOL, ATOL)
        if mismatch is not None:
            at = mismatch.index
            out.append((function, f"{mismatch.n_bad} of {mismatch.size} entries of {name} differ, e.g. at "
                                  f"{list(at)}: yours {float(mine[at]):.6g}, the reference's {float(ref[at]):.6g}"))
    return out


def _where(differ: list[tuple[str, str]]) -> tuple[str, str]:
    """(the earlier functions that differ, "a and b"; where they differ, each phrase named by its function
    when there are several)."""
    functions = list(dict.fromkeys(f for f, _ in differ))
    if len(functions) == 1:
        return functions[0], "; ".join(phrase for _, phrase in differ)
    return " and ".join(functions), "; ".join(f"{f}: {phrase}" for f, phrase in differ)


def _first(differ: list[tuple[str, str]]) -> str:
    """The function to fix first: ``Given.functions`` are in call order, and a later one (Conv2d.forward) may
    differ only because an earlier one it calls (im2col) does."""
    return differ[0][0]


def judge_given(case: Case, inputs: Arrays, got: Mapping[str, Any], expected: Arrays, messages: list[str],
                metric_package: MetricPackage | None = None) -> list[str]:
    """The case's failure messages once the student's own earlier results are taken into account.

    Unchanged when the case passed, has no ``given``, or the earlier function agrees with the
    reference here (the failure is then this function's own). Otherwise: judged against the
    reference applied to the student's earlier results (instructor module), passing when that
    judgement passes; with no instructor module, one message saying to fix the earlier function.
    """
    given = case.given
    if not messages or given is None:
        return messages
    differ = _differences(case, got, expected)
    if not differ:
        return messages
    earlier, where = _where(differ)
    module = load_instructor(case.lab) if case.lab else None
    fn = predictor(module, given.key) if module is not None else None
    verb = "differ" if " and " in earlier else "differs"
    if fn is None:  # a student's local run: nothing here may apply the reference to their results
        return [f"{case.name} is computed through your {earlier}, which {verb} from the reference on "
                f"this case's inputs ({where}): fix {_first(differ)} first (its own cases say how). Graded, "
                f"this case is judged given your own {earlier}'s results, so that bug costs points "
                "only in its own cases."]
    # The function gets every numeric output of the student's run (the earlier function's results among them).
    mine = {n: np.array(v, copy=True) for n, v in got.items() if not describe_non_numeric(v)}
    try:
        with np.errstate(all="ignore"):
            alt = fn({k: np.array(v, copy=True) for k, v in inputs.items()}, mine)
    except Exception:  # the instructor's function must never break grading: keep the plain judgement
        return messages
    # Predictions of known mistakes were made with the reference's earlier results: not valid here.
    outputs, _ = split_predictions(expected)
    # A GradCheck whose numerical gradient the function gives is left out (see case.Given).
    kept = tuple(c for c in case.checks if not (isinstance(c, GradCheck) and c.numeric in alt))
    judged = dataclasses.replace(case, checks=kept) if len(kept) != len(case.checks) else case
    again = evaluate(judged, inputs, got, {**outputs, **{k: np.asarray(v) for k, v in alt.items()}}, metric_package)
    if not again:
        return []
    return again + [f"  note: your {earlier} {verb} from the reference here ({where}); this case was "
                    f"judged given your own {earlier}'s results, so the failure above is in "
                    f"{case.name}'s own logic"]


def describe_given_pass(case: Case, got: Mapping[str, Any], expected: Arrays) -> str:
    """What a case that passed only when judged given the student's earlier results says: not "matches the
    reference" (it does not), but what it was judged against."""
    differ = _differences(case, got, expected)
    if not differ:  # cannot happen when judge_given turned a failure into a pass; kept for safety
        return "passed: judged given your own earlier results"
    earlier, where = _where(differ)
    whats = "; ".join(c.what for c in case.checks if not isinstance(c, GradCheck))
    return (f"passed: judged given your own {earlier}'s results, which differ from the reference's here ({where}): "
            f"that costs points in {_first(differ)}'s own cases, not here. Right given them: {whats}")
