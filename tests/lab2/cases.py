"""Lab 2 cases: BatchNorm1d, BatchNorm2d and Dropout, in training and eval mode.

Each case's run function is the only code that touches the implementation (``lab`` is the
imported lab package); what it returns is judged in the grading process against the
reference (``Close``), a numerical gradient of the same implementation (``GradCheck``), or
held-out labels (``Accuracy``). See labs/lab2/README.md for the table of cases and points.

Conventions that the inputs follow:
  * float64 everywhere; RANDOM upstream gradients: with an all-ones upstream gradient,
    dL/dx of BatchNorm is identically zero (the output of every feature sums to N * beta
    whatever x is), so any backward that returns zeros, or is wrong in the terms that cancel,
    would pass;
  * non-square shapes (N != D, C != H != W), some features with a small variance (~1e-4, so
    that where eps goes matters) and a nonzero mean (so the mean path of the gradient matters);
  * hidden variants change shapes and hyperparameters (eps, momentum, p), not only values;
  * Dropout is graded by properties every valid mask satisfies (drop fraction near p over
    100,000 entries, kept entries scaled by 1/(1 - p), backward reusing the forward's mask,
    identity in eval), never against one particular random draw. That the mask is random is
    judged in the grading process, on the masks of two calls: every row's and every column's
    count of dropped entries within binomial bounds, their spread that of independent draws, and
    the two calls independent of each other (a fixed block, a pattern, a mask per row or per
    column would pass the fraction and the scale).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from grader.judging.case import (
    Accuracy,
    Arrays,
    Close,
    Given,
    GradCheck,
    Lab,
    Metric,
    Mistake,
    Term,
    Terms,
    described,
    instructor,
)
from grader.judging.casekit import ConventionError, mnist_inputs, param_loss
from grader.judging.gradcheck import directional_loss, numerical_gradient

LAB = Lab("lab2", "Lab 2: BatchNorm and Dropout")

# The MNIST threshold: the reference's worst held-out accuracy over seeds 0-4, measured by
# `python scripts/measure_accuracy.py --lab lab2` (quoted in the handout): mean 0.9455, worst 0.9435,
# minus a 0.0135 margin for other reasonable designs and hyperparameters (Lab 1 uses the same).
ACCURACY_THRESHOLD = 0.93
REFERENCE_ACCURACY = ("the reference (784-128 Linear, BatchNorm1d, ReLU, Dropout(0.2), 128-10 Linear; 10 epochs "
                      "of SGD, lr 0.1, batch 64) reaches 0.9455 on average over seeds 0-4 (worst 0.9435)")

UNCHANGED = "The function must not modify its input array in place: the caller still uses it."
PYTORCH_MOMENTUM = ("The convention (PyTorch's): running = (1 - momentum) * running + momentum * batch_statistic, "
                    "with running_mean starting at 0, running_var at 1, and the UNBIASED batch variance "
                    "(divide by N - 1) for running_var.")

# Predictions that need BatchNorm's math (a staged backward with a bug, a running average under
# another convention) are computed by the instructor-only solutions/lab2/instructor/mistakes.py,
# named here by key: Mistake(description, instructor(key)) (see grader/judging/case.py). The public seeds'
# predictions are in fixtures/public.npz.


# ----------------------------------------------------------------------------- building layers


def _set_param(layer: Any, cls: str, name: str, greek: str, value: np.ndarray) -> None:
    param = getattr(layer, name, None)
    if param is None or not hasattr(param, "data") or not hasattr(param, "grad"):
        raise ConventionError(f"{cls} has no Parameter attribute '{name}' (for {greek}): the convention is "
                              "PyTorch's names, self.weight for gamma and self.bias for beta (the provided "
                              "__init__ creates both)")
    if param.data.shape != value.shape:
        raise ConventionError(f"{cls}.{name} has shape {param.data.shape}; expected {value.shape} "
                              "(one value per feature or channel)")
    param.data[...] = value


def make_bn(lab: ModuleType, gamma: np.ndarray, beta: np.ndarray, eps: Any, momentum: Any,
            cls: str = "BatchNorm1d") -> Any:
    """A BatchNorm layer of the implementation with the given gamma (weight), beta (bias), eps, momentum."""
    layer = getattr(lab, cls)(len(gamma), eps=float(eps), momentum=float(momentum))
    _set_param(layer, cls, "weight", "gamma", gamma)
    _set_param(layer, cls, "bias", "beta", beta)
    for name, start in (("running_mean", 0.0), ("running_var", 1.0)):
        value = getattr(layer, name, None)
        if value is None or np.shape(value) != gamma.shape:
            raise ConventionError(f"{cls} needs an array attribute '{name}' of shape {gamma.shape}, "
                                  f"starting at {start:g} (the provided __init__ creates it)")
    return layer


def _stats(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    return np.array(layer.running_mean, copy=True), np.array(layer.running_var, copy=True)


def _features(rng: np.random.Generator, shape: tuple[int, ...], axis: int = 1) -> np.ndarray:
    """Random inputs whose features (channels) have different means and scales, one with var ~1e-4."""
    k = shape[axis]
    scale = rng.uniform(0.5, 3.0, size=k)
    scale[rng.integers(k)] = 0.01  # var + eps vs sqrt(var) + eps: visible only for small variances
    shift = rng.uniform(-2.0, 2.0, size=k)
    view = [1] * len(shape)
    view[axis] = k
    return rng.standard_normal(shape) * scale.reshape(view) + shift.reshape(view)


def _affine_params(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    gamma = rng.uniform(0.5, 2.0, size=k) * rng.choice([-1.0, 1.0], size=k)
    return gamma, rng.standard_normal(k)


# ----------------------------------------------------------------------------- BatchNorm1d: forward


def bn1d_inputs(n: int, d: int, eps: float = 1e-5, momentum: float = 0.1):
    def make(rng: np.random.Generator) -> Arrays:
        gamma, beta = _affine_params(rng, d)
        return {"x": _features(rng, (n, d)), "gamma": gamma, "beta": beta, "eps": np.array(eps),
                "momentum": np.array(momentum), "dout": rng.standard_normal((n, d))}
    return described(f"N={n}, D={d}, eps={eps:g}, momentum={momentum:g}", make)


def _with_pairs(singles: tuple[tuple[str, str], ...], exclusive: tuple[frozenset[str], ...],
                key: Callable[[str], str]) -> tuple[Mistake, ...]:
    """Each known mistake (bug name, description), then every pair of them at once (a student often makes
    two: their effects do not add up in a normalisation, so each pair is predicted as such). Two bugs of
    one ``exclusive`` group (two ways to choose the axes) cannot happen together. ``key(bug)`` names the
    instructor prediction; a pair's is ``key("a-b")`` (solutions/lab2/instructor/mistakes.py)."""
    mistakes = [Mistake(description, instructor(key(bug))) for bug, description in singles]
    for k, (a, da) in enumerate(singles):
        for b, db in singles[k + 1:]:
            if not any(a in group and b in group for group in exclusive):
                mistakes.append(Mistake(f"two mistakes at once: {da}; AND {db}", instructor(key(f"{a}-{b}"))))
    return tuple(mistakes)


FORWARD_1D = (
    ("eps_outside", "eps outside the square root: x_hat = (x - mean) / (sqrt(var) + eps); the convention is "
                    "(x - mean) / sqrt(var + eps)"),
    ("unbiased", "normalising with the UNBIASED variance (divide by N - 1); normalise with the biased one "
                 "(divide by N), keep N / (N - 1) for running_var only"),
    ("axis1", "statistics over axis 1 (each sample's features) instead of axis 0 (the batch)"),
    ("swapped", "gamma and beta swapped: y = beta * x_hat + gamma"),
    ("no_affine", "leaving out gamma and beta (returning x_hat)"),
)
AFFINE = frozenset({"swapped", "no_affine"})  # two ways to get gamma and beta wrong: one at a time


