"""grader.judging.gradcheck: central differences, the directional loss, inputs away from kinks, GradCheck.

Also shows why upstream gradients must be random: under an all-ones upstream gradient the true
gradient of softmax is exactly zero, so a backward that returns zeros would pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from grader.judging.case import GradCheck
from grader.judging.compare import check_one, find_mismatch
from grader.judging.gradcheck import H, away_from_zero, directional_loss, numerical_gradient

# Central differences with h = 1e-6 on O(1) float64 values are accurate to ~1e-10; 1e-8 leaves margin.
RTOL = 1e-8
ATOL = 1e-8
SEEDS = [0, 1, 2]


def assert_grad_close(got: np.ndarray, want: np.ndarray, what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float64, f"{what}: dtype {got.dtype}, expected float64"
    err = np.abs(got - want)
    assert np.all(err <= atol + rtol * np.abs(want)), (
        f"{what}: numerical vs analytic gradient differ by up to {err.max():.3g} "
        f"(tolerance |num - analytic| <= {atol:g} + {rtol:g} * |analytic|)")


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, shifted for stability."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(z: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dz = p * (g - sum(p * g)) for L = sum(softmax(z) * g): the correct backward."""
    p = softmax(z)
    return p * (g - np.sum(p * g, axis=-1, keepdims=True))


# --------------------------------------------------------------------------- numerical_gradient

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", [1, 4, 9])
def test_quadratic_form(seed, n):
    """f(x) = x^T A x with a non-symmetric A: gradient (A + A^T) x."""
    rng = np.random.default_rng(seed)
    a, x = rng.normal(size=(n, n)), rng.normal(size=n)
    num = numerical_gradient(lambda v: v @ a @ v, x)
    assert_grad_close(num, (a + a.T) @ x, "x^T A x")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4)], ids=["0d", "1d", "3d"])
def test_sum_of_sin_any_shape(seed, shape):
    """f(x) = sum(sin(x)) on 0-d, 1-d and 3-d arrays: gradient cos(x), shaped like x."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3.0, 3.0, size=shape)
    num = numerical_gradient(lambda v: np.sum(np.sin(v)), x)
    assert_grad_close(num, np.cos(x), f"sum(sin(x)) on shape {shape}")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(6,), (3, 5)])
def test_softmax_weighted_sum(seed, shape):
    """f(z) = sum(w * softmax(z)) with random w: gradient p * (w - sum(p * w)) per row."""
    rng = np.random.default_rng(seed)
    z, w = rng.normal(scale=2.0, size=shape), rng.normal(size=shape)
    num = numerical_gradient(lambda v: np.sum(w * softmax(v)), z)
    analytic = softmax_backward(z, w)
    assert np.max(np.abs(analytic)) > 1e-2, "the analytic gradient is ~0: the comparison would be vacuous"
    assert_grad_close(num, analytic, "sum(w * softmax(z))")


@pytest.mark.parametrize("seed", SEEDS)
def test_log_sum_exp(seed):
    """f(z) = log(sum(exp(z))): gradient softmax(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=7)
    num = numerical_gradient(lambda v: np.log(np.sum(np.exp(v))), z)
    assert_grad_close(num, softmax(z), "log-sum-exp")


@pytest.mark.parametrize("h", [None, 1e-4])
def test_step_size(h):
    """The central difference of sin(k x) is exactly cos(k x) sin(k h) / h: it shows which h is used.

    With k = 1000 that differs from the true derivative k cos(k x) by ~k^3 h^2 / 6 = 1.7e-4 at
    h = 1e-6, far above rounding (~1e-9 here), so a different default h would be seen (GradCheck's
    failure message tells students h=1e-6).
    """
    assert H == 1e-6, f"GradCheck's message says h=1e-6, but grader.judging.gradcheck.H is {H}"
    k, step = 1000.0, 1e-6 if h is None else h
    x = np.array([0.011, -0.032, 0.047])  # small |x|: rounding of x +- h, times k, stays ~1e-9
    f = lambda v: np.sum(np.sin(k * v))  # noqa: E731
    num = numerical_gradient(f, x) if h is None else numerical_gradient(f, x, h=h)
    assert_grad_close(num, np.cos(k * x) * np.sin(k * step) / step, f"sin(1000 x) with h = {step:g}",
                      rtol=0, atol=5e-8)
    assert not np.allclose(num, k * np.cos(k * x), rtol=0, atol=1e-5), "expected truncation error is missing"


