"""Instructor predictions of known mistakes: ``Mistake(description, instructor(key))``.

The predictors hold the solution's math, so they live in ``solutions/<lab>/instructor/mistakes.py``
(never released) and travel like expected values: stored in the fixtures for the public seeds
(students' runs, no ``solutions/``), computed live in isolated grading (hidden variants). These
tests run the mechanism on Lab 2's real cases and a real BatchNorm bug (the Keras momentum
convention), in a release-like project without ``solutions/``, and in the sandbox.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from grader import paths
from grader.authoring import fixtures
from grader.isolation.loading import load_cases, load_package
from grader.judging import expected as exp
from grader.judging.case import MISTAKE_PREFIX, Case, Close, GradCheck, Lab, Mistake, instructor
from grader.judging.compare import check_one, evaluate
from grader.runner import grade, reference

LAB = load_cases("lab2", paths.tests_dir())
CASE = "bn1d_running_stats"
KEY = "bn1d_running.mean.keras"
KERAS = "matches a known mistake: the Keras convention: momentum weighting the OLD value"
BN = "batchnorm.py"
RUN_MEAN = "self.running_mean = (1.0 - m) * self.running_mean + m * mu"
RUN_VAR = "self.running_var = (1.0 - m) * self.running_var + m * var * n / (n - 1)"
KERAS_PATCH = {BN: [(RUN_MEAN, "self.running_mean = m * self.running_mean + (1.0 - m) * mu"),
                    (RUN_VAR, "self.running_var = m * self.running_var + (1.0 - m) * var * n / (n - 1)")]}


def _release_like(tmp_path: Path, lab: str = "lab2") -> Path:
    """A project root with the lab's released tests (cases, fixtures) and no solutions/."""
    root = tmp_path / "release"
    shutil.copytree(paths.tests_dir() / lab, root / "tests" / lab, ignore=shutil.ignore_patterns("__pycache__"))
    return root


# ----------------------------------------------------------------------------- the API


def test_keys_are_validated_and_gradchecks_refuse_instructor_predictions() -> None:
    assert instructor("traj.Adam.no_bias_correction.p0").key == "traj.Adam.no_bias_correction.p0"
    with pytest.raises(ValueError, match="letters, digits"):
        instructor("a/b")
    with pytest.raises(ValueError, match="Close checks only"):
        GradCheck("dx", "dx_numeric", "dx", mistakes=(Mistake("m", instructor("k")),))


def test_a_stored_prediction_names_the_mistake_with_the_same_message_as_a_callable() -> None:
    rng = np.random.default_rng(0)
    ref, wrong = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    via_key = Close("y", "Layer.forward: y", mistakes=(Mistake("the known bug", instructor("layer.bug")),))
    via_fn = Close("y", "Layer.forward: y", mistakes=(Mistake("the known bug", lambda i, e: wrong),))
    stored = {"y": ref, MISTAKE_PREFIX + "layer.bug": wrong}
    by_key = check_one(via_key, {"y": wrong}, inputs={}, expected=stored, factors={})
    by_fn = check_one(via_fn, {"y": wrong}, inputs={}, expected={"y": ref}, factors={})
    assert by_key == by_fn
    assert "hint: matches a known mistake: the known bug" in by_key
    # the stored prediction is never offered as "the expected '...'" (wrong variable returned)
    assert "__mistake__" not in by_key
    # without the stored prediction: the same failure, no hint, no crash
    bare = check_one(via_key, {"y": wrong}, inputs={}, expected={"y": ref}, factors={})
    assert bare is not None and "known mistake" not in bare
    assert bare.splitlines()[:4] == by_key.splitlines()[:4]