def _forward_mistakes(key: str = "x") -> tuple[Mistake, ...]:
    """Known wrong training forwards of BatchNorm1d on the input ``key``, and pairs of them."""
    return _with_pairs(FORWARD_1D, (AFFINE,), lambda bug: f"bn1d_y.{bug}.{key}")


@LAB.case(points=8, inputs=bn1d_inputs(6, 4),
          hidden_inputs=(bn1d_inputs(3, 7, eps=1e-3), bn1d_inputs(10, 2, eps=1e-4, momentum=0.3)), checks=[
    Close("y", "BatchNorm1d.forward (training): output y", mistakes=_forward_mistakes()),
    Close("x_after", "BatchNorm1d.forward: the input x after the call", exact=True, explain=UNCHANGED),
])
def bn1d_train_forward(lab, x, gamma, beta, eps, momentum):
    """BatchNorm1d training forward on (N=6, D=4): batch statistics, biased variance, eps inside the sqrt."""
    x_in = x.copy()
    y = make_bn(lab, gamma, beta, eps, momentum)(x_in)
    return {"y": y, "x_after": x_in}


def batch_size_inputs(n_small: int, n_large: int, d: int):
    def make(rng: np.random.Generator) -> Arrays:
        gamma, beta = _affine_params(rng, d)
        return {"x_small": _features(rng, (n_small, d)), "x_large": _features(rng, (n_large, d)),
                "gamma": gamma, "beta": beta, "eps": np.array(1e-5), "momentum": np.array(0.1)}
    return described(f"N={n_small} and N={n_large}, D={d}", make)


@LAB.case(points=4, inputs=batch_size_inputs(2, 2000, 3),
          hidden_inputs=(batch_size_inputs(2, 4096, 5), batch_size_inputs(3, 1500, 2)), checks=[
    Close("y_small", "BatchNorm1d.forward with the smallest batch (N = 2): output y",
          mistakes=_forward_mistakes("x_small")),
    Close("y_large", "BatchNorm1d.forward with a large batch: output y", rtol=1e-6, atol=1e-9,
          mistakes=_forward_mistakes("x_large")),
])
def bn1d_batch_sizes(lab, x_small, x_large, gamma, beta, eps, momentum):
    """Batch statistics for N = 2 (each x_hat is +-1) and for a large N."""
    return {"y_small": make_bn(lab, gamma, beta, eps, momentum)(x_small),
            "y_large": make_bn(lab, gamma, beta, eps, momentum)(x_large)}


FLOAT64_ITEMS = ("y", "dx", "running_mean", "running_var", "weight.grad", "bias.grad")


def _precision(value: Any) -> float:
    """8 for a float64 array, its item size for another float, 0 for anything else."""
    arr = np.asarray(value)
    return float(arr.dtype.itemsize) if arr.dtype.kind == "f" else 0.0


@LAB.case(points=3, inputs=bn1d_inputs(5, 3), hidden_inputs=(bn1d_inputs(4, 6), bn1d_inputs(9, 2, eps=1e-3)), checks=[
    Close("bytes_per_value", f"BatchNorm1d: bytes per value of {', '.join(FLOAT64_ITEMS)} after a training step",
          exact=True, explain="Every entry must be 8 (float64): the labs compute in float64, and gradient checks "
                              "need it. A 4 is float32 (an astype, or an array created with dtype=np.float32); "
                              "a 0 is not a float array at all."),
])
def bn1d_float64(lab, x, gamma, beta, eps, momentum, dout):
    """Everything stays float64: output, dL/dx, running statistics, parameter gradients."""
    layer = make_bn(lab, gamma, beta, eps, momentum)
    y = layer(x)
    dx = layer.backward(dout)
    values = (y, dx, layer.running_mean, layer.running_var, layer.weight.grad, layer.bias.grad)
    return {"bytes_per_value": np.array([_precision(v) for v in values])}


# ----------------------------------------------------------------------------- running statistics and eval


def steps_inputs(sizes: tuple[int, ...], d: int, momentum: float, eps: float = 1e-5):
    def make(rng: np.random.Generator) -> Arrays:
        gamma, beta = _affine_params(rng, d)
        out = {f"x{k}": _features(rng, (n, d)) + rng.uniform(-1, 1, size=d) for k, n in enumerate(sizes)}
        out.update(gamma=gamma, beta=beta, eps=np.array(eps), momentum=np.array(momentum),
                   x_eval=_features(rng, (5, d)))
        return out
    return described(f"batches of N={', '.join(map(str, sizes))}, D={d}, momentum={momentum:g}, eps={eps:g}", make)


def _batches(i: Arrays) -> list[np.ndarray]:
    return [i[f"x{k}"] for k in range(sum(1 for key in i if key[1:].isdigit()))]


def _train_steps(layer: Any, batches: list[np.ndarray]) -> None:
    layer.train()
    for x in batches:
        layer(x)


KERAS = ("the Keras convention: momentum weighting the OLD value (running = momentum * running + "
         "(1 - momentum) * batch); PyTorch's, used here, is running = (1 - momentum) * running + momentum * batch")
BIASED_RUNNING = ("running_var updated with the BIASED batch variance (divide by N); it takes the UNBIASED one "
                  "(divide by N - 1), as PyTorch does, because it estimates the population variance")
NOT_UPDATED = "running statistics never updated in training (still 0 and 1)"
TWICE = ("the N / (N - 1) correction applied twice to running_var: the batch variance it starts from is "
         "already the UNBIASED one, i.e. the forward normalises with the unbiased variance; normalise with the "
         "biased one (divide by N) and correct only the running statistic")
TWICE_2D = TWICE.replace("N / (N - 1)", "M / (M - 1)").replace("(divide by N)", "(divide by M = N * H * W)")


def _running_mistakes(which: int) -> tuple[Mistake, ...]:
    """Mistakes on running_mean (which=0) or running_var (which=1) after the steps."""
    stat = ("mean", "var")[which]
    mistakes = [Mistake(KERAS, instructor(f"bn1d_running.{stat}.keras")),
                Mistake(NOT_UPDATED, lambda i, e: np.full(len(i["gamma"]), float(which)))]
    if which == 1:
        mistakes += [Mistake(TWICE, instructor("bn1d_running.var.twice")),
                     Mistake(BIASED_RUNNING, instructor("bn1d_running.var.biased")),
                     Mistake(f"{KERAS}; and {BIASED_RUNNING}", instructor("bn1d_running.var.keras_biased"))]
    return tuple(mistakes)


@LAB.case(points=10, inputs=steps_inputs((5, 8, 3), 4, 0.1),
          hidden_inputs=(steps_inputs((2, 6, 4, 7), 3, 0.3), steps_inputs((9, 4), 5, 0.05, eps=1e-3)), checks=[
    Close("running_mean", "BatchNorm1d.running_mean after training steps on different batches",
          mistakes=_running_mistakes(0), explain=PYTORCH_MOMENTUM),
    Close("running_var", "BatchNorm1d.running_var after training steps on different batches",
          mistakes=_running_mistakes(1), explain=PYTORCH_MOMENTUM),
])
def bn1d_running_stats(lab, **inputs):
    """running_mean/running_var after 3 training steps (N = 5, 8, 3): PyTorch's momentum, unbiased variance."""
    layer = make_bn(lab, inputs["gamma"], inputs["beta"], inputs["eps"], inputs["momentum"])
    _train_steps(layer, _batches(inputs))
    mean, var = _stats(layer)
    return {"running_mean": mean, "running_var": var}


# Eval is judged given the student's OWN running statistics (grader/judging/given.py): a convention
# difference in the running statistics (Keras' momentum, the biased variance, never updated) is charged
# in the running-statistics cases, which name it; eval cases then fail only when eval itself is wrong.
RUNNING_EARLIER = "running_mean/running_var update (the training forward)"
EVAL_FORMULA = "In eval mode: y = weight * (x - running_mean) / sqrt(running_var + eps) + bias."


