"""Lab 1 cases: what is graded, on which inputs, and how.

Each case's run function is the only code that touches the implementation (``lab`` is the
imported lab package); everything it returns is judged by the grader against the reference
(``Close``), against a numerical gradient of the same implementation (``GradCheck``), or
against held-out labels (``Accuracy``). See grader/judging/case.py for the model, and
labs/lab1/README.md for the table of cases and points.

Conventions that the inputs follow:
  * float64 everywhere; random upstream gradients (never all ones);
  * ReLU inputs at least 0.1 away from the kink at 0;
  * non-square shapes so that a missing transpose is a shape error, except where a square
    shape is the point (N = C for the softmax axis, N = M so that returning dW for dx is
    detectable).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from grader.judging.case import Accuracy, Arrays, Close, GradCheck, Lab, Mistake, Term, Terms
from grader.judging.casekit import ConventionError, batch_factor, mnist_inputs, numerically_stable, param_loss
from grader.judging.gradcheck import away_from_zero, directional_loss, numerical_gradient

LAB = Lab("lab1", "Lab 1: a neural-network framework in NumPy")

# The MNIST threshold: the reference's worst held-out accuracy over seeds 0-4, measured by
# `python scripts/measure_accuracy.py` (quoted in the handout), minus a 0.0125 margin for other
# reasonable designs and hyperparameters.
ACCURACY_THRESHOLD = 0.93
REFERENCE_ACCURACY = ("the reference MLP (784-128-10, ReLU, 15 epochs of SGD, lr 0.1, batch 32) reaches "
                      "0.9453 on average over seeds 0-4 (worst 0.9425)")


# ----------------------------------------------------------------------------- helpers


def make_linear(lab: ModuleType, weight: np.ndarray, bias: np.ndarray) -> Any:
    """A Linear layer of the implementation with the given parameters."""
    m, d = weight.shape
    layer = lab.Linear(d, m, rng=np.random.default_rng(0))
    for name, value in (("weight", weight), ("bias", bias)):
        param = getattr(layer, name, None)
        if param is None or not hasattr(param, "data"):
            raise ConventionError(f"Linear has no Parameter attribute '{name}' (the provided __init__ "
                                  "creates self.weight and self.bias)")
        if param.data.shape != value.shape:
            raise ConventionError(
                f"Linear({d}, {m}).{name} has shape {param.data.shape}; the convention is "
                f"{'(out_features, in_features) = ' if name == 'weight' else '(out_features,) = '}"
                f"{value.shape}, as in PyTorch")
        param.data[...] = value
    return layer


def linear_inputs(n: int, d: int, m: int, second_pass: bool = False):
    def make(rng: np.random.Generator) -> Arrays:
        out = {"x": rng.standard_normal((n, d)), "weight": rng.standard_normal((m, d)) / np.sqrt(d),
               "bias": rng.standard_normal(m), "dout": rng.standard_normal((n, m))}
        if second_pass:  # another batch for the second pass, so a backward using a stale x is visible
            out |= {"x2": rng.standard_normal((n, d)), "dout2": rng.standard_normal((n, m))}
        return out
    return make


def activation_inputs(shape: tuple[int, ...], extreme: bool = False):
    def make(rng: np.random.Generator) -> Arrays:
        x = away_from_zero(rng, shape, 0.1, 3.0)
        if extreme:  # a few saturating values; finite results are required
            x.reshape(-1)[:4] = [-1000.0, 1000.0, -40.0, 40.0]
        return {"x": x, "dout": rng.standard_normal(shape)}
    return make


def logits_inputs(n: int, c: int, scale: float = 2.0, extreme: bool = False):
    def make(rng: np.random.Generator) -> Arrays:
        logits = rng.standard_normal((n, c)) * scale
        if extreme:  # rows dominated by +-1000 logits: exp() overflows without the max shift
            logits[:, 0] += 1000.0
            logits[0, 1] = 999.0
            logits[1, :] -= 1000.0
        return {"logits": logits, "targets": rng.integers(0, c, size=n),
                "g": np.array(rng.uniform(0.5, 2.0))}
    return make


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _ce_wrong_axis(inp: Arrays, exp: Arrays) -> np.ndarray:
    p = _softmax(inp["logits"], axis=0)
    return np.array(-np.log(p[np.arange(len(p)), inp["targets"]]).mean())


def _ce_grad_wrong_axis(inp: Arrays, exp: Arrays) -> np.ndarray:
    p = _softmax(inp["logits"], axis=0)
    p[np.arange(len(p)), inp["targets"]] -= 1.0
    return p * inp["g"] / len(p)


WRONG_AXIS_LOSS = Mistake("a softmax over axis 0 (the batch) instead of axis 1 (the classes)", _ce_wrong_axis)
WRONG_AXIS_GRAD = Mistake("a softmax over axis 0 (the batch) instead of axis 1 (the classes)",
                          _ce_grad_wrong_axis)
# Hidden variants (grader/judging/case.py: hidden_inputs): variant 0 has the public shapes with other values,
# variant 1 other shapes (and hyperparameters), so code that special-cases the public inputs (or
# returns the committed fixtures) loses the case. Modifying an argument in place is checked for
# every call by the engine (grader/judging/guard.py), so no case needs an "x unchanged" output.


def _leaky(i: Arrays, e: Arrays, got: Any) -> np.ndarray | None:
    """A leaky ReLU forward with the slope the student used (fitted from their output)."""
    x, y = i["x"], np.asarray(got.get("y"))
    if y.shape != x.shape or not np.any(x < 0):
        return None
    slope = float(np.mean(y[x < 0] / x[x < 0]))
    return None if abs(slope) < 1e-12 else np.where(x > 0, x, slope * x)


def _leaky_backward(i: Arrays, e: Arrays, got: Any) -> np.ndarray | None:
    x, g, dx = i["x"], i["dout"], np.asarray(got.get("dx"))
    if dx.shape != x.shape or not np.any(x < 0):
        return None
    slope = float(np.mean(dx[x < 0] / g[x < 0]))
    return None if abs(slope) < 1e-12 else g * np.where(x > 0, 1.0, slope)


LEAKY = Mistake("a leaky ReLU (a small slope for x < 0): this lab's ReLU is max(x, 0), slope 0 for x < 0", _leaky)

# ----------------------------------------------------------------------------- Linear


_NO_BIAS = Mistake("leaving out the bias", lambda i, e: i["x"] @ i["weight"].T)


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3), factors=batch_factor,
          hidden_inputs=(linear_inputs(4, 5, 3), linear_inputs(7, 2, 6)), checks=[
    Close("y", "Linear.forward: output y", mistakes=(_NO_BIAS,)),
])
def linear_forward(lab, x, weight, bias):
    """Linear.forward on a non-square batch (N=4, D=5, M=3): y = x @ W.T + b."""
    return {"y": make_linear(lab, weight, bias)(x)}


@LAB.case(points=2, inputs=linear_inputs(1, 6, 4), hidden_inputs=(linear_inputs(1, 6, 4), linear_inputs(1, 3, 8)),
          checks=[Close("y", "Linear.forward with a batch of one: output y", mistakes=(_NO_BIAS,))])
def linear_forward_batch_of_one(lab, x, weight, bias):
    """Linear.forward with N=1: nothing may squeeze the batch axis away."""
    return {"y": make_linear(lab, weight, bias)(x)}


@LAB.case(points=5, inputs=linear_inputs(3, 5, 3), factors=batch_factor,
          hidden_inputs=(linear_inputs(3, 5, 3), linear_inputs(4, 6, 4)), checks=[
    GradCheck("dx", "dx_numeric", "Linear.backward: dL/dx (its return value)"),
    Close("dx", "Linear.backward: dL/dx (its return value)", mistakes=(
        Mistake("returning the weight gradient grad_output.T @ x instead of dL/dx",
                lambda i, e: i["dout"].T @ i["x"]),
    )),
])
def linear_backward_input(lab, x, weight, bias, dout):
    """Linear.backward returns dL/dx = grad_output @ W (N=M=3 so a swapped return is visible)."""
    layer = make_linear(lab, weight, bias)
    layer(x)
    dx = layer.backward(dout)
    numeric = numerical_gradient(directional_loss(make_linear(lab, weight, bias), dout, "Linear.forward"), x)
    return {"dx": dx, "dx_numeric": numeric}


@LAB.case(points=5, inputs=linear_inputs(4, 5, 3), factors=batch_factor,
          hidden_inputs=(linear_inputs(4, 5, 3), linear_inputs(2, 7, 5)), checks=[
    GradCheck("dweight", "dweight_numeric", "Linear.backward: weight.grad"),
    Close("dweight", "Linear.backward: weight.grad", mistakes=(
        Mistake("averaging over the batch (the 1/N belongs to the loss, not to Linear)",
                lambda i, e: e["dweight"] / len(i["x"])),
    )),
])
def linear_backward_weight(lab, x, weight, bias, dout):
    """Linear.backward adds dL/dW = grad_output.T @ x into weight.grad, shape (M, D)."""
    layer = make_linear(lab, weight, bias)
    layer(x)
    layer.backward(dout)
    numeric = numerical_gradient(param_loss(layer, layer.weight, x, dout), weight)
    return {"dweight": layer.weight.grad.copy(), "dweight_numeric": numeric}


_BIAS_MEAN = "averaging over the batch (mean) instead of summing: the 1/N belongs to the loss"


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3), factors=batch_factor,
          hidden_inputs=(linear_inputs(4, 5, 3), linear_inputs(6, 3, 2)), checks=[
    GradCheck("dbias", "dbias_numeric", "Linear.backward: bias.grad"),
    Close("dbias", "Linear.backward: bias.grad", mistakes=(
        Mistake(_BIAS_MEAN, lambda i, e: i["dout"].mean(axis=0)),
        Mistake("summing over the wrong axis", lambda i, e: i["dout"].sum(axis=1)),
    )),
])
def linear_backward_bias(lab, x, weight, bias, dout):
    """Linear.backward adds dL/db = grad_output summed over the batch into bias.grad."""
    layer = make_linear(lab, weight, bias)
    layer(x)
    layer.backward(dout)
    numeric = numerical_gradient(param_loss(layer, layer.bias, x, dout), bias)
    return {"dbias": layer.bias.grad.copy(), "dbias_numeric": numeric}


_OVERWRITE = "overwriting the gradient (grad = ...) instead of accumulating (grad += ...)"
_STALE_X = ("backward used the x of an EARLIER forward: cache x on every forward call (self._x = x), "
            "not only the first time")


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3, second_pass=True),
          hidden_inputs=(linear_inputs(4, 5, 3, second_pass=True), linear_inputs(3, 2, 4, second_pass=True)),
          checks=[
    Close("dweight_twice", "weight.grad after two forward+backward passes (two different batches)", mistakes=(
        Mistake(_OVERWRITE, lambda i, e: i["dout2"].T @ i["x2"]),
        Mistake(_STALE_X, lambda i, e: i["dout"].T @ i["x"] + i["dout2"].T @ i["x"]),
    )),
    Close("dbias_twice", "bias.grad after two forward+backward passes", mistakes=(
        Mistake(_OVERWRITE, lambda i, e: i["dout2"].sum(axis=0)),
        Mistake(_BIAS_MEAN, lambda i, e: i["dout"].mean(axis=0) + i["dout2"].mean(axis=0)),)),
    Close("grads_after_zero_grad", "weight.grad and bias.grad after zero_grad()", exact=True, mistakes=(
        Mistake("zero_grad() left the gradients unchanged", lambda i, e, g: g.get("grads_before_zero_grad")),)),
])
def linear_gradients_accumulate(lab, x, weight, bias, dout, x2, dout2):
    """Two forward+backward passes on two batches add up in .grad; zero_grad() resets them."""
    layer = make_linear(lab, weight, bias)
    for xb, gb in ((x, dout), (x2, dout2)):
        layer(xb)
        layer.backward(gb)
    out = {"dweight_twice": layer.weight.grad.copy(), "dbias_twice": layer.bias.grad.copy()}
    out["grads_before_zero_grad"] = np.concatenate([layer.weight.grad.ravel(), layer.bias.grad.ravel()])
    layer.zero_grad()
    out["grads_after_zero_grad"] = np.concatenate([layer.weight.grad.ravel(), layer.bias.grad.ravel()])
    return out


# ----------------------------------------------------------------------------- activations


def _run_activation(lab: ModuleType, cls: str, x: np.ndarray, dout: np.ndarray) -> Arrays:
    module = getattr(lab, cls)()
    y = module(x)
    dx = module.backward(dout)
    numeric = numerical_gradient(directional_loss(getattr(lab, cls)(), dout, f"{cls}.forward"), x)
    return {"y": y, "dx": dx, "dx_numeric": numeric}


@LAB.case(points=3, inputs=activation_inputs((4, 6)),
          hidden_inputs=(activation_inputs((4, 6)), activation_inputs((2, 3, 5))), checks=[
    Close("y", "ReLU.forward: output y", mistakes=(
        LEAKY,
        Mistake("np.max(x, 0) is the maximum OVER axis 0; the elementwise maximum is np.maximum(x, 0)",
                lambda i, e: np.max(i["x"], 0)),
        Mistake("the mask without x: 1[x > 0] instead of x * 1[x > 0]",
                lambda i, e: (i["x"] > 0).astype(np.float64)),
    )),
])
def relu_forward(lab, x, dout):
    """ReLU.forward: y = max(x, 0), without modifying x."""
    return {"y": lab.ReLU()(x)}


@LAB.case(points=3, inputs=activation_inputs((4, 6)),
          hidden_inputs=(activation_inputs((4, 6)), activation_inputs((1, 9))), checks=[
    GradCheck("dx", "dx_numeric", "ReLU.backward: dL/dx"),
    Close("dx", "ReLU.backward: dL/dx", mistakes=(
        Mistake("masking with the sign of grad_output instead of the sign of the input x",
                lambda i, e: i["dout"] * (i["dout"] > 0)),
        Mistake("returning the mask 1[x > 0] without multiplying by grad_output",
                lambda i, e: (i["x"] > 0).astype(np.float64)),
        Mistake("a leaky ReLU's gradient (a small slope for x < 0): this lab's ReLU has slope 0 there",
                _leaky_backward),
    )),
])
def relu_backward(lab, x, dout):
    """ReLU.backward: dL/dx = grad_output * 1[x > 0] (inputs kept 0.1 away from the kink)."""
    out = _run_activation(lab, "ReLU", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


@LAB.case(points=2, inputs=activation_inputs((3, 5), extreme=True),
          hidden_inputs=(activation_inputs((3, 5), extreme=True), activation_inputs((2, 8), extreme=True)), checks=[
    Close("y", "Sigmoid.forward: output y (x includes -1000 and +1000)"),
])
def sigmoid_forward(lab, x, dout):
    """Sigmoid.forward, including saturating inputs +-1000 and +-40, without overflow."""
    with numerically_stable("Sigmoid.forward", "Use the form in its docstring: z = exp(-|x|) never overflows."):
        return {"y": lab.Sigmoid()(x)}


@LAB.case(points=3, inputs=activation_inputs((3, 5)),
          hidden_inputs=(activation_inputs((3, 5)), activation_inputs((6, 2))), checks=[
    GradCheck("dx", "dx_numeric", "Sigmoid.backward: dL/dx"),
    Close("dx", "Sigmoid.backward: dL/dx", mistakes=(
        Mistake("using x instead of the output y in y * (1 - y)",
                lambda i, e: i["dout"] * i["x"] * (1 - i["x"])),
        Mistake("leaving out grad_output: y * (1 - y) alone",
                lambda i, e: e["dx"] / i["dout"]),)),
])
def sigmoid_backward(lab, x, dout):
    """Sigmoid.backward: dL/dx = grad_output * y * (1 - y)."""
    out = _run_activation(lab, "Sigmoid", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


@LAB.case(points=2, inputs=activation_inputs((3, 5), extreme=True),
          hidden_inputs=(activation_inputs((3, 5), extreme=True), activation_inputs((2, 8), extreme=True)), checks=[
    Close("y", "Tanh.forward: output y (x includes -1000 and +1000)"),
])
def tanh_forward(lab, x, dout):
    """Tanh.forward, including saturating inputs, without overflow."""
    with numerically_stable("Tanh.forward", "np.tanh is stable; (exp(x) - exp(-x)) / (exp(x) + exp(-x)) is not."):
        return {"y": lab.Tanh()(x)}


# dL/dx of Tanh as its two terms, to say an error no known mistake matches in the formula's words
# (grader/judging/terms.py); the handout gives the formula, and y = tanh(x) is no solution code.
TANH_DX_TERMS = Terms("dx = grad_output * (1 - y**2)", (
    Term("the term grad_output"),
    Term("the term -grad_output * y**2", ("-grad_output * y (y not squared)",)),
), lambda i, e: np.stack([i["dout"], -i["dout"] * np.tanh(i["x"]) ** 2, -i["dout"] * np.tanh(i["x"])]))


@LAB.case(points=3, inputs=activation_inputs((3, 5)),
          hidden_inputs=(activation_inputs((3, 5)), activation_inputs((6, 2))), checks=[
    GradCheck("dx", "dx_numeric", "Tanh.backward: dL/dx"),
    Close("dx", "Tanh.backward: dL/dx", mistakes=(
        Mistake("1 - y instead of 1 - y**2", lambda i, e: i["dout"] * (1 - np.tanh(i["x"]))),
        Mistake("1 - x**2 (the input) instead of 1 - y**2 (the output)",
                lambda i, e: i["dout"] * (1 - i["x"] ** 2)),
    ), terms=TANH_DX_TERMS),
])
def tanh_backward(lab, x, dout):
    """Tanh.backward: dL/dx = grad_output * (1 - y**2)."""
    out = _run_activation(lab, "Tanh", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


# ----------------------------------------------------------------------------- softmax cross-entropy


def _run_ce(lab: ModuleType, logits: np.ndarray, targets: np.ndarray, g: np.ndarray,
            numeric: bool = True) -> Arrays:
    loss_fn = lab.SoftmaxCrossEntropy()
    loss = loss_fn(logits, targets)
    out = {"loss": np.asarray(loss, dtype=np.float64) if np.isscalar(loss) else loss,
           "dlogits": loss_fn.backward(float(g))}
    if numeric:
        out["dlogits_numeric"] = numerical_gradient(
            lambda v: float(g) * float(lab.SoftmaxCrossEntropy()(v, targets)), logits)
    return out


def _log_softmax(z: np.ndarray) -> np.ndarray:
    return z - np.logaddexp.reduce(z, axis=1, keepdims=True)


def _rows(i: Arrays) -> np.ndarray:
    return np.arange(len(i["logits"]))


_SUM_NOT_MEAN = Mistake("summing the per-sample losses instead of averaging them (mean over N)",
                        lambda i, e: e["loss"] * len(i["logits"]))
_MEAN_NC = Mistake("a mean over all N*C entries (e.g. np.mean of onehot * log p) instead of over the N samples: "
                   "the loss comes out divided by C", lambda i, e: e["loss"] / i["logits"].shape[1])
_EPS_LOG = Mistake("log(p + eps): the + eps inside the log changes the loss; take log-probabilities as "
                   "z - max - log(sum(exp(z - max))), which never needs an eps",
                   lambda i, e: np.array(-np.log(_softmax(i["logits"], 1) + 1e-7)[_rows(i), i["targets"]].mean()))
_COLUMNS = Mistake("indexing log_probs[:, targets] (whole columns) instead of log_probs[arange(N), targets] "
                   "(one entry per row)",
                   lambda i, e: np.array(-_log_softmax(i["logits"])[:, i["targets"]].mean()))
_LOSS_MISTAKES = (_SUM_NOT_MEAN, WRONG_AXIS_LOSS, _MEAN_NC, _EPS_LOG, _COLUMNS)


def _grad(i: Arrays, onehot: float = 1.0, scale: float | None = None) -> np.ndarray:
    p = _softmax(i["logits"], 1)
    p[_rows(i), i["targets"]] -= onehot
    return p * float(i["g"]) / (len(p) if scale is None else scale)


_NO_1_OVER_N = Mistake("leaving out the 1/N of the mean", lambda i, e: e["dlogits"] * len(i["logits"]))
_NO_UPSTREAM = Mistake("ignoring the upstream gradient grad_output", lambda i, e: e["dlogits"] / i["g"])
_NO_ONEHOT = Mistake("leaving out the one-hot: the gradient is (p - onehot(y)) / N, not p / N",
                     lambda i, e: _grad(i, onehot=0.0))
_OVER_C = Mistake("dividing by C (the number of classes) instead of N (the batch size)",
                  lambda i, e: _grad(i, scale=i["logits"].shape[1]))
_GRAD_MISTAKES = (_NO_1_OVER_N, _NO_UPSTREAM, _NO_ONEHOT, _OVER_C,
                  Mistake("p - onehot without the upstream gradient and without 1/N",
                          lambda i, e: e["dlogits"] * len(i["logits"]) / i["g"]),
                  WRONG_AXIS_GRAD)


def ce_factors(inputs: Arrays) -> dict[str, float]:
    """N for the 'off by a factor' hint (C is named by its own mistakes: N and C can be equal)."""
    return batch_factor(inputs)


@LAB.case(points=5, inputs=logits_inputs(6, 4), factors=ce_factors,
          hidden_inputs=(logits_inputs(6, 4), logits_inputs(3, 7)), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward: the mean loss", mistakes=_LOSS_MISTAKES),
])
def softmax_ce_forward(lab, logits, targets, g):
    """SoftmaxCrossEntropy.forward: L = -mean_n log softmax(z)[n, y_n] (N=6, C=4)."""
    return {"loss": _run_ce(lab, logits, targets, g, numeric=False)["loss"]}


@LAB.case(points=4, inputs=logits_inputs(5, 5), factors=ce_factors,
          hidden_inputs=(logits_inputs(5, 5), logits_inputs(8, 8)), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with N = C = 5: the mean loss", mistakes=_LOSS_MISTAKES),
    Close("dlogits", "SoftmaxCrossEntropy.backward with N = C = 5: dL/dlogits", mistakes=_GRAD_MISTAKES),
])
def softmax_ce_square(lab, logits, targets, g):
    """Softmax over the right axis: N = C, so only the values can tell."""
    out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


@LAB.case(points=5, inputs=logits_inputs(4, 5, extreme=True),
          hidden_inputs=(logits_inputs(4, 5, extreme=True), logits_inputs(3, 9, extreme=True)), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with logits near +-1000: the loss",
          mistakes=(_SUM_NOT_MEAN, _MEAN_NC, _COLUMNS,
                    Mistake("a softmax over axis 0 (the batch) instead of axis 1 (the classes)",
                            lambda i, e: np.array(-(i["logits"] - np.logaddexp.reduce(i["logits"], axis=0))[
                                np.arange(len(i["logits"])), i["targets"]].mean())))),
    Close("dlogits", "SoftmaxCrossEntropy.backward with logits near +-1000: dL/dlogits", mistakes=_GRAD_MISTAKES),
])
def softmax_ce_extreme_logits(lab, logits, targets, g):
    """No overflow and no NaN for logits of +-1000."""
    with numerically_stable("SoftmaxCrossEntropy", "Subtract each row's max before exp (the softmax does not "
                            "change) and compute log p as z - max - log(sum(exp(z - max)))."):
        out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


@LAB.case(points=7, inputs=logits_inputs(6, 4), factors=ce_factors,
          hidden_inputs=(logits_inputs(6, 4), logits_inputs(5, 3)), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward: the mean loss (backward differentiates it)",
          mistakes=_LOSS_MISTAKES),
    GradCheck("dlogits", "dlogits_numeric", "SoftmaxCrossEntropy.backward: dL/dlogits",
              mistakes=(_NO_1_OVER_N, _NO_UPSTREAM)),
    Close("dlogits", "SoftmaxCrossEntropy.backward: dL/dlogits", mistakes=_GRAD_MISTAKES),
])
def softmax_ce_backward(lab, logits, targets, g):
    """SoftmaxCrossEntropy.backward: dL/dz = g * (softmax(z) - onehot(y)) / N, g random."""
    return _run_ce(lab, logits, targets, g)


@LAB.case(points=3, inputs=logits_inputs(1, 10), hidden_inputs=(logits_inputs(1, 10), logits_inputs(1, 3)), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with a batch of one: the loss",
          mistakes=(WRONG_AXIS_LOSS, _MEAN_NC, _EPS_LOG)),
    Close("dlogits", "SoftmaxCrossEntropy.backward with a batch of one: dL/dlogits",
          mistakes=(WRONG_AXIS_GRAD, _NO_UPSTREAM, _NO_ONEHOT, _OVER_C)),
])
def softmax_ce_batch_of_one(lab, logits, targets, g):
    """N=1: shapes stay (1, C)."""
    out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


# ----------------------------------------------------------------------------- Sequential


def mlp_inputs(n: int = 3, d: int = 5, h: int = 4, c: int = 2):
    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal((n, d)), "w1": rng.standard_normal((h, d)) / 2,
                "b1": rng.standard_normal(h), "w2": rng.standard_normal((c, h)) / 2,
                "b2": rng.standard_normal(c), "dout": rng.standard_normal((n, c))}
    return make


def _mlp(lab: ModuleType, w1, b1, w2, b2):
    # Tanh, not ReLU: smooth, so the numerical gradient is exact everywhere along the chain.
    return lab.Sequential(make_linear(lab, w1, b1), lab.Tanh(), make_linear(lab, w2, b2))


def _chain_dx(i: Arrays, tanh_grad: Any, of_input: bool = False) -> np.ndarray:
    """dL/dx through Linear -> Tanh -> Linear, with Tanh's local derivative ``tanh_grad`` of its output
    y (or, ``of_input``, of its input h: a mistake)."""
    h = i["x"] @ i["w1"].T + i["b1"]
    return ((i["dout"] @ i["w2"]) * tanh_grad(h if of_input else np.tanh(h))) @ i["w1"]


@LAB.case(points=8, inputs=mlp_inputs(), hidden_inputs=(mlp_inputs(), mlp_inputs(1, 3, 6, 4)), checks=[
    Close("y", "Sequential.forward: output of Linear -> Tanh -> Linear", mistakes=(
        Mistake("Linear.forward leaving out the bias",
                lambda i, e: np.tanh(i["x"] @ i["w1"].T) @ i["w2"].T),)),
    GradCheck("dx", "dx_numeric", "Sequential.backward: dL/dx"),
    Close("dx", "Sequential.backward: dL/dx", mistakes=(
        Mistake("Tanh.backward using 1 - y instead of 1 - y**2", lambda i, e: _chain_dx(i, lambda y: 1 - y)),
        Mistake("Tanh.backward using 1 - x**2 (the input) instead of 1 - y**2 (the output)",
                lambda i, e: _chain_dx(i, lambda h: 1 - h**2, of_input=True)),)),
    Close("param_grads", "Sequential.backward: every parameter's .grad, in parameters() order",
          mistakes=(Mistake("Linear.backward averaging the bias gradient over the batch (mean) instead of "
                            "summing it: the 1/N belongs to the loss",
                            lambda i, e: e["param_grads"] / np.concatenate([
                                np.ones(i["w1"].size), np.full(i["b1"].size, len(i["x"])),
                                np.ones(i["w2"].size), np.full(i["b2"].size, len(i["x"]))])),)),
])
def sequential_forward_backward(lab, x, w1, b1, w2, b2, dout):
    """Sequential chains forward first-to-last and backward last-to-first."""
    model = _mlp(lab, w1, b1, w2, b2)
    y = model(x)
    dx = model.backward(dout)
    grads = np.concatenate([p.grad.ravel() for p in model.parameters()])
    numeric = numerical_gradient(directional_loss(_mlp(lab, w1, b1, w2, b2), dout, "Sequential.forward"), x)
    return {"y": y, "dx": dx, "dx_numeric": numeric, "param_grads": grads}


# ----------------------------------------------------------------------------- SGD


def sgd_inputs(shape: tuple[int, int] = (3, 4), lr: tuple[float, float] = (0.05, 0.5)):
    def make(rng: np.random.Generator) -> Arrays:
        return {"w": rng.standard_normal(shape), "b": rng.standard_normal(shape[1]),
                "gw": rng.standard_normal(shape), "gb": rng.standard_normal(shape[1]),
                "lr": np.array(rng.uniform(*lr))}
    return make


def _params(lab: ModuleType, w, b, gw, gb):
    params = [lab.Parameter(w), lab.Parameter(b)]
    params[0].grad[...] = gw
    params[1].grad[...] = gb
    return params


def _flat(*arrays: np.ndarray) -> np.ndarray:
    return np.concatenate([a.ravel() for a in arrays])


_ASCENT = Mistake("adding the gradient (p + lr * grad): that is gradient ASCENT",
                  lambda i, e: _flat(i["w"] + i["lr"] * i["gw"], i["b"] + i["lr"] * i["gb"]))
_STEP_DID_NOTHING = "step() left the parameters unchanged (is the result of p.data - lr * p.grad assigned?)"
_UNCHANGED = Mistake(_STEP_DID_NOTHING, lambda i, e: _flat(i["w"], i["b"]))


@LAB.case(points=5, inputs=sgd_inputs(), hidden_inputs=(sgd_inputs(), sgd_inputs((5, 2), (1e-3, 1e-2))), checks=[
    Close("data_after", "SGD.step: parameter values after one step", mistakes=(
        _ASCENT,
        Mistake("leaving out the learning rate", lambda i, e: _flat(i["w"] - i["gw"], i["b"] - i["gb"])),
        _UNCHANGED,
    )),
    Close("grads_after", "SGD.step: the gradients after the step (step must not change them)", exact=True,
          mistakes=(Mistake("step() zeroed the gradients: leave that to zero_grad()",
                            lambda i, e: np.zeros(i["w"].size + i["b"].size)),)),
])
def sgd_step(lab, w, b, gw, gb, lr):
    """One SGD step: p <- p - lr * grad for every parameter."""
    params = _params(lab, w, b, gw, gb)
    lab.SGD(params, lr=float(lr)).step()
    return {"data_after": np.concatenate([p.data.ravel() for p in params]),
            "grads_after": np.concatenate([p.grad.ravel() for p in params])}


def _rebound(i: Arrays, e: Arrays, got: Any) -> np.ndarray | None:
    """The old array untouched while p.data holds the right new values: a new array was bound."""
    new = np.asarray(got.get("new_data"))
    right = i["w"] - i["lr"] * i["gw"]
    return i["w"] if new.shape == right.shape and np.allclose(new, right, rtol=1e-9, atol=1e-12) else None


@LAB.case(points=3, inputs=sgd_inputs(), hidden_inputs=(sgd_inputs(), sgd_inputs((5, 2), (1e-3, 1e-2))), checks=[
    Close("old_array_after", "SGD.step: the parameter's original array after the step", mistakes=(
        Mistake("binding a new array (p.data = p.data - ...) instead of updating in place (p.data -= ...)",
                _rebound),
        Mistake("adding the gradient (p + lr * grad): that is gradient ASCENT",
                lambda i, e: i["w"] + i["lr"] * i["gw"]),
        Mistake(_STEP_DID_NOTHING, lambda i, e, g: i["w"] if np.array_equal(g.get("new_data"), i["w"]) else None))),
])
def sgd_updates_in_place(lab, w, b, gw, gb, lr):
    """SGD updates the parameter arrays in place."""
    params = _params(lab, w, b, gw, gb)
    original = params[0].data
    lab.SGD(params, lr=float(lr)).step()
    return {"old_array_after": original.copy(), "new_data": np.array(params[0].data, copy=True)}


_ZERO_GRAD_NOTHING = "zero_grad() left the gradients unchanged: it must reset every p.grad to 0"


@LAB.case(points=2, inputs=sgd_inputs(), hidden_inputs=(sgd_inputs(), sgd_inputs((5, 2))), checks=[
    Close("data_after", "SGD.step: parameter values after one step", mistakes=(_ASCENT, _UNCHANGED)),
    Close("grads_after_sgd_zero_grad", "every .grad after SGD.step() and SGD.zero_grad()", exact=True,
          mistakes=(Mistake(_ZERO_GRAD_NOTHING, lambda i, e: _flat(i["gw"], i["gb"])),)),
    Close("grads_after_module_zero_grad", "weight.grad and bias.grad after Linear.zero_grad() (Module.zero_grad)",
          exact=True, mistakes=(Mistake(_ZERO_GRAD_NOTHING, lambda i, e: _flat(i["gw"], i["gw"][:, 0])),)),
])
def sgd_zero_grad(lab, w, b, gw, gb, lr):
    """A training step's end: SGD.step(), then SGD.zero_grad() and Module.zero_grad() reset every gradient to 0."""
    params = _params(lab, w, b, gw, gb)
    optimizer = lab.SGD(params, lr=float(lr))
    optimizer.step()
    data_after = _flat(*(p.data for p in params))
    optimizer.zero_grad()
    layer = make_linear(lab, w, w[:, 0].copy())  # Linear(D, M) with weight w (M, D)
    layer.weight.grad[...] = gw
    layer.bias.grad[...] = gw[:, 0]
    layer.zero_grad()
    return {"data_after": data_after, "grads_after_sgd_zero_grad": _flat(*(p.grad for p in params)),
            "grads_after_module_zero_grad": _flat(layer.weight.grad, layer.bias.grad)}