def test_strict_generation_refuses_unknown_keys_grading_skips_them(tmp_path: Path) -> None:
    case = Case("c", 1, "", lambda rng: {"x": np.ones(2)}, lambda lab, x: {"y": x},
                (Close("y", "y", mistakes=(Mistake("a", instructor("known")), Mistake("b", instructor("unknown")),
                                           Mistake("c", instructor("raises")))),), lab="labx")
    module = type(fixtures)("instructor_for_test")
    module.PREDICTORS = {"known": lambda i, e: i["x"] * 2, "raises": lambda i, e: 1 / 0}
    inputs, expected = {"x": np.ones(2)}, {"y": np.ones(2)}
    with pytest.raises(exp.FixtureError, match="no predictor 'unknown'"):
        exp.mistake_predictions(case, module, inputs, expected, strict=True)
    live = exp.mistake_predictions(case, module, inputs, expected)
    assert list(live) == [MISTAKE_PREFIX + "known"] and np.array_equal(live[MISTAKE_PREFIX + "known"], [2.0, 2.0])
    assert exp.mistake_predictions(case, None, inputs, expected) == {}
    with pytest.raises(exp.FixtureError, match="no .*mistakes.py"):
        exp.mistake_predictions(case, None, inputs, expected, strict=True)


# ----------------------------------------------------------------------------- students: stored predictions


def test_student_release_names_the_bug_from_the_stored_predictions(solutions, patched_reference, tmp_path,
                                                                    monkeypatch) -> None:
    submission = patched_reference("keras", KERAS_PATCH, lab="lab2")
    monkeypatch.setenv("GRADELAB_ROOT", str(_release_like(tmp_path)))
    assert not paths.solutions_dir().exists() and exp.load_instructor("lab2") is None
    result = grade(LAB, submission, isolated=False, only=[CASE, "bn1d_eval_forward", "bn2d_running_stats"])
    outputs = {c.name: c.output for c in result.cases}
    assert not any(c.passed for c in result.cases), outputs
    assert KERAS in outputs[CASE]
    assert KERAS in outputs["bn2d_running_stats"]
    # eval is judged given the student's own running statistics; with no instructor module to apply the
    # reference's eval to them, the student is sent to the running statistics, not told eval is wrong
    assert "computed through your running_mean/running_var update" in outputs["bn1d_eval_forward"]
    assert "fix running_mean/running_var update (the training forward) first" in outputs["bn1d_eval_forward"]


def test_fixtures_without_the_predictions_give_no_hint_and_no_crash(solutions, patched_reference, tmp_path,
                                                                   monkeypatch) -> None:
    submission = patched_reference("keras", KERAS_PATCH, lab="lab2")
    root = _release_like(tmp_path)
    npz = root / "tests" / "lab2" / "fixtures" / "public.npz"
    with np.load(npz) as data:
        kept = {k: data[k] for k in data.files if MISTAKE_PREFIX not in k}
    np.savez_compressed(npz, **kept)
    monkeypatch.setenv("GRADELAB_ROOT", str(root))
    result = grade(LAB, submission, isolated=False, only=[CASE])
    (case,) = result.cases
    assert not case.passed and "BatchNorm1d.running_mean after training steps" in case.output
    assert "Keras" not in case.output  # the hint needs the prediction; the failure itself is unchanged
    # a prediction that does not need solution code still applies (running statistics never updated)
    still = grade(LAB, patched_reference("frozen", {BN: [(RUN_MEAN, "pass"), (RUN_VAR, "pass")]}, lab="lab2"),
                  isolated=False, only=[CASE])
    assert "running statistics never updated in training" in still.cases[0].output


# ----------------------------------------------------------------------------- grading: live predictions


def test_reference_expected_computes_predictions_live_for_hidden_variants(solutions, patched_reference) -> None:
    case = LAB.get(CASE)
    expected_fn = exp.ReferenceExpected(reference("lab2"))
    keras = load_package(patched_reference("keras", KERAS_PATCH, lab="lab2"), "lab2")
    module = exp.load_instructor("lab2")
    assert module is not None
    for variant in (0, 1):
        inputs = exp.make_inputs(case, 12345, variant)
        expected = expected_fn(case, 12345, inputs)
        assert set(expected) >= {"running_mean", "running_var", MISTAKE_PREFIX + KEY}
        np.testing.assert_array_equal(expected[MISTAKE_PREFIX + KEY], module.PREDICTORS[KEY](inputs, expected))
        assert expected[MISTAKE_PREFIX + KEY].shape == (len(inputs["gamma"]),)  # the variant's own D
        messages = evaluate(case, inputs, case.call(keras, inputs), expected)
        assert any(KERAS in m for m in messages), messages