def _running_used(layer: Any) -> dict[str, np.ndarray]:
    """The layer's running statistics after training (each in its own dtype): what its eval forward must use."""
    mean, var = _stats(layer)
    return {"running_mean_used": mean, "running_var_used": var}


RUNNING_USED = ("running_mean_used", "running_var_used")


@LAB.case(points=8, inputs=steps_inputs((6, 4, 7), 3, 0.1),
          hidden_inputs=(steps_inputs((3, 5), 6, 0.2), steps_inputs((8, 2, 5, 4), 2, 0.01, eps=1e-2)),
          given=Given(RUNNING_EARLIER, RUNNING_USED, "given.bn1d_eval"), checks=[
    Close("y_eval", "BatchNorm1d.forward in eval mode (after model.eval()), after training steps", mistakes=(
        Mistake("eval still normalising with the BATCH statistics; after eval() it must use "
                "running_mean and running_var", instructor("bn1d_eval.batch_stats")),
    ), explain=EVAL_FORMULA),
    Close("stats_after_eval", "BatchNorm1d: running_mean and running_var (concatenated) after an EVAL forward",
          explain="An eval forward must not change the running statistics (only training forwards update them)."),
])
def bn1d_eval_forward(lab, **inputs):
    """After 3 training steps, eval() normalises with the running statistics and does not update them."""
    layer = make_bn(lab, inputs["gamma"], inputs["beta"], inputs["eps"], inputs["momentum"])
    _train_steps(layer, _batches(inputs))
    used = _running_used(layer)
    layer.eval()
    y = layer(inputs["x_eval"])
    return {"y_eval": y, "stats_after_eval": np.concatenate(_stats(layer)), **used}


# ----------------------------------------------------------------------------- BatchNorm1d: backward


def _dx_mistake(description: str, bug: str) -> Mistake:
    """A known wrong dL/dx; the same bug in BatchNorm2d (4-d inputs) is predicted per channel."""
    return Mistake(description, instructor(f"bn_dx.{bug}"))


DX_MISTAKES = (
    _dx_mistake("the mean path of the gradient is missing: mean = x.mean(0) depends on every x[n], so dx "
                "needs the term - mean_n(dL/d(x - mean)) (in the compact formula: - mean_n(dy))", "no_mean_path"),
    _dx_mistake("the variance path of the gradient is missing: var depends on x too (in the compact "
                "formula: the term - x_hat * mean_n(dy * x_hat))", "no_var_path"),
    _dx_mistake("in the staged backward, x_hat (the NORMALISED x) is used where x - mean belongs: "
                "x_hat = (x - mean) * (1/std), so dL/d(1/std) = sum_n dL/dx_hat * (x - mean), not * x_hat",
                "xhat_for_xc"),
    _dx_mistake("in the staged backward, std is used where 1/std belongs: the direct path is "
                "dL/d(x - mean) = dL/dx_hat * (1/std), not * std", "std_for_istd"),
    _dx_mistake("in the staged backward, 1/std and std are swapped in d(1/std)/d(std) = -1/std**2: "
                "dL/dstd = -dL/d(1/std) / std**2", "istd_for_std"),
    _dx_mistake("a sum without axis=0 in the backward: dL/dmean summed over EVERY entry (a scalar that "
                "broadcasts) instead of over the batch, per feature", "sum_no_axis_mu"),
    _dx_mistake("a sum without axis=0 in the backward: dL/d(1/std) summed over EVERY entry (a scalar that "
                "broadcasts) instead of over the batch, per feature", "sum_no_axis_istd"),
    _dx_mistake("gamma left out of dx: dL/dx_hat = dL/dy * gamma", "no_gamma"),
    Mistake("the mean and variance paths are both missing (x_hat treated as (x - constant) / constant)",
            instructor("bn_dx.no_paths")),
)


# The formula the terms are fitted to, named without writing it out: deriving it is the exercise.
DX_FORMULA = "dL/dx's direct, mean and variance terms"
# What every dL/dx failure says: how to find the bug, not the answer (deriving it is the exercise).
DX_DERIVE = ("dL/dx: check each line of your backward against the forward line it comes from (the handout's "
             "section 3 walks the stages); the staged and the compact form both pass.")


def _dx_terms(key: str, wrong_means: tuple[str, ...], group: str) -> Terms:
    """dL/dx as its three terms, so that an error no known mistake matches is said in their words. The
    terms need the solution's math: the instructor module computes them (``<key>``), stacked, then the
    mean and variance terms' variants (each wrong mean_n of ``wrong_means``, written two ways: of dy,
    or of dL/dx_hat = gamma * dy), then std and gamma per feature."""
    variants = tuple(v for wrong in wrong_means for v in (wrong, wrong))
    return Terms(DX_FORMULA, (
        Term("the direct term gamma/std * dy", short="direct term"),
        Term("the mean term -gamma/std * mean_n(dy) (the mean path)", variants, short="mean term"),
        Term("the variance term -gamma/std * x_hat * mean_n(dy * x_hat) (the variance path)", variants,
             short="variance term"),
    ), instructor(key), group_axis=1, group=group, group_factors=("std = sqrt(var + eps)", "gamma"))


BN1D_DX_TERMS = _dx_terms("bn1d_dx.terms", (
    "taken over axis 1 (each sample's features) instead of over the batch (axis 0)",
    "taken over every entry instead of per feature over the batch"), "feature")
BN2D_DX_TERMS = _dx_terms("bn2d_dx.terms", (
    "taken over axis 1 (each pixel's channels) instead of per channel over N, H and W",
    "taken over every entry instead of per channel",
    "taken over axis 0 only (per channel AND pixel) instead of over N, H and W"), "channel")


@LAB.case(points=12, inputs=bn1d_inputs(5, 4),
          hidden_inputs=(bn1d_inputs(3, 2), bn1d_inputs(16, 3, eps=1e-3)), checks=[
    GradCheck("dx", "dx_numeric", "BatchNorm1d.backward: dL/dx (its return value)"),
    Close("dx", "BatchNorm1d.backward: dL/dx (its return value)", rtol=1e-6, atol=1e-9, mistakes=DX_MISTAKES,
          terms=BN1D_DX_TERMS,
          explain=DX_DERIVE),
    Close("dout_after", "BatchNorm1d.backward: grad_output after the call", exact=True, explain=UNCHANGED),
])
def bn1d_backward_dx(lab, x, gamma, beta, eps, momentum, dout):
    """BatchNorm1d.backward returns dL/dx, checked with a RANDOM upstream gradient (all ones gives dx = 0)."""
    layer = make_bn(lab, gamma, beta, eps, momentum)
    layer(x)
    g = dout.copy()
    dx = layer.backward(g)
    numeric = numerical_gradient(directional_loss(
        lambda v: make_bn(lab, gamma, beta, eps, momentum)(v), dout, "BatchNorm1d.forward"), x)
    return {"dx": dx, "dx_numeric": numeric, "dout_after": g}


def _sum_all(v: np.ndarray, d: int) -> np.ndarray:
    return np.full(d, v.sum())


