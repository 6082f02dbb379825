"""Lab 1 cases: what is graded, on which inputs, and how.

Each case's run function is the only code that touches the implementation (``lab`` is the
imported lab package); everything it returns is judged by the grader against the reference
(``Close``), against a numerical gradient of the same implementation (``GradCheck``), or
against held-out labels (``Accuracy``). See grader/case.py for the model, and
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

from grader import mnist
from grader.case import Accuracy, Arrays, Close, GradCheck, Lab, Mistake
from grader.casekit import ConventionError, batch_factor, numerically_stable, param_loss
from grader.gradcheck import away_from_zero, directional_loss, numerical_gradient

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


def linear_inputs(n: int, d: int, m: int):
    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal((n, d)), "weight": rng.standard_normal((m, d)) / np.sqrt(d),
                "bias": rng.standard_normal(m), "dout": rng.standard_normal((n, m))}
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
UNCHANGED = "The function must not modify its input array in place: the caller still uses it."

# ----------------------------------------------------------------------------- Linear


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3), factors=batch_factor, checks=[
    Close("y", "Linear.forward: output y",
          mistakes=(Mistake("leaving out the bias", lambda i, e: i["x"] @ i["weight"].T),)),
    Close("x_after", "Linear.forward: the input x after the call", exact=True, explain=UNCHANGED),
])
def linear_forward(lab, x, weight, bias):
    """Linear.forward on a non-square batch (N=4, D=5, M=3): y = x @ W.T + b."""
    x_in = x.copy()
    y = make_linear(lab, weight, bias)(x_in)
    return {"y": y, "x_after": x_in}


@LAB.case(points=2, inputs=linear_inputs(1, 6, 4), checks=[
    Close("y", "Linear.forward with a batch of one: output y",
          mistakes=(Mistake("leaving out the bias", lambda i, e: i["x"] @ i["weight"].T),)),
])
def linear_forward_batch_of_one(lab, x, weight, bias):
    """Linear.forward with N=1: nothing may squeeze the batch axis away."""
    return {"y": make_linear(lab, weight, bias)(x)}


@LAB.case(points=5, inputs=linear_inputs(3, 5, 3), factors=batch_factor, checks=[
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


@LAB.case(points=5, inputs=linear_inputs(4, 5, 3), factors=batch_factor, checks=[
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


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3), factors=batch_factor, checks=[
    GradCheck("dbias", "dbias_numeric", "Linear.backward: bias.grad"),
    Close("dbias", "Linear.backward: bias.grad", mistakes=(
        Mistake("averaging over the batch (mean) instead of summing: the 1/N belongs to the loss",
                lambda i, e: i["dout"].mean(axis=0)),
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


_OVERWRITE = Mistake("overwriting the gradient (grad = ...) instead of accumulating (grad += ...)",
                     lambda i, e: e["dweight_twice"] / 2)


@LAB.case(points=4, inputs=linear_inputs(4, 5, 3), checks=[
    Close("dweight_twice", "weight.grad after two backward passes", mistakes=(_OVERWRITE,),
          explain="Gradients accumulate until zero_grad(), as in PyTorch: backward adds into .grad."),
    Close("dbias_twice", "bias.grad after two backward passes", mistakes=(
        Mistake("overwriting the gradient (grad = ...) instead of accumulating (grad += ...)",
                lambda i, e: e["dbias_twice"] / 2),
        Mistake("averaging over the batch (mean) instead of summing: the 1/N belongs to the loss",
                lambda i, e: e["dbias_twice"] / len(i["x"])),)),
    Close("grads_after_zero_grad", "weight.grad and bias.grad after zero_grad()", exact=True),
])
def linear_gradients_accumulate(lab, x, weight, bias, dout):
    """Two backward passes add up in .grad; zero_grad() resets them."""
    layer = make_linear(lab, weight, bias)
    for _ in range(2):
        layer(x)
        layer.backward(dout)
    out = {"dweight_twice": layer.weight.grad.copy(), "dbias_twice": layer.bias.grad.copy()}
    layer.zero_grad()
    out["grads_after_zero_grad"] = np.concatenate([layer.weight.grad.ravel(), layer.bias.grad.ravel()])
    return out


# ----------------------------------------------------------------------------- activations


def _run_activation(lab: ModuleType, cls: str, x: np.ndarray, dout: np.ndarray) -> Arrays:
    module = getattr(lab, cls)()
    x_in = x.copy()
    y = module(x_in)
    x_after = x_in.copy()
    dx = module.backward(dout)
    numeric = numerical_gradient(directional_loss(getattr(lab, cls)(), dout, f"{cls}.forward"), x)
    return {"y": y, "x_after": x_after, "dx": dx, "dx_numeric": numeric}


@LAB.case(points=3, inputs=activation_inputs((4, 6)), checks=[
    Close("y", "ReLU.forward: output y"),
    Close("x_after", "ReLU.forward: the input x after the call", exact=True, explain=UNCHANGED,
          mistakes=(Mistake("setting the negative entries of x to 0 in place (x[x < 0] = 0)",
                            lambda i, e: np.maximum(i["x"], 0.0)),)),
])
def relu_forward(lab, x, dout):
    """ReLU.forward: y = max(x, 0), without modifying x."""
    out = _run_activation(lab, "ReLU", x, dout)
    return {"y": out["y"], "x_after": out["x_after"]}


@LAB.case(points=3, inputs=activation_inputs((4, 6)), checks=[
    GradCheck("dx", "dx_numeric", "ReLU.backward: dL/dx"),
    Close("dx", "ReLU.backward: dL/dx", mistakes=(
        Mistake("masking with the sign of grad_output instead of the sign of the input x",
                lambda i, e: i["dout"] * (i["dout"] > 0)),
        Mistake("returning the mask 1[x > 0] without multiplying by grad_output",
                lambda i, e: (i["x"] > 0).astype(np.float64)),
    )),
])
def relu_backward(lab, x, dout):
    """ReLU.backward: dL/dx = grad_output * 1[x > 0] (inputs kept 0.1 away from the kink)."""
    out = _run_activation(lab, "ReLU", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


@LAB.case(points=2, inputs=activation_inputs((3, 5), extreme=True), checks=[
    Close("y", "Sigmoid.forward: output y (x includes -1000 and +1000)",
          explain="Sigmoid must be finite for every finite x; see the hint in its docstring."),
])
def sigmoid_forward(lab, x, dout):
    """Sigmoid.forward, including saturating inputs +-1000 and +-40, without overflow."""
    with numerically_stable("Sigmoid.forward", "Use the form in its docstring: z = exp(-|x|) never overflows."):
        return {"y": lab.Sigmoid()(x)}


@LAB.case(points=3, inputs=activation_inputs((3, 5)), checks=[
    GradCheck("dx", "dx_numeric", "Sigmoid.backward: dL/dx"),
    Close("dx", "Sigmoid.backward: dL/dx", mistakes=(
        Mistake("using x instead of the output y in y * (1 - y)",
                lambda i, e: i["dout"] * i["x"] * (1 - i["x"])),)),
])
def sigmoid_backward(lab, x, dout):
    """Sigmoid.backward: dL/dx = grad_output * y * (1 - y)."""
    out = _run_activation(lab, "Sigmoid", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


@LAB.case(points=2, inputs=activation_inputs((3, 5), extreme=True), checks=[
    Close("y", "Tanh.forward: output y (x includes -1000 and +1000)"),
])
def tanh_forward(lab, x, dout):
    """Tanh.forward, including saturating inputs, without overflow."""
    with numerically_stable("Tanh.forward", "np.tanh is stable; (exp(x) - exp(-x)) / (exp(x) + exp(-x)) is not."):
        return {"y": lab.Tanh()(x)}


@LAB.case(points=3, inputs=activation_inputs((3, 5)), checks=[
    GradCheck("dx", "dx_numeric", "Tanh.backward: dL/dx"),
    Close("dx", "Tanh.backward: dL/dx", mistakes=(
        Mistake("1 - y instead of 1 - y**2", lambda i, e: i["dout"] * (1 - np.tanh(i["x"]))),
        Mistake("1 - x**2 (the input) instead of 1 - y**2 (the output)",
                lambda i, e: i["dout"] * (1 - i["x"] ** 2)),
    )),
])
def tanh_backward(lab, x, dout):
    """Tanh.backward: dL/dx = grad_output * (1 - y**2)."""
    out = _run_activation(lab, "Tanh", x, dout)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


# ----------------------------------------------------------------------------- softmax cross-entropy


def _run_ce(lab: ModuleType, logits: np.ndarray, targets: np.ndarray, g: np.ndarray,
            numeric: bool = True) -> Arrays:
    loss_fn = lab.SoftmaxCrossEntropy()
    z = logits.copy()
    loss = loss_fn(z, targets)
    out = {"loss": np.asarray(loss, dtype=np.float64) if np.isscalar(loss) else loss,
           "logits_after": z.copy(), "dlogits": loss_fn.backward(float(g))}
    if numeric:
        out["dlogits_numeric"] = numerical_gradient(
            lambda v: float(g) * float(lab.SoftmaxCrossEntropy()(v, targets)), logits)
    return out


_SUM_NOT_MEAN = Mistake("summing the per-sample losses instead of averaging them (mean over N)",
                        lambda i, e: e["loss"] * len(i["logits"]))


@LAB.case(points=5, inputs=logits_inputs(6, 4), factors=batch_factor, checks=[
    Close("loss", "SoftmaxCrossEntropy.forward: the mean loss", mistakes=(_SUM_NOT_MEAN, WRONG_AXIS_LOSS)),
    Close("logits_after", "SoftmaxCrossEntropy.forward: the logits after the call", exact=True,
          explain=UNCHANGED),
])
def softmax_ce_forward(lab, logits, targets, g):
    """SoftmaxCrossEntropy.forward: L = -mean_n log softmax(z)[n, y_n] (N=6, C=4)."""
    out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "logits_after": out["logits_after"]}


@LAB.case(points=4, inputs=logits_inputs(5, 5), factors=batch_factor, checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with N = C = 5: the mean loss",
          mistakes=(WRONG_AXIS_LOSS, _SUM_NOT_MEAN),
          explain="With as many samples as classes, a softmax over the wrong axis has the right "
                  "shape but the wrong values: normalise each ROW (axis=1)."),
    Close("dlogits", "SoftmaxCrossEntropy.backward with N = C = 5: dL/dlogits", mistakes=(
        WRONG_AXIS_GRAD,
        Mistake("ignoring the upstream gradient grad_output", lambda i, e: e["dlogits"] / i["g"]),
    )),
])
def softmax_ce_square(lab, logits, targets, g):
    """Softmax over the right axis: N = C, so only the values can tell."""
    out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


@LAB.case(points=5, inputs=logits_inputs(4, 5, extreme=True), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with logits near +-1000: the loss",
          mistakes=(_SUM_NOT_MEAN,
                    Mistake("a softmax over axis 0 (the batch) instead of axis 1 (the classes)",
                            lambda i, e: np.array(-(i["logits"] - np.logaddexp.reduce(i["logits"], axis=0))[
                                np.arange(len(i["logits"])), i["targets"]].mean()))),
          explain="exp(1000) overflows to inf: subtract each row's max before exp (it does not "
                  "change the softmax) and take log-probabilities as z - max - log(sum(exp(z - max)))."),
    Close("dlogits", "SoftmaxCrossEntropy.backward with logits near +-1000: dL/dlogits", mistakes=(
        Mistake("leaving out the 1/N of the mean", lambda i, e: e["dlogits"] * len(i["logits"])),
        Mistake("ignoring the upstream gradient grad_output", lambda i, e: e["dlogits"] / i["g"]),
        WRONG_AXIS_GRAD,
    )),
])
def softmax_ce_extreme_logits(lab, logits, targets, g):
    """No overflow and no NaN for logits of +-1000."""
    with numerically_stable("SoftmaxCrossEntropy", "Subtract each row's max before exp (the softmax does not "
                            "change) and compute log p as z - max - log(sum(exp(z - max)))."):
        out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


@LAB.case(points=9, inputs=logits_inputs(6, 4), factors=batch_factor, checks=[
    GradCheck("dlogits", "dlogits_numeric", "SoftmaxCrossEntropy.backward: dL/dlogits"),
    Close("dlogits", "SoftmaxCrossEntropy.backward: dL/dlogits", mistakes=(
        Mistake("leaving out the 1/N of the mean", lambda i, e: e["dlogits"] * len(i["logits"])),
        Mistake("ignoring the upstream gradient grad_output", lambda i, e: e["dlogits"] / i["g"]),
        Mistake("p - onehot without the upstream gradient and without 1/N",
                lambda i, e: e["dlogits"] * len(i["logits"]) / i["g"]),
        WRONG_AXIS_GRAD,
    )),
])
def softmax_ce_backward(lab, logits, targets, g):
    """SoftmaxCrossEntropy.backward: dL/dz = g * (softmax(z) - onehot(y)) / N, g random."""
    out = _run_ce(lab, logits, targets, g)
    return {"dlogits": out["dlogits"], "dlogits_numeric": out["dlogits_numeric"]}


@LAB.case(points=3, inputs=logits_inputs(1, 10), checks=[
    Close("loss", "SoftmaxCrossEntropy.forward with a batch of one: the loss", mistakes=(WRONG_AXIS_LOSS,)),
    Close("dlogits", "SoftmaxCrossEntropy.backward with a batch of one: dL/dlogits", mistakes=(
        WRONG_AXIS_GRAD,
        Mistake("ignoring the upstream gradient grad_output", lambda i, e: e["dlogits"] / i["g"]),
    )),
])
def softmax_ce_batch_of_one(lab, logits, targets, g):
    """N=1: shapes stay (1, C)."""
    out = _run_ce(lab, logits, targets, g, numeric=False)
    return {"loss": out["loss"], "dlogits": out["dlogits"]}


# ----------------------------------------------------------------------------- Sequential


def mlp_inputs(rng: np.random.Generator) -> Arrays:
    return {"x": rng.standard_normal((3, 5)), "w1": rng.standard_normal((4, 5)) / 2,
            "b1": rng.standard_normal(4), "w2": rng.standard_normal((2, 4)) / 2,
            "b2": rng.standard_normal(2), "dout": rng.standard_normal((3, 2))}


def _mlp(lab: ModuleType, w1, b1, w2, b2):
    # Tanh, not ReLU: smooth, so the numerical gradient is exact everywhere along the chain.
    return lab.Sequential(make_linear(lab, w1, b1), lab.Tanh(), make_linear(lab, w2, b2))


@LAB.case(points=9, inputs=mlp_inputs, checks=[
    Close("y", "Sequential.forward: output of Linear(5,4) -> Tanh -> Linear(4,2)", mistakes=(
        Mistake("Linear.forward leaving out the bias",
                lambda i, e: np.tanh(i["x"] @ i["w1"].T) @ i["w2"].T),)),
    GradCheck("dx", "dx_numeric", "Sequential.backward: dL/dx"),
    Close("dx", "Sequential.backward: dL/dx", mistakes=(
        Mistake("Tanh.backward using 1 - y instead of 1 - y**2",
                lambda i, e: ((i["dout"] @ i["w2"]) * (1 - np.tanh(i["x"] @ i["w1"].T + i["b1"]))) @ i["w1"]),)),
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


def sgd_inputs(rng: np.random.Generator) -> Arrays:
    return {"w": rng.standard_normal((3, 4)), "b": rng.standard_normal(4),
            "gw": rng.standard_normal((3, 4)), "gb": rng.standard_normal(4),
            "lr": np.array(rng.uniform(0.05, 0.5))}


def _params(lab: ModuleType, w, b, gw, gb):
    params = [lab.Parameter(w), lab.Parameter(b)]
    params[0].grad[...] = gw
    params[1].grad[...] = gb
    return params


@LAB.case(points=5, inputs=sgd_inputs, checks=[
    Close("data_after", "SGD.step: parameter values after one step", mistakes=(
        Mistake("adding the gradient (p + lr * grad): that is gradient ASCENT",
                lambda i, e: np.concatenate([(i["w"] + i["lr"] * i["gw"]).ravel(),
                                             (i["b"] + i["lr"] * i["gb"]).ravel()])),
        Mistake("leaving out the learning rate",
                lambda i, e: np.concatenate([(i["w"] - i["gw"]).ravel(), (i["b"] - i["gb"]).ravel()])),
    )),
    Close("grads_after", "SGD.step: the gradients after the step (step must not change them)", exact=True),
])
def sgd_step(lab, w, b, gw, gb, lr):
    """One SGD step: p <- p - lr * grad for every parameter."""
    params = _params(lab, w, b, gw, gb)
    lab.SGD(params, lr=float(lr)).step()
    return {"data_after": np.concatenate([p.data.ravel() for p in params]),
            "grads_after": np.concatenate([p.grad.ravel() for p in params])}


@LAB.case(points=3, inputs=sgd_inputs, checks=[
    Close("old_array_after", "SGD.step: the parameter's original array after the step",
          explain="Update in place (p.data -= lr * p.grad): other code holding p.data must see "
                  "the new values, as with PyTorch's optimizers.",
          mistakes=(Mistake("binding a new array (p.data = p.data - ...) instead of updating in place",
                            lambda i, e: i["w"]),
                    Mistake("adding the gradient (p + lr * grad): that is gradient ASCENT",
                            lambda i, e: i["w"] + i["lr"] * i["gw"]))),
])
def sgd_updates_in_place(lab, w, b, gw, gb, lr):
    """SGD updates the parameter arrays in place."""
    params = _params(lab, w, b, gw, gb)
    original = params[0].data
    lab.SGD(params, lr=float(lr)).step()
    return {"old_array_after": original.copy()}


# ----------------------------------------------------------------------------- MNIST


def mnist_inputs(rng: np.random.Generator) -> Arrays:
    split = mnist.load_mnist()
    return {"train_images": split.train_images, "train_labels": split.train_labels,
            "test_images": split.test_images, "test_labels": split.test_labels}


@LAB.case(points=17, inputs=mnist_inputs, private=["test_labels"], hidden=False, timeout=300, slow=True,
          checks=[Accuracy("predictions", "test_labels", ACCURACY_THRESHOLD,
                           "fit_mnist + predict on the held-out split", reference=REFERENCE_ACCURACY)])
def mnist_accuracy(lab, train_images, train_labels, test_images):
    """Train the MLP with fit_mnist on the training split; predict the held-out digits."""
    model = lab.fit_mnist(train_images, train_labels, seed=0)
    return {"predictions": lab.predict(model, test_images)}
