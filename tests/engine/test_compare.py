"""grader.judging.compare: tolerances, and the failure messages and hints, on small hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from grader.judging.case import Accuracy, Case, Close, GradCheck, Mistake, Term, Terms
from grader.judging.compare import Invalid, check_one, evaluate, find_mismatch

REF = np.array([[1.5, -2.0, 3.25], [0.5, 4.0, -1.75]])  # (2, 3), no zeros, no constant structure
N_FACTOR = {"N (the batch size)": 4.0}


def close_msg(got, ref=REF, *, inputs=None, expected=None, factors=None, name="dx", **kw) -> str | None:
    """The message of one Close check of output ``name`` against ``ref``."""
    check = Close(name, "Thing.backward: dL/dx", **kw)
    exp = {name: ref, **(expected or {})}
    return check_one(check, {name: got}, inputs=inputs or {}, expected=exp, factors=factors or {})


def hints(msg: str) -> list[str]:
    return [line.strip()[len("hint: "):] for line in msg.splitlines() if line.strip().startswith("hint: ")]


# --------------------------------------------------------------------------- find_mismatch


def test_find_mismatch_passes_within_tolerance_and_fails_outside() -> None:
    assert find_mismatch(REF * (1 + 5e-8), REF, rtol=1e-7, atol=0.0) is None
    assert find_mismatch(REF + 0.9e-3, REF, rtol=0.0, atol=1e-3) is None
    m = find_mismatch(REF * (1 + 5e-7), REF, rtol=1e-7, atol=0.0)
    assert m is not None and m.n_bad == 6 and m.size == 6


def test_find_mismatch_locates_the_worst_entry() -> None:
    got = REF.copy()
    got[0, 0] += 0.01
    got[1, 2] += 0.5  # the worst, relative to its tolerance
    m = find_mismatch(got, REF, rtol=1e-7, atol=1e-10)
    assert m is not None
    assert (m.n_bad, m.size, m.index, m.n_nonfinite) == (2, 6, (1, 2), 0)
    assert m.abs_err == pytest.approx(0.5) and m.rel_err == pytest.approx(0.5 / 1.75)


def test_find_mismatch_counts_nan_and_inf_as_failures() -> None:
    ref = np.array([1.0, 2.0, 3.0])
    m = find_mismatch(np.array([1.0, np.nan, 3.0]), ref, rtol=1.0, atol=1.0)  # huge tolerance
    assert m is not None and (m.n_bad, m.index, m.n_nonfinite) == (1, (1,), 1)
    m = find_mismatch(np.array([np.inf, 2.0, 3.0]), ref, rtol=1.0, atol=1.0)
    assert m is not None and (m.n_bad, m.index, m.n_nonfinite) == (1, (0,), 1)
    assert find_mismatch(np.full(3, np.nan), np.full(3, np.nan), 1e-7, 1e-10) is not None


def test_find_mismatch_equal_infs_pass() -> None:
    ref = np.array([np.inf, -np.inf, 1.0])
    assert find_mismatch(ref.copy(), ref, rtol=1e-7, atol=1e-10) is None
    m = find_mismatch(np.array([np.inf, -np.inf, 2.0]), ref, rtol=1e-7, atol=1e-10)
    assert m is not None and (m.n_bad, m.index) == (1, (2,))


@pytest.mark.parametrize("got", [-np.inf, 5.0])
def test_find_mismatch_fails_where_the_reference_is_inf_and_got_is_not_the_same_inf(got) -> None:
    m = find_mismatch(np.array([got, 1.0]), np.array([np.inf, 1.0]), rtol=1e-7, atol=1e-10)
    assert m is not None and (m.n_bad, m.index) == (1, (0,))


def test_find_mismatch_exact_mode_rejects_any_difference() -> None:
    got = REF.copy()
    got[1, 1] = np.nextafter(got[1, 1], np.inf)
    assert find_mismatch(got, REF, rtol=1e-7, atol=1e-10) is None
    m = find_mismatch(got, REF, rtol=1e-7, atol=1e-10, exact=True)
    assert m is not None and (m.n_bad, m.index) == (1, (1, 1))
    assert find_mismatch(REF.copy(), REF, rtol=0, atol=0, exact=True) is None


def test_find_mismatch_on_scalars_has_an_empty_index() -> None:
    m = find_mismatch(np.array(2.0), np.array(1.0), rtol=1e-7, atol=1e-10)
    assert m is not None and (m.n_bad, m.size, m.index) == (1, 1, ())


# --------------------------------------------------------------------------- Close: shapes


def test_close_passes_returns_none() -> None:
    assert close_msg(REF * (1 + 1e-9)) is None


def test_shape_transpose_hint() -> None:
    msg = close_msg(REF.T.copy())
    assert msg == ("Thing.backward: dL/dx: does not match the reference\n"
                   "  shape: expected (2, 3), got (3, 2): your array is the transpose of the expected one")


def test_shape_looks_transposed_when_values_differ_too() -> None:
    msg = close_msg(REF.T + 1.0)
    assert "shape: expected (2, 3), got (3, 2): looks transposed (check which axis is the batch" in msg
    assert "your array is the transpose" not in msg


def test_same_size_different_shape_hint() -> None:
    msg = close_msg(REF.reshape(6))
    assert "shape: expected (2, 3), got (6,): same number of entries in a different shape" in msg
    assert "missing keepdims" in msg


def test_scalar_where_an_array_is_expected() -> None:
    msg = close_msg(np.array(1.5))
    assert "shape: expected (2, 3), got (): a scalar where an array is expected" in msg


def test_unrelated_shape_says_only_the_shapes() -> None:
    msg = close_msg(np.ones(4))
    assert msg.splitlines()[-1] == "  shape: expected (2, 3), got (4,)"


# --------------------------------------------------------------------------- Close: values and hints


def test_mismatch_message_shows_error_tolerance_and_windows_around_the_worst_index() -> None:
    ref = np.arange(20, dtype=np.float64).reshape(2, 10)
    got = ref.copy()
    got[1, 5] = 100.0
    lines = close_msg(got, ref).splitlines()
    assert lines[0] == "Thing.backward: dL/dx: does not match the reference"
    assert lines[1] == ("  1 of 20 entries differ; the largest error is at index (1, 5): abs 85, relative 5.67 "
                        "(tolerance: |got - expected| <= 1e-10 + 1e-07 * |expected|)")
    assert lines[2] == "  expected[1, 2:9] = [12. 13. 14. 15. 16. 17. 18.]"
    assert lines[3] == "  got     [1, 2:9] = [ 12.  13.  14. 100.  16.  17.  18.]"


def test_window_is_clipped_at_the_edges_and_1d_labels() -> None:
    got = np.array([9.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    msg = close_msg(got, np.arange(1.0, 7.0))
    assert "  expected[0:4] = [1. 2. 3. 4.]" in msg
    assert "  got     [0:4] = [9. 2. 3. 4.]" in msg


def test_exact_mode_says_exact_equality() -> None:
    got = REF.copy()
    got[0, 1] = np.nextafter(got[0, 1], 0)
    msg = close_msg(got, exact=True)
    assert "1 of 6 entries differ" in msg and "(tolerance: exact equality)" in msg


def test_explain_is_appended_on_failure_only() -> None:
    msg = close_msg(REF + 1, explain="Update in place.")
    assert msg.splitlines()[-1] == "  Update in place."
    assert close_msg(REF.copy(), explain="Update in place.") is None


def test_factor_hint_names_n() -> None:
    msg = close_msg(REF * 4, factors=N_FACTOR)
    assert ("hint: got = expected x 4 everywhere (= N (the batch size)): an extra factor of N (the batch size), "
            "or a missing division by it") in msg


def test_factor_hint_names_one_over_n() -> None:
    msg = close_msg(REF / 4, factors=N_FACTOR)
    assert ("hint: got = expected x 0.25 everywhere (= 1/N (the batch size)): divided by N (the batch size) "
            "where no division belongs (or twice)") in msg


def test_factor_hint_without_a_named_factor() -> None:
    msg = close_msg(REF * 2.5, factors=N_FACTOR)
    assert hints(msg) == ["got = expected x 2.5 everywhere: off by a constant factor"]


def test_sign_flip_hint() -> None:
    msg = close_msg(-REF, factors=N_FACTOR)
    assert hints(msg) == ["got = expected x -1 everywhere: the sign is flipped"]


def test_no_factor_hint_when_not_a_constant_multiple() -> None:
    got = REF * np.array([[2.0, 2.0, 2.0], [2.0, 2.0, 3.0]])
    assert not any("got = expected x" in h for h in hints(close_msg(got, factors=N_FACTOR)))


def test_all_zeros_hint_without_a_factor_hint() -> None:
    assert hints(close_msg(np.zeros_like(REF))) == ["got is all zeros"]


def test_float32_fails_even_within_tolerance() -> None:
    ref = np.array([[0.5, 0.25, 1.0]])
    # Exactly representable in float32, so within any tolerance: the dtype alone fails it.
    msg = close_msg(ref.astype(np.float32), ref)
    assert "dtype: expected float64, got float32" in msg
    assert "keeps only ~6 significant digits" in msg


def test_integer_hint() -> None:
    msg = close_msg(np.round(REF).astype(np.int64))
    assert "got an integer/boolean array (int64) where real numbers are expected" in msg


def test_nan_hint_says_where_and_no_cause_without_evidence() -> None:
    got = REF.copy()
    got[1, 0] = np.nan
    got[0, 2] = np.inf
    msg = close_msg(got, inputs={"x": REF * 2, "w": np.ones(3)}, expected={"other": REF})
    assert "2 of 6 entries differ" in msg
    assert ("hint: 1 NaN and 1 inf entries; the first (in index order) is 'dx'[0, 2] = inf where 3.25 is "
            "expected; the inputs there: x = 6.5") in msg
    # no fixed list of "usual causes": nothing in the numbers shows one
    assert "usually" not in msg and "exp()" not in msg and "log(0)" not in msg
    assert "got = expected x" not in msg


def test_nan_hint_names_exp_overflow_only_with_evidence() -> None:
    x = np.array([[0.5, 800.0, -1.0], [2.0, 0.0, 1.0]])
    got = REF.copy()
    got[0, 1] = np.inf
    check = Close("y", "Thing.forward: y")
    msg = check_one(check, {"y": got, "dx": np.full(3, np.nan)}, inputs={"x": x}, expected={"y": REF}, factors={})
    assert "the first (in index order) is 'y'[0, 1] = inf where -2 is expected; the inputs there: x = 800" in msg
    assert "x is beyond exp()'s float64 range there: exp(x) or exp(-x) overflows for |x| > 709.78" in msg
    assert "also non-finite: 'dx'" in msg


def test_got_equals_an_input() -> None:
    dout = np.array([[0.3, -0.7, 1.1], [2.0, 0.9, -0.4]])
    msg = close_msg(dout.copy(), inputs={"dout": dout, "x": dout + 1})
    assert "hint: got equals the input 'dout': is the wrong variable returned?" in msg
    assert "the input 'x'" not in msg


def test_got_equals_another_expected_output() -> None:
    y = np.array([[0.3, -0.7, 1.1], [2.0, 0.9, -0.4]])
    msg = close_msg(y.copy(), expected={"y": y})
    assert "hint: got equals the expected 'y': is the wrong variable returned?" in msg


def test_differences_only_in_rows() -> None:
    ref = np.arange(1.0, 16.0).reshape(5, 3)
    got = ref.copy()
    got[1] += 1
    got[3, 2] -= 2
    assert "hint: the differences are only in rows [1, 3]" in close_msg(got, ref)


def test_differences_only_in_columns() -> None:
    ref = np.arange(1.0, 16.0).reshape(3, 5)
    got = ref.copy()
    got[:, 4] *= 3
    msg = close_msg(got, ref)
    assert "hint: the differences are only in columns [4]" in msg
    assert "only in rows" not in msg


def test_matching_mistake_is_named_and_replaces_the_factor_hint() -> None:
    mistakes = (Mistake("forgetting the 1/N", lambda i, e: e["dx"] * 4),
                Mistake("an unrelated bug", lambda i, e: e["dx"] + 1))
    msg = close_msg(REF * 4, factors=N_FACTOR, mistakes=mistakes)
    assert hints(msg) == ["matches a known mistake: forgetting the 1/N"]


def test_mistake_that_does_not_match_or_raises_is_silent() -> None:
    def broken(i, e):
        raise KeyError("nope")

    mistakes = (Mistake("a wrong guess", lambda i, e: e["dx"] * 3), Mistake("a broken predictor", broken),
                Mistake("a wrong shape", lambda i, e: (e["dx"] * 4).T))
    msg = close_msg(REF * 4, factors=N_FACTOR, mistakes=mistakes)
    assert "known mistake" not in msg
    assert "(= N (the batch size))" in msg


@pytest.mark.parametrize("mistake", [
    # a weight-decay term with decay 0 predicts exactly the right answer
    Mistake("accumulated WITHOUT the weight-decay term", lambda i, e: e["dx"] - 0.0 * e["dx"]),
    # an eps placement that changes nothing beyond the tolerance on these inputs (1e-9 relative)
    Mistake("eps inside the square root", lambda i, e: e["dx"] * (1 + 1e-9)),
])
def test_a_mistake_that_makes_no_difference_here_is_never_named(mistake) -> None:
    """An array that misses the tolerance for another reason (here by 5e-7 relative) must not be told
    it "matches" a mistake that makes no difference on these inputs (the old 1e-6 rule said it did)."""
    msg = close_msg(REF * (1 + 5e-7), mistakes=(mistake,))
    assert msg is not None and "known mistake" not in msg


def test_a_mistake_is_named_only_within_the_checks_own_tolerance() -> None:
    """An eps placement that changes the result by 3e-7 (relative) is a real difference at rtol=1e-7, but
    an array 4e-7 away from that prediction is not that mistake (the old 1e-6 matched it)."""
    eps_inside = REF * (1 + 3e-7)
    mistakes = (Mistake("eps inside the square root", lambda i, e: eps_inside),)
    assert "known mistake" not in close_msg(REF * (1 + 7e-7), mistakes=mistakes)
    named = hints(close_msg(eps_inside.copy(), mistakes=mistakes))
    assert named == ["matches a known mistake: eps inside the square root"]


def test_two_known_mistakes_at_once_are_named_together() -> None:
    """Each mistake changes its own term; an array with both changes is their combination."""
    a, b, c = REF, REF[::-1] * 0.5, np.full_like(REF, 0.25)
    mistakes = (Mistake("the first term doubled", lambda i, e: 2 * a + b + c),
                Mistake("the second term with the wrong sign", lambda i, e: a - b + c),
                Mistake("the third term missing", lambda i, e: a + b))
    msg = close_msg(2 * a - b + c, a + b + c, mistakes=mistakes)
    assert hints(msg) == ["matches two known mistakes at once: the first term doubled; AND the second term with "
                          "the wrong sign"]
    # a single mistake is still named alone, and an unrelated error names neither
    assert hints(close_msg(a + b, a + b + c, mistakes=mistakes)) == ["matches a known mistake: the third term missing"]
    assert "known mistake" not in close_msg(a + 3 * b + c, a + b + c, mistakes=mistakes)


# --------------------------------------------------------------------------- residual analysis (Terms)

_RNG = np.random.default_rng(3)
T1, T2, T3, V2 = (_RNG.standard_normal((8, 3)) for _ in range(4))
SCALE = np.array([0.5, 2.0, 3.0])  # a per-column quantity, e.g. std
TERMS = Terms("y = a + b + c", (Term("the term a"), Term("the term b", ("summed over the wrong axis",)),
                                 Term("the term c")),
              lambda i, e: np.stack([T1, T2, T3, V2, np.broadcast_to(SCALE, T1.shape)]),
              group_axis=1, group="column", group_factors=("s",))


def terms_hints(got, ref=T1 + T2 + T3, **kw) -> list[str]:
    check = Close("y", "Thing.forward: y", terms=TERMS, **kw)
    return hints(check_one(check, {"y": got}, inputs={}, expected={"y": ref}, factors=N_FACTOR))


@pytest.mark.parametrize(("got", "says"), [
    (T1 - T2 + T3, "y is right except the term b, which has the wrong sign"),
    (T1 + T3, "y is right except the term b, which is missing"),
    (T1 + T2 + 4 * T3, "y is right except the term c, which has an extra factor N (the batch size)"),
    (T1 + V2 + T3, "y is right except the term b, which is summed over the wrong axis"),
    ((T1 + T2 + T3) * SCALE, "every term is right up to a factor that differs per column (0.5, 2, 3): the common "
                             "prefactor is wrong: an extra factor s"),
])
def test_terms_name_the_wrong_term(got, says) -> None:
    (hint,) = terms_hints(got)
    assert hint.startswith("fitted term by term to y = a + b + c") and says in hint, hint


def test_terms_say_nothing_without_evidence() -> None:
    noise = _RNG.standard_normal(T1.shape) * 1e-3
    assert terms_hints(T1 + T2 + T3 + noise) == []  # fits no combination of the terms
    # a constant factor is left to the factor hint, in plainer words
    assert terms_hints(2 * (T1 + T2 + T3)) == ["got = expected x 2 everywhere: off by a constant factor"]
    # too few entries to believe a fit of three coefficients
    few = Terms("y = a + b + c", TERMS.terms, lambda i, e: np.stack([T1[:1, :1], T2[:1, :1], T3[:1, :1], V2[:1, :1],
                                                                      SCALE[:1, None]]), group_factors=("s",))
    check = Close("y", "y", terms=few)
    msg = check_one(check, {"y": (T1 - T2 + T3)[:1, :1]}, inputs={}, expected={"y": (T1 + T2 + T3)[:1, :1]}, factors={})
    assert "fitted" not in msg
    # terms that do not add up to the expected value are not trusted
    assert terms_hints(T1 - T2 + T3, ref=T1 + T2 + T3 + 1.0) == []


def test_a_matching_mistake_comes_before_the_terms() -> None:
    check = Close("y", "y", terms=TERMS, mistakes=(Mistake("b negated", lambda i, e: T1 - T2 + T3),))
    msg = check_one(check, {"y": T1 - T2 + T3}, inputs={}, expected={"y": T1 + T2 + T3}, factors={})
    assert hints(msg) == ["matches a known mistake: b negated"]


def test_terms_see_a_transposed_square_array() -> None:
    a, b, c = (_RNG.standard_normal((4, 4)) for _ in range(3))
    terms = Terms("y = a + b + c", (Term("a"), Term("b"), Term("c")), lambda i, e: np.stack([a, b, c]))
    check = Close("y", "y", terms=terms)
    msg = check_one(check, {"y": (a + b + c).T}, inputs={}, expected={"y": a + b + c}, factors={})
    assert "hint: y is the TRANSPOSE of the right array" in msg


# --------------------------------------------------------------------------- not an array


@pytest.mark.parametrize(("got", "described"), [
    (None, "None (did the function forget to return?)"),
    ("hello", "a str of dtype <U5, not numbers"),
    ({"a": 1}, "a dict of dtype object, not numbers"),
    ([[1.0, 2.0], [3.0]], "a list that is not an array"),
    (Invalid("a generator (outputs must be arrays)"), "a generator (outputs must be arrays)"),
])
def test_non_arrays_are_described(got, described) -> None:
    msg = close_msg(got)
    assert msg.startswith(f"Thing.backward: dL/dx: expected an array, got {described}")


def test_missing_output() -> None:
    msg = check_one(Close("dx", "Thing.backward: dL/dx"), {"y": REF}, inputs={}, expected={"dx": REF}, factors={})
    assert msg == "Thing.backward: dL/dx: expected an array, got nothing: no such output"


# --------------------------------------------------------------------------- GradCheck


def test_gradcheck_message_names_the_numerical_gradient() -> None:
    check = GradCheck("dx", "dx_numeric", "Thing.backward: dL/dx")
    assert check_one(check, {"dx": REF, "dx_numeric": REF * (1 + 1e-7)}, inputs={}, expected={}, factors={}) is None
    msg = check_one(check, {"dx": REF * 4, "dx_numeric": REF}, inputs={}, expected={}, factors=N_FACTOR)
    lines = msg.splitlines()
    assert lines[0].startswith("Thing.backward: dL/dx: your backward disagrees with the numerical gradient of "
                               "your own forward (central differences")
    assert "(tolerance: |got - numeric| <= 1e-07 + 1e-05 * |numeric|)" in lines[1]
    assert lines[2].startswith("  numeric[")
    assert "(= N (the batch size))" in msg


def test_gradcheck_without_a_numerical_gradient() -> None:
    check = GradCheck("dx", "dx_numeric", "Thing.backward: dL/dx")
    msg = check_one(check, {"dx": REF, "dx_numeric": None}, inputs={}, expected={}, factors={})
    assert msg == ("Thing.backward: dL/dx: the numerical gradient could not be computed: "
                   "got None (did the function forget to return?)")


# --------------------------------------------------------------------------- Accuracy


LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2)


def acc_msg(pred, threshold=0.9, reference="") -> str | None:
    check = Accuracy("predictions", "labels", threshold, "fit + predict", reference=reference)
    return check_one(check, {"predictions": pred}, inputs={"labels": LABELS}, expected={}, factors={})


def test_accuracy_passes_at_the_threshold() -> None:
    pred = LABELS.copy()
    pred[:2] = 5  # 18 of 20
    assert acc_msg(pred) is None


def test_accuracy_below_threshold_without_chance_hints() -> None:
    pred = LABELS.copy()
    pred[:5] = (pred[:5] + 1) % 10  # 15 of 20
    msg = acc_msg(pred, reference="the reference reaches 0.95")
    assert msg == ("fit + predict: accuracy 0.7500 on 20 held-out digits is below the threshold 0.9000\n"
                   "  the reference reaches 0.95")


def test_accuracy_at_chance_level() -> None:
    pred = (LABELS + 1) % 10
    pred[:2] = LABELS[:2]  # 2 of 20 = 0.1
    msg = acc_msg(pred)
    assert "accuracy 0.1000" in msg
    assert "hint: this is chance level: the model did not learn anything (the handout's MNIST section" in msg
    assert "SGD" not in msg  # no fixed list of suspects: the handout has the checklist
    assert "every prediction is class" not in msg


def test_accuracy_every_prediction_is_one_class() -> None:
    msg = acc_msg(np.full(20, 3))
    assert "accuracy 0.1000" in msg and "this is chance level" in msg
    assert msg.splitlines()[-1] == "  hint: every prediction is class 3"


def test_accuracy_wrong_shape() -> None:
    msg = acc_msg(LABELS.reshape(20, 1))
    assert msg == "fit + predict: expected predictions of shape (20,), got (20, 1)"


def test_accuracy_nan_predictions_say_where_and_list_no_causes() -> None:
    pred = LABELS.astype(np.float64)
    pred[7] = np.nan
    msg = acc_msg(pred)
    assert "1 of 20 predictions are NaN or inf (the first: prediction 7)" in msg
    assert "learning rate" not in msg and "softmax" not in msg and "1/N" not in msg


# --------------------------------------------------------------------------- evaluate


def _case(checks, factors=None) -> Case:
    return Case(name="thing", points=1, description="", make_inputs=lambda rng: {}, run=lambda lab: {},
                checks=tuple(checks), factors=factors)


def test_evaluate_collects_every_failing_check_and_uses_the_case_factors() -> None:
    case = _case([Close("y", "Thing.forward: y"), Close("dx", "Thing.backward: dL/dx"),
                  GradCheck("dx", "dx_numeric", "Thing.backward (gradcheck)")],
                 factors=lambda inputs: {"N (the batch size)": float(len(inputs["x"]))})
    inputs = {"x": np.ones((4, 2))}
    expected = {"y": REF + 10, "dx": REF}
    assert evaluate(case, inputs, {"y": REF + 10, "dx": REF, "dx_numeric": REF}, expected) == []
    messages = evaluate(case, inputs, {"y": REF + 10, "dx": REF * 4, "dx_numeric": REF}, expected)
    assert len(messages) == 2
    assert messages[0].startswith("Thing.backward: dL/dx: does not match the reference")
    assert messages[1].startswith("Thing.backward (gradcheck): your backward disagrees")
    assert all("(= N (the batch size))" in m for m in messages)


# --------------------------------------------------------------------------- rows ordered in time


def test_rows_say_the_first_step_that_differs_once_on_the_location_line() -> None:
    """A trajectory (row t: after t steps) that goes wrong at step 2: one phrase says where to start, on the
    line that locates the error, never as a hint (the hints are for what went wrong)."""
    ref = np.cumsum(np.arange(1.0, 13.0).reshape(6, 2), axis=0)
    got = ref.copy()
    got[2:] += 0.5
    got[4, 1] += 1e-12  # inside the tolerance: not "the first"
    msg = close_msg(got, ref, rows="step")
    assert msg is not None and msg.count("first step that differs") == 1, msg
    location = msg.splitlines()[1]
    assert location.startswith("  8 of 12 entries differ (the first step that differs is 2; every step before it "
                               "matches); the largest error"), msg
    assert not any("first" in h for h in hints(msg)), msg


def test_rows_that_differ_from_the_first_say_so_and_no_rows_say_nothing() -> None:
    ref = np.arange(1.0, 7.0).reshape(3, 2)
    msg = close_msg(ref + 1.0, ref, rows="row")
    assert "(the first row that differs is 0: the very first)" in msg, msg
    assert "differs is" not in close_msg(ref + 1.0, ref), "without rows the message says nothing about them"