@LAB.case(points=7, inputs=bn1d_inputs(6, 3), hidden_inputs=(bn1d_inputs(2, 5), bn1d_inputs(11, 4, eps=1e-2)), checks=[
    GradCheck("dgamma", "dgamma_numeric", "BatchNorm1d.backward: weight.grad (dL/dgamma)"),
    Close("dgamma", "BatchNorm1d.backward: weight.grad (dL/dgamma)", mistakes=(
        Mistake("dL/dgamma = sum_n dy * x; it is sum_n dy * x_hat (the normalised x)",
                lambda i, e: (i["dout"] * i["x"]).sum(axis=0)),
        Mistake("averaging over the batch (mean) instead of summing", lambda i, e: e["dgamma"] / len(i["x"])),
        Mistake("a sum without axis=0: summed over every entry (a scalar that broadcasts) instead of per feature",
                instructor("bn1d_dgamma.sum_all")),
    )),
    GradCheck("dbeta", "dbeta_numeric", "BatchNorm1d.backward: bias.grad (dL/dbeta)"),
    Close("dbeta", "BatchNorm1d.backward: bias.grad (dL/dbeta)", mistakes=(
        Mistake("averaging over the batch (mean) instead of summing", lambda i, e: i["dout"].mean(axis=0)),
        Mistake("a sum without axis=0: summed over every entry (a scalar that broadcasts) instead of per feature",
                lambda i, e: _sum_all(i["dout"], len(i["gamma"]))),
        Mistake("dL/dbeta = sum_n dy * x_hat: that is dL/dgamma (the two are swapped)",
                instructor("bn1d_dbeta.is_dgamma")),
    )),
])
def bn1d_backward_params(lab, x, gamma, beta, eps, momentum, dout):
    """BatchNorm1d.backward adds dL/dgamma = sum_n dy * x_hat and dL/dbeta = sum_n dy into weight.grad, bias.grad."""
    layer = make_bn(lab, gamma, beta, eps, momentum)
    layer(x)
    layer.backward(dout)
    probe = make_bn(lab, gamma, beta, eps, momentum)
    return {"dgamma": layer.weight.grad.copy(), "dbeta": layer.bias.grad.copy(),
            "dgamma_numeric": numerical_gradient(param_loss(probe, probe.weight, x, dout), gamma),
            "dbeta_numeric": numerical_gradient(param_loss(probe, probe.bias, x, dout), beta)}


_OVERWRITE = "overwriting the gradient (grad = ...) instead of accumulating (grad += ...)"


@LAB.case(points=4, inputs=bn1d_inputs(4, 3), hidden_inputs=(bn1d_inputs(7, 2), bn1d_inputs(3, 5)), checks=[
    Close("dgamma_growth", "weight.grad after two forward/backward passes, divided by your own after one pass",
          mistakes=(Mistake(_OVERWRITE, lambda i, e: e["dgamma_growth"] / 2),),
          explain="Gradients accumulate until zero_grad(), as in PyTorch: backward adds into .grad, so two passes "
                  "give twice one pass's gradient (whatever that is: its value is graded in bn1d_backward_params)."),
    Close("dbeta_growth", "bias.grad after two forward/backward passes, divided by your own after one pass",
          mistakes=(Mistake(_OVERWRITE, lambda i, e: e["dbeta_growth"] / 2),)),
])
def bn1d_gradients_accumulate(lab, x, gamma, beta, eps, momentum, dout):
    """Two backward passes add up in weight.grad and bias.grad (judged against your own one-pass gradients)."""
    grads = []
    for passes in (1, 2):
        layer = make_bn(lab, gamma, beta, eps, momentum)
        for _ in range(passes):
            layer(x)
            layer.backward(dout)
        grads.append((np.array(layer.weight.grad, dtype=np.float64), np.array(layer.bias.grad, dtype=np.float64)))
    (g1, b1), (g2, b2) = grads

    def growth(twice: np.ndarray, once: np.ndarray) -> np.ndarray:
        # where one pass gives ~0 there is nothing to compare: count it as accumulated
        safe = np.abs(once) > 1e-12
        return np.where(safe, twice / np.where(safe, once, 1.0), 2.0)

    return {"dgamma_growth": growth(g2, g1), "dbeta_growth": growth(b2, b1)}


# ----------------------------------------------------------------------------- BatchNorm2d


def bn2d_inputs(shape: tuple[int, int, int, int], eps: float = 1e-5, momentum: float = 0.1, steps: int = 0):
    def make(rng: np.random.Generator) -> Arrays:
        c = shape[1]
        gamma, beta = _affine_params(rng, c)
        out = {"x": _features(rng, shape), "gamma": gamma, "beta": beta, "eps": np.array(eps),
               "momentum": np.array(momentum), "dout": rng.standard_normal(shape)}
        for k in range(steps):  # further training batches with other N
            out[f"x{k}"] = _features(rng, (shape[0] + k + 1, *shape[1:]))
        # one image (N = 1): each channel still has H * W values; only BatchNorm1d needs N >= 2
        out["x_single"] = _features(rng, (1, *shape[1:]))
        return out
    more = f", {steps} more batch{'es' if steps > 1 else ''}" if steps else ""
    return described(f"(N, C, H, W) = {shape}, eps={eps:g}, momentum={momentum:g}{more}", make)


AXES_2D = "statistics per CHANNEL over axes (0, 2, 3), i.e. over N, H and W"


FLAT_RESHAPE = ("x.reshape(-1, C) without moving the channel axis last first: the rows mix channels and pixels; "
                "use x.transpose(0, 2, 3, 1).reshape(-1, C) (and undo both after)")
AXES0_FORWARD = f"statistics over axis 0 only (per channel AND pixel); the convention is {AXES_2D}"
FORWARD_2D = (
    ("axes0", AXES0_FORWARD),
    ("axes23", f"statistics over axes (2, 3) only (per sample and channel: that is instance norm); {AXES_2D}"),
    ("axes01", f"statistics over axes (0, 1) (N and C); {AXES_2D}"),
    ("flat_reshape", FLAT_RESHAPE),
    ("eps_outside", "eps outside the square root: (x - mean) / (sqrt(var) + eps)"),
    ("unbiased", "normalising with the UNBIASED variance (divide by M - 1, M = N * H * W); normalise with the "
                 "biased one, keep M / (M - 1) for running_var only"),
    ("swapped", "gamma and beta swapped: y = beta * x_hat + gamma"),
)
BN2D_MISTAKES = _with_pairs(FORWARD_2D, (frozenset({"axes0", "axes23", "axes01", "flat_reshape"}),),
                            lambda bug: f"bn2d_y.{bug}")


@LAB.case(points=7, inputs=bn2d_inputs((3, 4, 2, 5)),
          hidden_inputs=(bn2d_inputs((2, 3, 4, 4), eps=1e-3), bn2d_inputs((5, 2, 3, 1))), checks=[
    Close("y", "BatchNorm2d.forward (training): output y", mistakes=BN2D_MISTAKES),
    Close("x_after", "BatchNorm2d.forward: the input x after the call", exact=True, explain=UNCHANGED),
    Close("y_single", "BatchNorm2d.forward (training) on ONE image (N = 1): output y",
          explain="With N = 1 each channel still has H * W values to normalise over: BatchNorm2d must work on a "
                  "single image (only BatchNorm1d, with one value per feature, needs N >= 2)."),
])
def bn2d_train_forward(lab, x, gamma, beta, eps, momentum, dout, x_single, **_):
    """BatchNorm2d training forward on (N=3, C=4, H=2, W=5), and on one image: statistics per channel over N, H, W."""
    x_in = x.copy()
    y = make_bn(lab, gamma, beta, eps, momentum, "BatchNorm2d")(x_in)
    try:
        y_single = make_bn(lab, gamma, beta, eps, momentum, "BatchNorm2d")(x_single)
    except Exception as exc:
        raise ConventionError(f"BatchNorm2d.forward (training) on ONE image (N = 1) raised {type(exc).__name__}: "
                              f"{exc}. With N = 1 each channel still has H * W values to normalise over: "
                              "BatchNorm2d must work on a single image (only BatchNorm1d needs N >= 2)") from exc
    return {"y": y, "x_after": x_in, "y_single": y_single}


def _batches2d(i: Arrays) -> list[np.ndarray]:
    return [i["x"]] + [i[f"x{k}"] for k in range(sum(1 for key in i if key[1:].isdigit()))]


