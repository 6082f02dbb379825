"""scripts/diagnosis_share.py: which lines of a failure message count as naming the bug.

A header, a check's fixed explanation and the location/value lines are printed whatever the bug
is, so they never count; hints and notes do; so do the header and explanation of a check that
tests one property (exact, or a single number), which print only when that property fails.
"""

from __future__ import annotations

import importlib.util
import sys

from grader import paths
from grader.isolation.loading import load_cases

SCRIPT = paths.project_root() / "scripts" / "diagnosis_share.py"
_SPEC = importlib.util.spec_from_file_location("diagnosis_share", SCRIPT)
assert _SPEC is not None and _SPEC.loader is not None
share = importlib.util.module_from_spec(_SPEC)
sys.modules["diagnosis_share"] = share
_SPEC.loader.exec_module(share)

LAB = load_cases("lab2", paths.tests_dir())
BACKWARD = LAB.get("bn1d_backward_dx")
DX_EXPLAIN = ("  dL/dx: check each line of your backward against the forward line it comes from (the handout's "
              "section 3 walks the stages); the staged and the compact form both pass.")


def message(*extra: str) -> str:
    return "\n".join([
        "bn1d_backward_dx (seed 0) failed:",
        "BatchNorm1d.backward: dL/dx (its return value): your backward disagrees with the numerical gradient of your "
        "own forward (central differences, h=1e-6, float64, random upstream gradient)",
        "  20 of 20 entries differ; the largest error is at index (1, 0): abs 3.36, relative 587 (tolerance: ...)",
        "  numeric[1, 0:4] = [-5.720136e-03  3.700345e-01]",
        "  got    [1, 0:4] = [ 3.349901  0.796318]",
        "BatchNorm1d.backward: dL/dx (its return value): does not match the reference",
        "  expected[1, 0:4] = [-5.720136e-03  3.700345e-01]",
        *extra,
        DX_EXPLAIN,
    ])


def test_headers_explanations_and_values_never_name_a_bug() -> None:
    bare = message()
    assert share.specific_lines(bare, BACKWARD) == []
    # "numerical gradient" is in the fixed GradCheck header, "forward line" in the fixed explanation
    assert not share.names_the_bug(bare, BACKWARD, ["numerical gradient", "forward line", "entries differ"])


def test_a_hint_or_a_note_names_it() -> None:
    hinted = message("  hint: fitted term by term to dx = ...: dx is right except the mean term, which has the "
                     "wrong sign")
    assert share.names_the_bug(hinted, BACKWARD, ["which has the wrong sign"])
    assert not share.names_the_bug(hinted, BACKWARD, ["variance term"])


def test_a_property_checks_header_names_it() -> None:
    case = LAB.get("dropout_train_forward")
    text = "\n".join([
        "dropout_train_forward (seed 0) failed:",
        "Dropout: two layers built with equally seeded rng give the same mask (1 = yes): does not match the reference",
        "  1 of 1 entries differ; the largest error is at index (): abs 1, relative 1 (tolerance: ...)",
        "  expected = 1.0",
        "  got      = 0.0",
        "  Draw the mask from self.rng (the generator passed to Dropout), not from np.random's global state: seeded "
        "runs must be reproducible.",
    ])
    assert share.names_the_bug(text, case, ["not from np.random's global state"])
    assert not share.names_the_bug(text, case, ["got      = 0.0"])


def test_the_first_step_that_differs_is_a_location_not_a_name() -> None:
    """Close(rows=...) puts "the first step that differs is t" on the location line: it says where, so a bug
    declared with those words is not named by it."""
    case = load_cases("lab4", paths.tests_dir()).get("adam")
    text = "\n".join([
        "adam (seed 0) failed:",
        f"{case.checks[0].what}: does not match the reference",
        "  380 of 396 entries differ (the first step that differs is 1; every step before it matches); the largest "
        "error is at index (25, 3, 2): abs 0.18, relative 179 (tolerance: ...)",
        "  expected[25, 3, 0:3] = [ 0.365795 -0.391487 -0.001006]",
    ])
    assert not share.names_the_bug(text, case, ["the first step that differs is 1", "every step before it matches"])