def test_does_not_modify_its_input():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4))
    before = x.copy()
    numerical_gradient(lambda v: np.sum(np.sin(v) * v), x)
    assert np.array_equal(x, before), "numerical_gradient changed its input"


def test_input_is_untouched_even_when_f_raises_midway():
    """The perturbation is applied to a private copy, so an exception cannot leave x + h behind."""
    x = np.array([0.5, -1.5, 2.5])
    before = x.copy()
    calls = 0

    def f(v: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        if calls == 3:  # entry 1 is perturbed by +h right now
            raise RuntimeError("boom")
        return float(np.sum(v))

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    assert np.array_equal(x, before), f"numerical_gradient left its input changed: {x - before}"


def test_function_that_mutates_its_argument_does_not_corrupt_the_result():
    """f gets a copy each call: an f that scribbles on its argument cannot shift later entries."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=5)
    before = x.copy()

    def f(v: np.ndarray) -> float:
        out = float(np.sum(v**2))
        v += 100.0  # a careless forward that modifies its input in place
        return out

    num = numerical_gradient(f, x)
    assert np.array_equal(x, before), "numerical_gradient changed its input"
    assert_grad_close(num, 2 * before, "sum(x^2) with an input-mutating f")


def test_integer_input_is_treated_as_float64():
    num = numerical_gradient(lambda v: np.sum(v**2), np.array([1, -2, 3]))
    assert_grad_close(num, np.array([2.0, -4.0, 6.0]), "sum(x^2) at an integer x")


# --------------------------------------------------------------------------- directional_loss

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(1, 4, 3), (5, 2, 6), (3, 3, 3)], ids=lambda s: "N{}_D{}_M{}".format(*s))
def test_directional_loss_of_linear_map_is_jt_g(seed, shape):
    """For y = x @ W.T (the Jacobian is fixed), grad of sum(y * g) is J^T g = g @ W."""
    n, d, m = shape
    rng = np.random.default_rng(seed)
    w, x, g = rng.normal(size=(m, d)), rng.normal(size=(n, d)), rng.normal(size=(n, m))
    loss = directional_loss(lambda v: v @ w.T, g)
    assert loss(x) == pytest.approx(float(np.sum((x @ w.T) * g)), rel=1e-14)
    # J^T g built from the explicit Jacobian of the flattened map: J[(n,m), (n',d)] = delta_nn' W[m, d].
    jac = np.kron(np.eye(n), w)
    jt_g = (jac.T @ g.reshape(-1)).reshape(n, d)
    assert_grad_close(jt_g, g @ w, "explicit J^T g vs g @ W", rtol=1e-12, atol=1e-12)
    assert_grad_close(numerical_gradient(loss, x), jt_g, "grad of sum(forward(x) * g) vs J^T g")


def test_directional_loss_returns_a_float():
    loss = directional_loss(lambda v: 2 * v, np.array([1.0, -1.0]))
    value = loss(np.array([3.0, 0.5]))
    assert isinstance(value, float) and value == 5.0


# --------------------------------------------------------------------------- away_from_zero

@pytest.mark.parametrize("low,high", [(0.1, 2.0), (0.5, 0.6), (1e-3, 10.0)])
@pytest.mark.parametrize("seed", SEEDS)
def test_away_from_zero(seed, low, high):
    rng = np.random.default_rng(seed)
    v = away_from_zero(rng, (20, 30), low=low, high=high)
    assert v.shape == (20, 30) and v.dtype == np.float64
    assert np.all(np.abs(v) >= low), f"an entry is closer to 0 than {low}: {np.abs(v).min()}"
    assert np.all(np.abs(v) < high), f"an entry is at least {high}: {np.abs(v).max()}"
    assert np.any(v > 0) and np.any(v < 0), "both signs must appear"


def test_away_from_zero_defaults_keep_relu_kinks_far_from_h():
    v = away_from_zero(np.random.default_rng(0), (1000,))
    assert np.abs(v).min() >= 0.1 >= 100 * H
    assert 300 < np.sum(v > 0) < 700, "signs should be roughly balanced"


# --------------------------------------------------------------------------- GradCheck via check_one

CHECK = GradCheck("dx", "dx_num", "softmax backward dL/dx")


def gradcheck_message(analytic: np.ndarray, numeric: np.ndarray) -> str | None:
    return check_one(CHECK, {"dx": analytic, "dx_num": numeric}, inputs={}, expected={}, factors={})


def softmax_case(seed: int, ones: bool = False):
    """(z, g, numerical gradient of sum(softmax(z) * g), correct analytic gradient)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(4, 5))
    g = np.ones_like(z) if ones else rng.normal(size=z.shape)
    num = numerical_gradient(directional_loss(softmax, g), z)
    return z, g, num, softmax_backward(z, g)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradcheck_passes_on_correct_gradient(seed):
    _, _, num, analytic = softmax_case(seed)
    assert gradcheck_message(analytic, num) is None