AXES0_RUNNING = (f"statistics over axis 0 only (per channel AND pixel), averaged over the pixels: the running "
                 f"variance then misses how the pixels' means differ; {AXES_2D}")
BN2D_STEPS = (bn2d_inputs((2, 3, 3, 2), steps=2),
              (bn2d_inputs((3, 2, 2, 4), momentum=0.25, steps=1), bn2d_inputs((2, 4, 1, 3), steps=3)))


@LAB.case(points=3, inputs=BN2D_STEPS[0], hidden_inputs=BN2D_STEPS[1], checks=[
    Close("running_var", "BatchNorm2d.running_var after training steps", mistakes=(
        Mistake("the unbiased correction with the batch size only, N / (N - 1); each channel has M = N * H * W "
                "values, so it is M / (M - 1)", instructor("bn2d_running.var.batch_count")),
        Mistake(KERAS, instructor("bn2d_running.var.keras")),
        Mistake(BIASED_RUNNING, instructor("bn2d_running.var.biased")),
        Mistake(NOT_UPDATED, lambda i, e: np.ones(len(i["gamma"]))),
        Mistake(TWICE_2D, instructor("bn2d_running.var.twice")),
        Mistake(FLAT_RESHAPE, instructor("bn2d_running.var.flat_reshape")),
        Mistake(AXES0_RUNNING, instructor("bn2d_running.var.axes0")),
    ), explain=PYTORCH_MOMENTUM),
    Close("running_mean", "BatchNorm2d.running_mean after training steps", mistakes=(
        Mistake(KERAS, instructor("bn2d_running.mean.keras")),
        Mistake(NOT_UPDATED, lambda i, e: np.zeros(len(i["gamma"]))),
        Mistake(FLAT_RESHAPE, instructor("bn2d_running.mean.flat_reshape")),
    )),
])
def bn2d_running_stats(lab, **inputs):
    """BatchNorm2d's running statistics over N*H*W values per channel, after training steps."""
    layer = make_bn(lab, inputs["gamma"], inputs["beta"], inputs["eps"], inputs["momentum"], "BatchNorm2d")
    _train_steps(layer, _batches2d(inputs))
    mean, var = _stats(layer)
    return {"running_mean": mean, "running_var": var}


def _eval2d_flat(i: Arrays, e: Arrays, o: dict[str, Any]) -> np.ndarray | None:
    """Eval through x.reshape(-1, C) (no transpose), with the student's own running statistics."""
    x, c = i["x"], i["x"].shape[1]
    mean, var = (np.asarray(o.get(k, ()), dtype=np.float64) for k in RUNNING_USED)
    if mean.shape != (c,) or var.shape != (c,):
        return None
    rows = (x.reshape(-1, c) - mean) / np.sqrt(var + float(i["eps"])) * i["gamma"] + i["beta"]
    return rows.reshape(x.shape)


@LAB.case(points=2, inputs=BN2D_STEPS[0], hidden_inputs=BN2D_STEPS[1],
          given=Given(RUNNING_EARLIER, RUNNING_USED, "given.bn2d_eval"), checks=[
    Close("y_eval", "BatchNorm2d.forward in eval mode after the training steps", mistakes=(
        Mistake("eval still normalising with the BATCH statistics; after eval() it must use the running ones",
                instructor("bn2d_eval.batch_stats")),
        Mistake(f"eval with {FLAT_RESHAPE}", _eval2d_flat),
    ), explain="In eval mode, per channel c: y = weight[c] * (x - running_mean[c]) / sqrt(running_var[c] + eps) "
               "+ bias[c]."),
])
def bn2d_eval_forward(lab, **inputs):
    """BatchNorm2d's eval forward after training steps, judged given your own running statistics."""
    layer = make_bn(lab, inputs["gamma"], inputs["beta"], inputs["eps"], inputs["momentum"], "BatchNorm2d")
    _train_steps(layer, _batches2d(inputs))
    used = _running_used(layer)
    layer.eval()
    return {"y_eval": layer(inputs["x"]), **used}


@LAB.case(points=8, inputs=bn2d_inputs((2, 3, 2, 3)),
          hidden_inputs=(bn2d_inputs((3, 2, 3, 2), eps=1e-3), bn2d_inputs((1, 4, 3, 2))), checks=[
    GradCheck("dx", "dx_numeric", "BatchNorm2d.backward: dL/dx (its return value)"),
    Close("dx", "BatchNorm2d.backward: dL/dx (its return value)", rtol=1e-6, atol=1e-9, mistakes=(
        Mistake(FLAT_RESHAPE, instructor("bn2d_dx.flat_reshape")),
        Mistake(f"the gradient of a forward with {AXES0_FORWARD}", instructor("bn2d_dx.axes0")),
        *DX_MISTAKES[:-1]), terms=BN2D_DX_TERMS),
    Close("dgamma", "BatchNorm2d.backward: weight.grad (dL/dgamma, summed over N, H, W)", mistakes=(
        Mistake("dL/dgamma = sum dy * x; it is sum dy * x_hat (the normalised x)",
                lambda i, e: (i["dout"] * i["x"]).sum(axis=(0, 2, 3))),
        Mistake(FLAT_RESHAPE, instructor("bn2d_dgamma.flat_reshape")),
        Mistake(f"x_hat from a forward with {AXES0_FORWARD}", instructor("bn2d_dgamma.axes0")),
    )),
    Close("dbeta", "BatchNorm2d.backward: bias.grad (dL/dbeta, summed over N, H, W)", mistakes=(
        Mistake(FLAT_RESHAPE, lambda i, e: i["dout"].reshape(-1, len(i["gamma"])).sum(axis=0)),
        Mistake("averaging (mean) instead of summing", lambda i, e: i["dout"].mean(axis=(0, 2, 3))),
    )),
])
def bn2d_backward(lab, x, gamma, beta, eps, momentum, dout, **_):
    """BatchNorm2d.backward: dL/dx and dL/dgamma, dL/dbeta per channel, random upstream gradient."""
    layer = make_bn(lab, gamma, beta, eps, momentum, "BatchNorm2d")
    layer(x)
    dx = layer.backward(dout)
    numeric = numerical_gradient(directional_loss(
        lambda v: make_bn(lab, gamma, beta, eps, momentum, "BatchNorm2d")(v), dout, "BatchNorm2d.forward"), x)
    return {"dx": dx, "dx_numeric": numeric, "dgamma": layer.weight.grad.copy(), "dbeta": layer.bias.grad.copy()}


# ----------------------------------------------------------------------------- Dropout (graded by properties)

DROPOUT_SHAPE = (400, 250)  # 100,000 entries: the drop fraction is within 5 sigma (< 0.008) of p


def _snap(fraction: float, p: float, size: int) -> float:
    """The measured drop fraction, reported as exactly p (or 1 - p) when within 5 standard deviations of it.

    A valid mask drops a fraction that is random around p; snapping makes the graded value the same
    for every valid implementation (and for the reference), and shows the real fraction otherwise.
    """
    for target in (p, 1.0 - p):
        if abs(fraction - target) <= 5.0 * np.sqrt(target * (1.0 - target) / size) + 1e-12:
            return target
    return fraction


def _kept_ratio(out: np.ndarray, inp: np.ndarray) -> np.ndarray:
    """[min, max] of out / inp over the kept (nonzero) entries: both 1 / (1 - p) for inverted dropout."""
    kept = out != 0
    if not kept.any():
        return np.array([0.0, 0.0])
    ratio = out[kept] / inp[kept]
    return np.array([ratio.min(), ratio.max()])


def dropout_inputs(p: float, p_high: float = 0.9):
    def make(rng: np.random.Generator) -> Arrays:
        x = rng.uniform(0.5, 2.0, size=DROPOUT_SHAPE) * rng.choice([-1.0, 1.0], size=DROPOUT_SHAPE)
        return {"x": x, "dout": rng.standard_normal(DROPOUT_SHAPE), "p": np.array(p), "p_high": np.array(p_high),
                "seed": np.array(rng.integers(2**31))}
    return described(f"p={p:g}, p close to 1: {p_high:g}", make)