# ----------------------------------------------------------------------------- MNIST model and data


def images_inputs(n: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"images": rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8)}
    return make


@LAB.case(points=2, inputs=images_inputs(5), hidden_inputs=(images_inputs(5), images_inputs(1)), checks=[
    Close("features", "preprocess: uint8 images (N, 28, 28) -> float64 features (N, 784) in [0, 1]", mistakes=(
        Mistake("no scaling: the features must be in [0, 1] (divide by 255), not 0..255",
                lambda i, e: i["images"].reshape(len(i["images"]), -1).astype(np.float64)),
        Mistake("integer division (// 255): every feature becomes 0 or 1",
                lambda i, e: (i["images"].reshape(len(i["images"]), -1) // 255).astype(np.float64)),
    )),
])
def mnist_preprocess(lab, images):
    """preprocess scales the pixels to [0, 1] and flattens each image."""
    return {"features": lab.preprocess(images)}


def mlp_probe_inputs(n: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"x1": rng.uniform(0.0, 1.0, size=(n, 784)), "x2": rng.uniform(0.0, 1.0, size=(n, 784)),
                "seed": np.array(int(rng.integers(0, 2**31)))}
    return make


@LAB.case(points=3, inputs=mlp_probe_inputs(4), hidden_inputs=(mlp_probe_inputs(4), mlp_probe_inputs(1)), checks=[
    Close("nonlinear", "build_mlp: the model is not affine (1 = it has a nonlinearity)", exact=True, mistakes=(
        Mistake("the model is affine: no activation (e.g. ReLU) between the Linear layers, and a stack of "
                "Linear layers is just one Linear layer", lambda i, e: np.array(0.0)),)),
    Close("outputs_are_probabilities", "build_mlp: the outputs are raw logits (1 = every row is a probability "
          "distribution)", exact=True, mistakes=(
        Mistake("a softmax at the end of the model: SoftmaxCrossEntropy takes raw logits",
                lambda i, e: np.array(1.0)),)),
])
def mnist_build_mlp(lab, x1, x2, seed):
    """build_mlp returns a nonlinear model from (N, 784) to (N, 10) raw logits."""
    model = lab.build_mlp(np.random.default_rng(int(seed)))
    y1, y2, mid = model(x1), model(x2), model((x1 + x2) / 2)
    if np.shape(y1) != (len(x1), 10):
        raise ConventionError(f"the model from build_mlp maps a batch of shape {x1.shape} to shape {np.shape(y1)}; "
                              f"it must give {(len(x1), 10)}: one row of 10 logits per image")
    scale = max(float(np.max(np.abs(y1))), float(np.max(np.abs(y2))), 1e-12)
    affine_defect = float(np.max(np.abs(mid - (y1 + y2) / 2))) / scale
    probs = bool(np.all(y1 >= 0) and np.allclose(y1.sum(axis=1), 1.0))
    return {"nonlinear": np.array(float(affine_defect > 1e-9)),
            "outputs_are_probabilities": np.array(float(probs))}


@LAB.case(points=13, inputs=mnist_inputs, private=["test_labels"], hidden=False, timeout=300, slow=True,
          checks=[Accuracy("predictions", "test_labels", ACCURACY_THRESHOLD,
                           "fit_mnist + predict on the held-out split", reference=REFERENCE_ACCURACY)])
def mnist_accuracy(lab, train_images, train_labels, test_images):
    """Train the MLP with fit_mnist on the training split; predict the held-out digits."""
    model = lab.fit_mnist(train_images, train_labels, seed=0)
    return {"predictions": lab.predict(model, test_images)}