@pytest.mark.sandbox
def test_isolated_grading_names_a_bug_seen_only_in_a_hidden_variant(sandbox, patched_reference) -> None:
    # Keras's convention, except with the public momentum 0.1: passes the public seed, not the hidden ones
    root = patched_reference("keras-hidden", {BN: [("m = self.momentum", "m = self.momentum if self.momentum == 0.1 "
                                                    "else 1.0 - self.momentum")]}, lab="lab2")
    assert grade(LAB, root, isolated=False, only=[CASE]).cases[0].passed
    (case,) = grade(LAB, root, isolated=True, only=[CASE]).cases
    assert not case.passed and "hidden variant 0" in case.output, case.output
    assert KERAS in case.output


# ----------------------------------------------------------------------------- fixtures --check


def test_fixtures_check_reports_stale_missing_and_extra_predictions(solutions, tmp_path, monkeypatch) -> None:
    root = _release_like(tmp_path)
    (root / "solutions").symlink_to(solutions, target_is_directory=True)
    monkeypatch.setenv("GRADELAB_ROOT", str(root))
    ref = reference("lab2")
    assert fixtures.check(LAB, ref) == []
    npz = root / "tests" / "lab2" / "fixtures" / "public.npz"
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    stale, gone = f"{CASE}/0/{MISTAKE_PREFIX}{KEY}", f"{CASE}/0/{MISTAKE_PREFIX}bn1d_running.var.biased"
    arrays[stale] = arrays[stale] + 1e-3
    del arrays[gone]
    arrays[f"{CASE}/0/{MISTAKE_PREFIX}no_such_predictor"] = np.zeros(3)
    np.savez_compressed(npz, **arrays)
    problems = fixtures.check(LAB, ref)
    assert f"{stale} differs from the reference" in problems
    assert f"missing key {gone}" in problems
    assert any(p.startswith(f"stale key {CASE}/0/{MISTAKE_PREFIX}no_such_predictor") for p in problems)


@pytest.mark.parametrize("lab", ["lab2", "lab3", "lab4"])
def test_every_named_prediction_exists_and_cases_hold_no_callable_that_needs_it(solutions, lab) -> None:
    module = exp.load_instructor(lab)
    assert module is not None
    cases = load_cases(lab, paths.tests_dir())
    keys = [k for c in cases.cases for k in c.instructor_keys]
    assert keys, f"{lab} names no instructor predictions"
    assert [k for k in keys if exp.predictor(module, k) is None] == []


def test_lab4_instructor_constants_are_the_cases_own(solutions) -> None:
    """The checkpoint step and the number of scheduler steps: written in both files, kept equal here."""
    module = exp.load_instructor("lab4")
    names = load_cases("lab4", paths.tests_dir()).get("state_dict_adam").run.__globals__
    assert module is not None
    assert (module.SAVE_AT, module.SCHEDULE_STEPS) == (names["SAVE_AT"], names["SCHEDULE_STEPS"])


def test_a_lab_object_with_instructor_keys_lists_each_once() -> None:
    lab = Lab("labx", "x")

    @lab.case(points=1, inputs=lambda rng: {"x": np.ones(1)}, checks=[
        Close("a", "a", mistakes=(Mistake("m", instructor("k1")), Mistake("n", lambda i, e: e["a"]))),
        Close("b", "b", mistakes=(Mistake("m", instructor("k1")), Mistake("o", instructor("k2"))))])
    def c(lab, x):
        return {"a": x, "b": x}

    assert lab.get("c").instructor_keys == ("k1", "k2")


# ----------------------------------------------------------------------------- hints that discriminate