def _dropout(lab: ModuleType, p: Any, seed: Any) -> Any:
    layer = lab.Dropout(float(p), rng=np.random.default_rng(int(seed)))
    layer.train()
    return layer


def _scale_mistakes(p_key: str = "p") -> tuple[Mistake, ...]:
    def at(v: Callable[[float], float]) -> Callable[[Arrays, Arrays], np.ndarray]:
        return lambda i, e: np.full(2, v(float(i[p_key])))
    return (Mistake("no inverted-dropout scaling: kept entries must be divided by (1 - p)", at(lambda p: 1.0)),
            Mistake("kept entries multiplied by (1 - p) instead of divided by it", at(lambda p: 1.0 - p)),
            Mistake("kept entries divided by p instead of (1 - p) (p is the DROP probability)", at(lambda p: 1.0 / p)))


KEEP_NOT_DROP = Mistake("p used as the probability to KEEP; in this lab (and PyTorch) p is the probability to DROP",
                        lambda i, e: np.array(1.0 - float(i["p"])))


# ----- is the mask random? Judged here, in the grading process, from the masks themselves.
# Every bound is exact for a valid mask (entries dropped independently with probability p) up to a
# tail of RANDOM_TAIL per bound: a correct Dropout fails one with probability below 1e-9 per run.
RANDOM_TAIL = 1e-13  # per side and per row or column: 800 rows and 500 columns stay below 1e-9 together
SPREAD_Z = 7.0  # standard deviations (Wilson-Hilferty) for the spread of the counts: each tail about 1e-12


@functools.lru_cache(maxsize=64)
def binomial_bounds(n: int, p: float, tail: float = RANDOM_TAIL) -> tuple[int, int]:
    """(lo, hi): a Binomial(n, p) count is below lo, or above hi, each with probability <= ``tail``
    (exact, from the log-pmf; n = 100,000 took 0.2 s under load, hence the cache)."""
    if p <= 0.0 or p >= 1.0:
        return (0, 0) if p <= 0.0 else (n, n)
    k = np.arange(n + 1)
    lgamma = np.array([math.lgamma(v + 1.0) for v in range(n + 1)])
    pmf = np.exp(lgamma[n] - lgamma - lgamma[::-1] + k * math.log(p) + (n - k) * math.log1p(-p))
    below, above = np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]  # P(X <= k), P(X >= k)
    return int(np.argmax(below > tail)), int(n - np.argmax(above[::-1] > tail))


def _spread_bounds(k: int, z: float = SPREAD_Z) -> tuple[float, float]:
    """Bounds of a chi-square statistic with k degrees of freedom (Wilson-Hilferty)."""
    c = 2.0 / (9.0 * k)
    return k * max(0.0, 1.0 - c - z * math.sqrt(c)) ** 3, k * (1.0 - c + z * math.sqrt(c)) ** 3


def _masks(i: Arrays, o: dict[str, np.ndarray]) -> np.ndarray:
    """The two calls' masks (2, N, D) as booleans (True = dropped); any other shape raises (before
    any work that grows with the reply: the bounds' cost grows with the mask's size)."""
    masks = np.asarray(o["dropped"])
    if masks.shape != (2, *np.shape(i["x"])) or np.ndim(i["x"]) != 2:
        raise ValueError(f"expected the masks of two calls, shape (2, {', '.join(map(str, np.shape(i['x'])))}); "
                         f"got {masks.shape}")
    return masks != 0


def _counts(mask: np.ndarray, axis: int) -> np.ndarray:
    """Dropped entries per row (axis 1) or per column (axis 0) of one (N, D) mask."""
    return mask.sum(axis=axis)


def _rows_within(i: Arrays, o: dict[str, np.ndarray], axis: int) -> float:
    """The share of rows (axis 1) or columns (axis 0), over both calls, whose dropped count is
    within the binomial bounds of a valid mask."""
    masks = _masks(i, o)
    lo, hi = binomial_bounds(masks.shape[1 + axis], float(i["p"]))
    counts = np.concatenate([_counts(m, axis) for m in masks])
    return float(np.mean((counts >= lo) & (counts <= hi)))


def _spread_ok(i: Arrays, o: dict[str, np.ndarray]) -> float:
    """The share of (call, rows or columns) whose counts spread as much as independent draws do:
    sum (c - n p)^2 / (n p (1 - p)) over K rows is about chi-square with K degrees of freedom; a
    pattern that drops exactly p of every row has almost none, a mask per row far too much."""
    masks, p = _masks(i, o), float(i["p"])
    ok = []
    for m in masks:
        for axis in (0, 1):
            counts = _counts(m, axis)
            n = m.shape[axis]
            stat = float(np.sum((counts - n * p) ** 2) / (n * p * (1.0 - p)))
            lo, hi = _spread_bounds(len(counts))
            ok.append(lo <= stat <= hi)
    return float(np.mean(ok))


def _spread_words(i: Arrays, o: dict[str, np.ndarray]) -> str:
    """Which counts spread too little (an even pattern) or too much (whole rows or columns at once)."""
    masks, p = _masks(i, o), float(i["p"])
    words = []
    for axis, name in ((1, "rows"), (0, "columns")):
        counts = _counts(masks[0], axis)
        n = masks[0].shape[axis]
        stat = float(np.sum((counts - n * p) ** 2) / (n * p * (1.0 - p)))
        lo, hi = _spread_bounds(len(counts))
        if not lo <= stat <= hi:
            how = "too evenly (a pattern)" if stat < lo else "too unevenly (whole rows or columns at once)"
            words.append(f"the {name}' counts vary {how}: chi-square {stat:.0f}, independent draws give "
                         f"{lo:.0f} to {hi:.0f}")
    return "; ".join(words) or "the second call's counts do not spread as independent draws do"


def _calls_independent(i: Arrays, o: dict[str, np.ndarray]) -> float:
    """1 when the number of entries dropped by both calls is within the binomial bounds for p^2."""
    masks, p = _masks(i, o), float(i["p"])
    lo, hi = binomial_bounds(masks[0].size, p * p)
    both = int(np.sum(masks[0] & masks[1]))
    return float(lo <= both <= hi)


def _runs(flat: np.ndarray) -> int:
    """How many runs of dropped entries a flat mask has (circularly)."""
    return int(np.sum(flat & ~np.roll(flat, 1))) if not flat.all() else 1


def _mask_diagnosis(i: Arrays, o: dict[str, np.ndarray]) -> str:
    """What the masks look like, in the words of the usual bug; one line."""
    masks, p = _masks(i, o), float(i["p"])
    m = masks[0]
    rows, cols = m.mean(axis=1), m.mean(axis=0)
    if np.array_equal(masks[0], masks[1]):
        return "both calls dropped the same entries: draw a new mask in every training forward"
    if np.all((rows == 0) | (rows == 1)):
        return ("whole rows (samples) are dropped or kept: one random number per row instead of one per "
                "entry; draw the mask with x's full shape, self.rng.random(x.shape)")
    if np.all((cols == 0) | (cols == 1)):
        return ("every sample (row) has the same mask: one random number per column (feature) broadcast over "
                "the batch; draw the mask with x's full shape, self.rng.random(x.shape)")
    if _runs(m.reshape(-1)) <= 2:
        return ("the dropped entries form one contiguous block: that is a fixed pattern, not random draws; "
                "drop each entry independently with probability p (self.rng.random(x.shape) >= p keeps it)")
    lo, hi = binomial_bounds(m.shape[1], p)
    return (f"a random mask drops between {lo} and {hi} of the {m.shape[1]} entries of every row (and the "
            "counts vary from row to row as independent draws do); here the rows drop "
            f"{int(m.sum(axis=1).min())} to {int(m.sum(axis=1).max())}, the columns "
            f"{int(m.sum(axis=0).min())} to {int(m.sum(axis=0).max())} of {m.shape[0]}: drop each entry "
            "independently with probability p, e.g. keep it where self.rng.random(x.shape) >= p")