@pytest.mark.parametrize("seed", SEEDS)
def test_gradcheck_fails_on_one_wrong_entry(seed):
    _, _, num, analytic = softmax_case(seed)
    wrong = analytic.copy()
    wrong[2, 3] += 1e-3  # far above 1e-7 + 1e-5 * |numeric|
    msg = gradcheck_message(wrong, num)
    assert msg is not None, "GradCheck passed a gradient with a wrong entry"
    assert "numerical gradient" in msg, msg
    assert "1 of 20 entries differ" in msg and "(2, 3)" in msg, msg


@pytest.mark.parametrize("seed", SEEDS)
def test_gradcheck_fails_on_gradient_scaled_by_2(seed):
    _, _, num, analytic = softmax_case(seed)
    msg = gradcheck_message(2 * analytic, num)
    assert msg is not None, "GradCheck passed a gradient scaled by 2"
    assert "numerical gradient" in msg, msg
    assert "x 2 everywhere" in msg, msg


def test_gradcheck_reports_missing_numeric_output():
    msg = check_one(CHECK, {"dx": np.zeros(3)}, inputs={}, expected={}, factors={})
    assert msg is not None and "numerical gradient could not be computed" in msg, msg


# --------------------------------------------------------------------------- why upstream must be random

@pytest.mark.parametrize("seed", SEEDS)
def test_all_ones_upstream_hides_a_zero_softmax_backward(seed):
    """sum(softmax(z) * 1) = N for every z, so its gradient is exactly 0 and a zero backward passes."""
    z, g, num, analytic = softmax_case(seed, ones=True)
    assert np.max(np.abs(analytic)) < 1e-15, f"the true gradient should vanish, got {analytic}"
    assert np.max(np.abs(num)) < 1e-8, f"the numerical gradient should be ~0, got {np.max(np.abs(num))}"
    zeros = np.zeros_like(z)
    assert gradcheck_message(zeros, num) is None, "a zero backward should (wrongly) pass under all-ones"
    assert find_mismatch(zeros, num, CHECK.rtol, CHECK.atol) is None


@pytest.mark.parametrize("seed", SEEDS)
def test_random_upstream_catches_a_zero_softmax_backward(seed):
    z, _, num, analytic = softmax_case(seed)
    assert gradcheck_message(analytic, num) is None, "the correct backward must still pass"
    msg = gradcheck_message(np.zeros_like(z), num)
    assert msg is not None, "a zero backward passed under a random upstream gradient"
    assert "numerical gradient" in msg and "got is all zeros" in msg, msg