def test_a_mistake_equal_to_the_right_answer_on_these_inputs_is_never_named() -> None:
    """On Lab 4's Adagrad case, "eps inside the square root" predicts exactly the reference for two of the
    three parameters (their accumulated squares are far above eps). A trajectory that misses the tolerance
    for another reason (here it drifts by 5e-7 relative from the first step: another order of
    floating-point operations) must not be told it matches that mistake; the old rule (1e-6 around the
    prediction, predictions equal to the reference not excluded) said it did."""
    lab4 = load_cases("lab4", paths.tests_dir())
    case = lab4.get("adagrad")
    inputs = exp.make_inputs(case, 0)
    expected = exp.FixtureExpected("lab4")(case, 0, inputs)
    stored = {k[len(MISTAKE_PREFIX):]: v for k, v in expected.items() if k.startswith(MISTAKE_PREFIX)}
    same = [k for k in stored if "eps_inside" in k
            and np.allclose(stored[k], expected[k.rsplit(".", 1)[-1]], rtol=1e-12)]
    assert same, "the premise: eps inside the sqrt changes nothing on some parameter of these inputs"
    got = {k: v * (1 + 5e-7) for k, v in expected.items() if not k.startswith(MISTAKE_PREFIX)}
    messages = evaluate(case, inputs, got, expected)
    assert messages, "the drifted trajectory must fail"
    assert not any("eps inside the square root" in m for m in messages), messages


def test_the_real_students_two_swaps_are_named_together(patched_reference) -> None:
    """A real student's BatchNorm backward had 1/std and std swapped everywhere: each swap is a known
    mistake, their combination reproduces his dx (to ~1e-15), and the message names both."""
    patches = {BN: [("dxc = dx_hat * istd ", "dxc = dx_hat * std "),
                    ("dstd = -distd / std**2", "dstd = -distd * std**2")]}
    result = grade(LAB, patched_reference("two-swaps", patches, lab="lab2"), isolated=False, only=["bn1d_backward_dx"])
    out = result.cases[0].output
    assert "matches two known mistakes at once: in the staged backward, std is used where 1/std belongs" in out
    assert "AND in the staged backward, 1/std and std are swapped" in out


def test_terms_travel_like_predictions_stored_public_live_hidden_absent_in_a_release(
        solutions, patched_reference, tmp_path: Path, monkeypatch) -> None:
    """BatchNorm's dx terms need the solution's math: the public seed's terms come from the fixtures, the
    hidden variants' are computed live; a release (no solutions/) still explains the public case."""
    case = LAB.get("bn1d_backward_dx")
    assert "bn1d_dx.terms" in case.instructor_keys
    with np.load(exp.fixture_path("lab2")) as npz:
        assert f"bn1d_backward_dx/0/{MISTAKE_PREFIX}bn1d_dx.terms" in npz.files
    root = patched_reference("mean-sign", {BN: [("return dxc + dmu / n ", "return dxc - dmu / n ")]}, lab="lab2")
    sign = "dx is right except the mean term -gamma/std * mean_n(dy) (the mean path), which has the wrong sign"
    buggy = load_package(root, "lab2")
    expected_fn = exp.ReferenceExpected(reference("lab2"))
    for variant in (0, 1):
        inputs = exp.make_inputs(case, 12345, variant)
        messages = evaluate(case, inputs, case.call(buggy, inputs), expected_fn(case, 12345, inputs))
        assert any(sign in m for m in messages), messages
    release = _release_like(tmp_path)
    monkeypatch.setenv("GRADELAB_ROOT", str(release))
    public = grade(load_cases("lab2", paths.tests_dir()), root, isolated=False, only=["bn1d_backward_dx"])
    assert sign in public.cases[0].output


def test_lab1_tanh_terms_name_an_unlisted_sign_error(patched_reference) -> None:
    """Lab 1 declares Tanh's dL/dx = grad_output * (1 - y**2) as two terms (computed from the inputs, no
    instructor module): a sign error no known mistake lists is said in those terms."""
    root = patched_reference("tanh-plus", {"layers.py": [("return grad_output * (1.0 - self._y**2)",
                                                          "return grad_output * (1.0 + self._y**2)")]})
    (case,) = grade(load_cases("lab1", paths.tests_dir()), root, isolated=False, only=["tanh_backward"]).cases
    assert ("hint: fitted term by term to dx = grad_output * (1 - y**2): dx is right except the term "
            "-grad_output * y**2, which has the wrong sign") in case.output
    assert "note: the numerical gradient of your forward equals the reference's gradient, so your forward is " \
           "right here: the error is in backward" in case.output