def _detail(what: Callable[[Arrays, dict[str, np.ndarray]], str]) -> Callable[[Arrays, dict[str, np.ndarray]], str]:
    return lambda i, o: f"{what(i, o)}\n  {_mask_diagnosis(i, o)}"


def _rows_detail(axis: int) -> Callable[[Arrays, dict[str, np.ndarray]], str]:
    def what(i: Arrays, o: dict[str, np.ndarray]) -> str:
        masks = _masks(i, o)
        n = masks.shape[1 + axis]
        lo, hi = binomial_bounds(n, float(i["p"]))
        counts = np.concatenate([_counts(m, axis) for m in masks])
        name = "rows" if axis == 1 else "columns"
        return (f"{int(np.sum((counts < lo) | (counts > hi)))} of {len(counts)} {name} drop fewer than {lo} or more "
                f"than {hi} of their {n} entries (a random mask does so with probability below 1e-9)")
    return _detail(what)


RANDOM_WHAT = ("A Dropout mask drops each entry independently with probability p; these checks fail a valid "
               "mask with probability below 1e-9.")


@LAB.case(points=5, inputs=dropout_inputs(0.3), hidden_inputs=(dropout_inputs(0.2), dropout_inputs(0.65)), checks=[
    Close("drop_fraction", "Dropout.forward (training): fraction of entries set to 0 over 100,000 entries",
          mistakes=(KEEP_NOT_DROP,),
          explain="Reported as exactly p when within 5 standard deviations of p (any valid random mask is); "
                  "otherwise the measured fraction."),
    Close("kept_scale", "Dropout.forward (training): [min, max] of y / x over the kept entries (both 1/(1-p))",
          mistakes=_scale_mistakes()),
    Close("x_after", "Dropout.forward: the input x after the call", exact=True, explain=UNCHANGED),
    Close("fresh_masks", "Dropout.forward: two calls draw different masks (1 = yes)",
          explain="Draw a new mask in every training forward; a mask drawn once (e.g. in __init__) drops the "
                  "same units forever."),
    Close("reproducible", "Dropout: two layers built with equally seeded rng give the same mask (1 = yes)",
          explain="Draw the mask from self.rng (the generator passed to Dropout), not from np.random's "
                  "global state: seeded runs must be reproducible."),
    Metric("dropped", lambda i, o: _rows_within(i, o, 1), 1.0,
           "Dropout.forward (training) is random per row: share of the rows (samples) of two calls' masks whose "
           "number of dropped entries is within binomial bounds", describe=_rows_detail(1), reference=RANDOM_WHAT),
    Metric("dropped", lambda i, o: _rows_within(i, o, 0), 1.0,
           "Dropout.forward (training) is random per column: share of the columns of two calls' masks whose "
           "number of dropped entries is within binomial bounds", describe=_rows_detail(0)),
    Metric("dropped", _spread_ok, 1.0,
           "Dropout.forward (training): the counts of dropped entries vary across rows and columns as independent "
           "draws do (share of the two calls' rows and columns that do)",
           describe=_detail(_spread_words)),
    Metric("dropped", _calls_independent, 1.0,
           "Dropout.forward (training): two calls draw independent masks (entries dropped by both: about p^2)",
           describe=_detail(lambda i, o: f"{int(np.sum(_masks(i, o)[0] & _masks(i, o)[1]))} of {_masks(i, o)[0].size} "
                            f"entries were dropped by both calls; independent masks drop about "
                            f"{float(i['p']) ** 2 * _masks(i, o)[0].size:.0f}")),
])
def dropout_train_forward(lab, x, dout, p, p_high, seed):
    """Dropout in training: drops a fraction p, scales the rest by 1/(1-p), new mask per call, from self.rng."""
    x_in = x.copy()
    layer = _dropout(lab, p, seed)
    y = layer(x_in)
    y2 = layer(x)
    twin = _dropout(lab, p, seed)(x)
    return {"drop_fraction": np.array(_snap(float(np.mean(y == 0)), float(p), y.size)),
            "kept_scale": _kept_ratio(y, x), "x_after": x_in,
            "fresh_masks": np.array(float(not np.array_equal(y == 0, y2 == 0))),
            "reproducible": np.array(float(np.array_equal(y, twin))),
            "dropped": np.stack([np.asarray(y) == 0, np.asarray(y2) == 0]).astype(np.uint8)}


@LAB.case(points=4, inputs=dropout_inputs(0.4), hidden_inputs=(dropout_inputs(0.25), dropout_inputs(0.7)), checks=[
    Close("mask_disagreement", "Dropout.backward: fraction of entries where dx is zero but y is not, or the reverse",
          explain="backward must reuse the mask of the last forward (keep it on self); drawing a new one drops "
                  "different entries than the forward did."),
    Close("grad_scale", "Dropout.backward: [min, max] of dx / grad_output over the kept entries (both 1/(1-p))",
          mistakes=_scale_mistakes()),
])
def dropout_backward(lab, x, dout, p, p_high, seed):
    """Dropout.backward uses the forward's mask and scale: dx = grad_output * mask / (1 - p)."""
    layer = _dropout(lab, p, seed)
    y = layer(x)
    dx = np.asarray(layer.backward(dout))
    return {"mask_disagreement": np.array(float(np.mean((dx == 0) != (y == 0)))) if dx.shape == y.shape else dx,
            "grad_scale": _kept_ratio(dx, dout) if dx.shape == dout.shape else dx}


@LAB.case(points=4, inputs=dropout_inputs(0.5, 0.9),
          hidden_inputs=(dropout_inputs(0.3, 0.95), dropout_inputs(0.8, 0.97)), checks=[
    Close("y_eval", "Dropout.forward in eval mode: y must equal x", exact=True, mistakes=(
        Mistake("eval multiplying by (1 - p): that is non-inverted dropout; with inverted dropout eval is the "
                "identity", lambda i, e: i["x"] * (1 - float(i["p"]))),),
          explain="After eval() (self.training False), Dropout drops nothing and scales nothing."),
    Close("dx_eval", "Dropout.backward in eval mode: dx must equal grad_output", exact=True),
    Close("y_p0", "Dropout(p=0).forward in training: y must equal x", exact=True),
    Close("drop_fraction_high", "Dropout(p close to 1).forward: fraction of entries set to 0",
          mistakes=(Mistake("p used as the probability to KEEP; p is the probability to DROP",
                            lambda i, e: np.array(1.0 - float(i["p_high"]))),)),
    Close("kept_scale_high", "Dropout(p close to 1).forward: [min, max] of y / x over the kept entries",
          mistakes=_scale_mistakes("p_high")),
    Close("y_p1", "Dropout(p=1).forward in training: y must be all zeros", exact=True,
          explain="p = 1 drops every entry: y = 0 and dx = 0. Scaling by 1 / (1 - p) divides by zero there "
                  "(0 / 0 is NaN): handle p = 1 apart."),
    Close("dx_p1", "Dropout(p=1).backward: dx must be all zeros", exact=True),
])
def dropout_eval_and_edges(lab, x, dout, p, p_high, seed):
    """Dropout is the identity in eval mode and for p = 0; p close to 1 keeps few entries, scaled by 1/(1-p);
    p = 1 drops everything (zeros, not NaN)."""
    layer = _dropout(lab, p, seed)
    layer(x)
    layer.eval()
    y_eval = layer(x)
    dx_eval = layer.backward(dout)
    y_p0 = _dropout(lab, 0.0, seed)(x)
    high = _dropout(lab, p_high, seed)(x)
    everything = _dropout(lab, 1.0, seed)
    y_p1 = everything(x)
    return {"y_eval": y_eval, "dx_eval": dx_eval, "y_p0": y_p0,
            "drop_fraction_high": np.array(_snap(float(np.mean(high == 0)), float(p_high), high.size)),
            "kept_scale_high": _kept_ratio(high, x), "y_p1": y_p1, "dx_p1": everything.backward(dout)}


# ----------------------------------------------------------------------------- train() / eval() on a model


def nested_inputs(n: int, d: int, m: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"x": _features(rng, (n, d)), "x_eval": _features(rng, (3, d)),
                "w": rng.standard_normal((m, d)) / np.sqrt(d), "b": rng.standard_normal(m), "seed": np.array(7)}
    return described(f"N={n}, D={d}, {m} features after the Linear", make)


def _modules(module: Any) -> Iterator[Any]:
    yield module
    for child in module.children():
        yield from _modules(child)


@LAB.case(points=3, inputs=nested_inputs(8, 5, 4), hidden_inputs=(nested_inputs(4, 3, 6), nested_inputs(12, 6, 2)),
          checks=[
    Close("modes", "after model.eval() / model.train() on Sequential(Linear, Sequential(BatchNorm1d, Dropout, "
                   "ReLU)): [eval output independent of the rest of the batch, running statistics unchanged by "
                   "eval forwards, two training forwards differ] (1 = yes)", exact=True,
          explain="model.eval() sets training = False in every sub-module (the provided Module.train does it); "
                  "your layers must read self.training in forward: eval uses the running statistics (so each "
                  "sample's output does not depend on the others), updates nothing, and drops nothing."),
])
def train_eval_nested(lab, x, x_eval, w, b, seed):
    """model.train()/eval() reach BatchNorm and Dropout nested inside Sequentials."""
    linear = lab.Linear(w.shape[1], w.shape[0], rng=np.random.default_rng(0))
    linear.weight.data[...], linear.bias.data[...] = w, b
    bn = lab.BatchNorm1d(w.shape[0])
    model = lab.Sequential(linear, lab.Sequential(bn, lab.Dropout(0.5, rng=np.random.default_rng(int(seed))),
                                                  lab.ReLU()))
    model.train()
    model(x)
    model(x[::-1].copy())
    model.eval()
    stats = np.concatenate(_stats(bn))
    alone = model(x_eval)
    together = model(np.concatenate([x_eval, x]))[:len(x_eval)]
    unchanged = np.array_equal(stats, np.concatenate(_stats(bn)))
    model.train()
    differs = not np.array_equal(model(x), model(x))
    return {"modes": np.array([float(np.allclose(alone, together, rtol=1e-12, atol=1e-12)), float(unchanged),
                               float(differs)])}


# ----------------------------------------------------------------------------- MNIST


def structure_inputs(n: int):
    """A tiny stand-in for MNIST (random digits-shaped images): enough for a few SGD steps of fit_mnist."""
    def make(rng: np.random.Generator) -> Arrays:
        return {"images": rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8),
                "labels": rng.integers(0, 10, size=n), "seed": np.array(rng.integers(1000))}
    return described(f"{n} random images", make)


def _calls(layer: Any) -> list[int]:
    """Counts the calls of ``layer``'s forward from now on (an instance attribute: Module.__call__ and
    Sequential reach it; the layer's own code is untouched)."""
    count = [0]
    forward = layer.forward

    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return forward(*args, **kwargs)
    layer.forward = counted
    return count


def _in_training_forward(lab: ModuleType, model: Any, cls: str, x: np.ndarray) -> float:
    """1 when the model holds a ``cls`` whose forward a training forward of the model calls (and, for
    Dropout, whose p is above 0), else 0."""
    layers = [m for m in _modules(model) if isinstance(m, getattr(lab, cls))]
    if cls == "Dropout":
        layers = [m for m in layers if float(getattr(m, "p", 0.0)) > 0.0]
    counts = [_calls(m) for m in layers]
    model.train()
    model(x)
    return float(any(c[0] > 0 for c in counts))


def _fitted_logits(lab: ModuleType, images: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Eval logits, on the training images, of fit_mnist(seed); the global np.random is seeded alike before
    each run, so a layer that draws from it (charged in its own case) does not make runs differ here."""
    np.random.seed(12345)
    model = lab.fit_mnist(images, labels, seed=seed)
    model.eval()
    return np.asarray(model(lab.preprocess(images)), dtype=np.float64)


MODEL_ASKS = ("build_model must return the lab's MLP with BatchNorm and Dropout (suggested: Linear(784, 128) -> "
              "BatchNorm1d(128) -> ReLU -> Dropout(0.2) -> Linear(128, 10)): ")
SEEDED = ("every random draw must come from the generator fit_mnist makes from its seed: build_model gets it as rng; "
          "pass it to every Linear (Linear(784, 128, rng)) and to every Dropout (Dropout(0.2, rng=rng)), and shuffle "
          "with it (the provided fit_mnist does).")


@LAB.case(points=3, inputs=structure_inputs(64), hidden_inputs=(structure_inputs(80),), checks=[
    Close("has_batchnorm", "build_model: the model holds a BatchNorm1d that its training forward goes through "
                           "(1 = yes)", exact=True,
          explain=MODEL_ASKS + "no BatchNorm1d of this lab (lab2.BatchNorm1d) is called by the model's forward."),
    Close("has_dropout", "build_model: the model holds a Dropout with p > 0 that its training forward goes through "
                         "(1 = yes)", exact=True,
          explain=MODEL_ASKS + "no Dropout of this lab (lab2.Dropout) with p > 0 is called by the model's forward."),
    Close("same_seed_same_model", "fit_mnist: two runs with the same seed give the same model (1 = yes)", exact=True,
          explain="Two fit_mnist runs with one seed gave models with different outputs: something draws random "
                  "numbers that the seed does not fix (np.random.default_rng() without a seed, or a Dropout "
                  "left with its own unseeded generator). " + SEEDED),
    Close("other_seed_other_model", "fit_mnist: runs with different seeds give different models (1 = yes)",
          exact=True,
          explain="fit_mnist with two different seeds gave the same model: the seed is ignored (a fixed "
                  "np.random.default_rng(0), say). " + SEEDED),
])
def mnist_model_structure(lab, images, labels, seed):
    """build_model has BatchNorm1d and Dropout in its forward path; fit_mnist is reproducible from its seed
    (tiny runs on random images: the structure, not the accuracy, is judged here)."""
    x = lab.preprocess(images[:16])
    flags = {"has_batchnorm": _in_training_forward(lab, lab.build_model(np.random.default_rng(0)), "BatchNorm1d", x),
             "has_dropout": _in_training_forward(lab, lab.build_model(np.random.default_rng(0)), "Dropout", x)}
    first, again = (_fitted_logits(lab, images, labels, int(seed)) for _ in range(2))
    other = _fitted_logits(lab, images, labels, int(seed) + 1)
    return {**{k: np.array(v) for k, v in flags.items()},
            "same_seed_same_model": np.array(float(np.array_equal(first, again))),
            "other_seed_other_model": np.array(float(not np.array_equal(first, other)))}


@LAB.case(points=5, inputs=mnist_inputs, private=["test_labels"], hidden=False, timeout=300, slow=True,
          checks=[Accuracy("predictions", "test_labels", ACCURACY_THRESHOLD,
                           "fit_mnist + predict (model with BatchNorm1d and Dropout) on the held-out split",
                           reference=REFERENCE_ACCURACY)])
def mnist_accuracy(lab, train_images, train_labels, test_images):
    """Train build_model (with BatchNorm1d and Dropout: mnist_model_structure checks them) with fit_mnist;
    predict the held-out digits."""
    model = lab.fit_mnist(train_images, train_labels, seed=0)
    return {"predictions": lab.predict(model, test_images)}
