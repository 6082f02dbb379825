"""The grader against realistic student bugs: each bug fails exactly its cases, with a message naming it.

Every bug is a patch of the reference (``patched_reference``), graded in-process on every case
but MNIST training. For each we declare the exact set of cases that must fail (so a bug
neither goes unnoticed nor smears over unrelated cases), per failing case substrings of the
failure message (what it prints today), and ``names``: phrases that name the bug's CLASS
(e.g. "transposed", "in place", "chain rule"). The share of bugs whose messages contain such
a phrase is measured and printed at the end of the session (``feedback: ...`` line, via
``grader.pytest_support.summary_line``) by

    python -m pytest tests/engine/test_buggy.py -q

and must be at least 80%. One slow test also trains on MNIST with gradient ascent, and one
grades the untouched stubs.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.pytest_support import summary_line
from grader.runner import LabResult, grade

LAB = load_cases("lab1", paths.tests_dir())
POINTS = {c.name: c.points for c in LAB.cases}
MNIST = "mnist_accuracy"
FAST = [c.name for c in LAB.cases if c.name != MNIST]
FAST_MAX = 100 - POINTS[MNIST]

# Reference lines the patches replace (each must occur exactly once in its file).
LIN_FWD = "return x @ self.weight.data.T + self.bias.data"
LIN_FWD_X = "        self._x = x\n        return x @ self.weight.data.T + self.bias.data"
LIN_DW = "self.weight.grad += grad_output.T @ self._x"
LIN_DB = "self.bias.grad += grad_output.sum(axis=0)"
LIN_DX = "return grad_output @ self.weight.data\n"
RELU_FWD = "        self._mask = x > 0\n        return np.where(self._mask, x, 0.0)"
RELU_BWD = "return grad_output * self._mask"
SIG_FWD = "        self._y = y\n        return y"
SIG_BWD = "return grad_output * self._y * (1.0 - self._y)"
TANH_BWD = "return grad_output * (1.0 - self._y**2)"
SEQ_BWD = "for layer in reversed(self.layers):"
CE_SHIFT = "shifted = logits - logits.max(axis=1, keepdims=True)"
CE_NORM = "log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))"
CE_LOSS = "return float(-log_probs[np.arange(n), self._targets].mean())"
CE_GRAD = "return grad * (grad_output / n)"
SGD_STEP = "p.data -= self.lr * p.grad"
SIG_FWD0 = "z = np.exp(-np.abs(x))"
TANH_FWD = "        self._y = np.tanh(x)\n        return self._y"
SEQ_BWD_BODY = "            grad_output = layer.backward(grad_output)\n        return grad_output"
CE_ONEHOT = "        grad[np.arange(n), self._targets] -= 1.0\n"
PRE = "return images.reshape(len(images), -1).astype(np.float64) / 255.0"
MLP = "return Sequential(Linear(784, 128, rng), ReLU(), Linear(128, 10, rng))"
ZG = "self.grad[...] = 0.0"

AXIS0 = "a softmax over axis 0 (the batch) instead of axis 1 (the classes)"
NO_BIAS = "leaving out the bias"
NO_1_OVER_N = "leaving out the 1/N of the mean"
NO_UPSTREAM = "ignoring the upstream gradient grad_output"
SUM_LOSS = "summing the per-sample losses instead of averaging them"
ASCENT = "adding the gradient (p + lr * grad): that is gradient ASCENT"
RAISED = "your code raised an error"
IN_PLACE = "in place"
TRANSPOSE = "transpose"
SHAPE_ERROR = "the shape error happened in Linear.backward"


def bug(bug_id: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, list[str]],
        names: tuple[str, ...]):
    """One bug: its patches, {case expected to fail: substrings its message must contain}, and
    phrases that name its class (measured, not asserted per bug: see the module docstring)."""
    return pytest.param(patches, fails, names, id=bug_id)


BUGS = [
    # ---------------------------------------------------------------- the foundation's 19
    bug("bias-grad-averaged", {"layers.py": [(LIN_DB, "self.bias.grad += grad_output.mean(axis=0)")]}, {
        "linear_backward_bias": ["Linear.backward: bias.grad", "(= 1/N (the batch size))",
                                 "averaging over the batch (mean) instead of summing"],
        "linear_gradients_accumulate": ["bias.grad after two forward+backward passes",
                                        "averaging over the batch (mean) instead of summing"],
        "sequential_forward_backward": ["Linear.backward averaging the bias gradient over the batch"],
    }, names=("averaging over the batch", "averaging the bias gradient over the batch")),
    bug("softmax-without-max-shift", {"losses.py": [(CE_SHIFT, "shifted = logits")]}, {
        "softmax_ce_extreme_logits": ["SoftmaxCrossEntropy is not numerically stable",
                                      "overflow encountered in exp", "Subtract each row's max before exp",
                                      "lab1/losses.py"],
    }, names=("not numerically stable",)),
    bug("softmax-over-axis-0", {"losses.py": [
        (CE_SHIFT, "shifted = logits - logits.max(axis=0, keepdims=True)"),
        (CE_NORM, "log_norm = np.log(np.exp(shifted).sum(axis=0, keepdims=True))"),
    ]}, {
        "softmax_ce_forward": [AXIS0],
        "softmax_ce_square": [AXIS0],
        "softmax_ce_extreme_logits": [AXIS0],
        "softmax_ce_backward": [AXIS0],
        "softmax_ce_batch_of_one": [AXIS0],
    }, names=(AXIS0,)),
    bug("linear-backward-returns-weight-grad", {"layers.py": [(LIN_DX, "return grad_output.T @ self._x\n")]}, {
        "linear_backward_input": ["Linear.backward: dL/dx (its return value)",
                                  "returning the weight gradient grad_output.T @ x instead of dL/dx"],
        # The wrong shape is caught where it is made, not in the next layer.
        "sequential_forward_backward": ["Linear.backward (Sequential.layers[2]) returned a gradient of shape (2, 4), "
                                        "but its forward input had shape (3, 4)"],
    }, names=("returning the weight gradient", "returned a gradient of shape")),
    bug("relu-modifies-input", {"layers.py": [
        (RELU_FWD, "        self._mask = x > 0\n        x[x < 0] = 0\n        return x"),
    ]}, {
        "relu_forward": ["ReLU.forward modified its x in place: 11 entries changed; compute into a new array"],
        "relu_backward": ["ReLU.forward modified its x in place"],
    }, names=(IN_PLACE,)),
    bug("loss-grad-missing-1-over-N", {"losses.py": [(CE_GRAD, "return grad * grad_output")]}, {
        "softmax_ce_square": [NO_1_OVER_N],
        "softmax_ce_extreme_logits": [NO_1_OVER_N],
        "softmax_ce_backward": [NO_1_OVER_N],
    }, names=(NO_1_OVER_N,)),
    bug("linear-forward-without-bias", {"layers.py": [(LIN_FWD, "return x @ self.weight.data.T")]}, {
        "linear_forward": [NO_BIAS],
        "linear_forward_batch_of_one": [NO_BIAS],
        # The bias cannot change the output, so its numerical gradient is zero: the forward is blamed.
        "linear_backward_bias": ["Linear.backward: bias.grad: your backward equals the reference's",
                                 "your FORWARD computes something else", "numeric[0:3] = [0. 0. 0.]"],
        "sequential_forward_backward": ["Linear.forward leaving out the bias"],
    }, names=(NO_BIAS,)),
    bug("weight-grad-overwritten", {"layers.py": [(LIN_DW, "self.weight.grad = grad_output.T @ self._x")]}, {
        "linear_gradients_accumulate": ["weight.grad after two forward+backward passes",
                                        "overwriting the gradient (grad = ...) instead of accumulating"],
    }, names=("instead of accumulating",)),
    bug("linear-dx-transposed", {"layers.py": [(LIN_DX, "return self.weight.data.T @ grad_output.T\n")]}, {
        "linear_backward_input": ["shape: expected (3, 5), got (5, 3)",
                                  "your array is the transpose of the expected one"],
        "sequential_forward_backward": ["Linear.backward (Sequential.layers[2]) returned a gradient of shape (4, 3)",
                                        "one of them is transposed"],
    }, names=(TRANSPOSE,)),
    bug("sequential-backward-first-to-last", {"layers.py": [(SEQ_BWD, "for layer in self.layers:")]}, {
        "sequential_forward_backward": [
            "Linear.backward (Sequential.layers[0]) received grad_output of shape (3, 2), but its forward "
            "returned shape (3, 4)", "the chain rule goes from the last layer to the first"],
    }, names=("the chain rule goes from the last layer to the first",)),
    bug("sgd-gradient-ascent", {"optim.py": [(SGD_STEP, "p.data += self.lr * p.grad")]}, {
        "sgd_step": ["SGD.step: parameter values after one step", ASCENT],
        "sgd_updates_in_place": [ASCENT],
        "sgd_zero_grad": [ASCENT],
    }, names=(ASCENT,)),
    bug("sgd-rebinds-data", {"optim.py": [(SGD_STEP, "p.data = p.data - self.lr * p.grad")]}, {
        "sgd_updates_in_place": ["binding a new array (p.data = p.data - ...) instead of updating in place"],
    }, names=("binding a new array",)),
    bug("tanh-derivative-1-minus-y", {"layers.py": [(TANH_BWD, "return grad_output * (1.0 - self._y)")]}, {
        "tanh_backward": ["Tanh.backward: dL/dx", "1 - y instead of 1 - y**2"],
        "sequential_forward_backward": ["Tanh.backward using 1 - y instead of 1 - y**2"],
    }, names=("1 - y instead of 1 - y**2",)),
    bug("sigmoid-backward-uses-x", {"layers.py": [
        (SIG_FWD, "        self._y = y\n        self._x = x\n        return y"),
        (SIG_BWD, "return grad_output * self._x * (1.0 - self._x)"),
    ]}, {
        "sigmoid_backward": ["Sigmoid.backward: dL/dx", "using x instead of the output y in y * (1 - y)"],
    }, names=("using x instead of the output y",)),
    bug("relu-backward-masks-grad-sign", {"layers.py": [(RELU_BWD, "return grad_output * (grad_output > 0)")]}, {
        "relu_backward": ["ReLU.backward: dL/dx",
                          "masking with the sign of grad_output instead of the sign of the input x"],
    }, names=("masking with the sign of grad_output",)),
    bug("relu-backward-returns-mask", {"layers.py": [(RELU_BWD, "return self._mask.astype(np.float64)")]}, {
        "relu_backward": ["returning the mask 1[x > 0] without multiplying by grad_output"],
    }, names=("without multiplying by grad_output",)),
    bug("linear-forward-float32", {"layers.py": [(
        LIN_FWD, "return (x.astype(np.float32) @ self.weight.data.T.astype(np.float32)"
                 " + self.bias.data.astype(np.float32))")]}, {
        "linear_forward": ["dtype: expected float64, got float32"],
        "linear_forward_batch_of_one": ["dtype: expected float64, got float32"],
        # The gradient checks name the convention instead of blaming a correct backward.
        "linear_backward_input": ["Linear.forward returned dtype float32; the labs compute in float64"],
        "linear_backward_weight": ["Linear.forward returned dtype float32; the labs compute in float64"],
        "linear_backward_bias": ["Linear.forward returned dtype float32; the labs compute in float64"],
        "sequential_forward_backward": ["Sequential.forward returned dtype float32"],
    }, names=("float32",)),
    bug("loss-summed-not-averaged", {"losses.py": [
        (CE_LOSS, "return float(-log_probs[np.arange(n), self._targets].sum())"),
    ]}, {
        "softmax_ce_forward": [SUM_LOSS],
        "softmax_ce_square": [SUM_LOSS],
        "softmax_ce_extreme_logits": [SUM_LOSS],
        # backward is right: the message blames the forward, and no "1/N" factor hint blames backward
        "softmax_ce_backward": [SUM_LOSS, "your FORWARD computes something else", "backward is not the problem"],
    }, names=(SUM_LOSS,)),
    bug("loss-backward-ignores-upstream", {"losses.py": [(CE_GRAD, "return grad / n")]}, {
        "softmax_ce_square": [NO_UPSTREAM],
        "softmax_ce_extreme_logits": [NO_UPSTREAM],
        "softmax_ce_backward": [NO_UPSTREAM],
        "softmax_ce_batch_of_one": [NO_UPSTREAM],
    }, names=(NO_UPSTREAM,)),
    # ---------------------------------------------------------------- issue 5: bugs that scored 100 or were unnamed
    bug("relu-backward-modifies-grad-output", {"layers.py": [
        (RELU_BWD, "grad_output[~self._mask] = 0.0\n        return grad_output")]}, {
        "relu_backward": ["ReLU.backward modified its grad_output in place: 7 entries changed; compute into a "
                          "new array"],
    }, names=(IN_PLACE,)),
    bug("sigmoid-clips-x-in-place", {"layers.py": [
        (SIG_FWD0, "np.clip(x, -500, 500, out=x)\n        z = np.exp(-np.abs(x))")]}, {
        "sigmoid_forward": ["Sigmoid.forward modified its x in place: 2 entries changed"],
    }, names=(IN_PLACE,)),
    bug("loss-shifts-logits-in-place", {"losses.py": [
        (CE_SHIFT, "logits -= logits.max(axis=1, keepdims=True)\n        shifted = logits")]}, {
        c: ["SoftmaxCrossEntropy.forward modified its logits in place"] for c in (
            "softmax_ce_forward", "softmax_ce_square", "softmax_ce_extreme_logits", "softmax_ce_backward",
            "softmax_ce_batch_of_one")
    }, names=(IN_PLACE,)),
    bug("ce-eps-inside-log", {"losses.py": [
        (CE_LOSS, "return float(-np.log(self._probs[np.arange(n), self._targets] + 1e-7).mean())")]}, {
        "softmax_ce_forward": ["log(p + eps)"],
        "softmax_ce_square": ["log(p + eps)"],
        "softmax_ce_extreme_logits": ["the loss: does not match the reference"],
        "softmax_ce_backward": ["log(p + eps)", "backward is not the problem"],
        "softmax_ce_batch_of_one": ["log(p + eps)"],
    }, names=("log(p + eps)",)),
    bug("ce-column-indexing", {"losses.py": [(CE_LOSS, "return float(-log_probs[:, self._targets].mean())")]}, {
        c: ["indexing log_probs[:, targets] (whole columns)"] for c in (
            "softmax_ce_forward", "softmax_ce_square", "softmax_ce_extreme_logits", "softmax_ce_backward")
    }, names=("log_probs[:, targets]",)),
    bug("ce-mean-over-N-times-C", {"losses.py": [
        (CE_LOSS, "return float(-(np.eye(logits.shape[1])[self._targets] * log_probs).mean())")]}, {
        c: ["a mean over all N*C entries"] for c in (
            "softmax_ce_forward", "softmax_ce_square", "softmax_ce_extreme_logits", "softmax_ce_backward",
            "softmax_ce_batch_of_one")
    }, names=("a mean over all N*C entries",)),
    bug("ce-grad-without-onehot", {"losses.py": [(CE_ONEHOT, "")]}, {
        c: ["leaving out the one-hot"] for c in (
            "softmax_ce_square", "softmax_ce_extreme_logits", "softmax_ce_backward", "softmax_ce_batch_of_one")
    }, names=("leaving out the one-hot",)),
    bug("ce-grad-divides-by-C", {"losses.py": [(CE_GRAD, "return grad * (grad_output / grad.shape[1])")]}, {
        c: ["dividing by C (the number of classes) instead of N"] for c in (
            "softmax_ce_extreme_logits", "softmax_ce_backward", "softmax_ce_batch_of_one")
    }, names=("dividing by C",)),
    bug("linear-dw-transposed", {"layers.py": [(LIN_DW, "self.weight.grad += self._x.T @ grad_output")]}, {
        **{c: [RAISED, SHAPE_ERROR, "Linear's parameters: weight (3, 5); bias (3,)",
               "(3, 5) vs (5, 3): one of them is transposed"] for c in (
            "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
            "linear_gradients_accumulate")},
        "sequential_forward_backward": ["the shape error happened in Linear.backward (Sequential.layers[2])",
                                        "one of them is transposed"],
    }, names=(TRANSPOSE,)),
    bug("linear-dx-with-w-transposed", {"layers.py": [(LIN_DX, "return grad_output @ self.weight.data.T\n")]}, {
        **{c: [SHAPE_ERROR, "check which operand needs a transpose"] for c in (
            "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
            "linear_gradients_accumulate")},
        "sequential_forward_backward": ["(Sequential.layers[2])", "check which operand needs a transpose"],
    }, names=(TRANSPOSE,)),
    bug("bias-grad-wrong-axis", {"layers.py": [(LIN_DB, "self.bias.grad += grad_output.sum(axis=1)")]}, {
        **{c: [SHAPE_ERROR, "(3,) vs (4,): 4 is the batch size N; a sum or mean over the wrong axis"] for c in (
            "linear_backward_weight", "linear_backward_bias", "linear_gradients_accumulate")},
        "sequential_forward_backward": ["(Sequential.layers[2])", "over the wrong axis"],
    }, names=("over the wrong axis",)),
    bug("bias-grad-keepdims", {"layers.py": [(LIN_DB, "self.bias.grad += grad_output.sum(axis=0, keepdims=True)")]}, {
        **{c: [SHAPE_ERROR, "(3,) vs (1, 3): a reduction with keepdims=True"] for c in (
            "linear_backward_input", "linear_backward_weight", "linear_backward_bias",
            "linear_gradients_accumulate")},
        "sequential_forward_backward": ["keepdims=True"],
    }, names=("keepdims",)),
    bug("leaky-relu", {"layers.py": [
        (RELU_FWD, "        self._mask = x > 0\n        return np.where(self._mask, x, 0.01 * x)"),
        (RELU_BWD, "return grad_output * np.where(self._mask, 1.0, 0.01)")]}, {
        "relu_forward": ["a leaky ReLU"],
        "relu_backward": ["a leaky ReLU's gradient", "your backward agrees with the numerical gradient of your own "
                          "forward"],
    }, names=("leaky ReLU",)),
    bug("relu-np-max-0-x", {"layers.py": [(RELU_FWD, "        self._mask = x > 0\n        return np.max(0, x)")]}, {
        "relu_forward": ["TypeError: only integer scalar arrays", "np.maximum(x, 0)"],
        "relu_backward": ["np.maximum(x, 0)"],
        "mnist_build_mlp": ["TypeError: only integer scalar arrays"],
    }, names=("np.maximum(x, 0)",)),
    bug("relu-np-max-x-0", {"layers.py": [(RELU_FWD, "        self._mask = x > 0\n        return np.max(x, 0)")]}, {
        "relu_forward": ["shape: expected (4, 6), got (6,)", "np.max(x, 0) is the maximum OVER axis 0"],
        "relu_backward": ["ReLU.backward received grad_output of shape (4, 6), but its forward returned shape (6,)"],
        "mnist_build_mlp": ["maps a batch of shape (4, 784) to shape (10,)"],
    }, names=("np.max(x, 0) is the maximum OVER axis 0",)),
    bug("sequential-backward-not-chained", {"layers.py": [
        (SEQ_BWD_BODY, "            layer.backward(grad_output)\n        return grad_output")]}, {
        "sequential_forward_backward": [
            "Tanh.backward (Sequential.layers[1]) received grad_output of shape (3, 2), but its forward returned "
            "shape (3, 4)", "passed its own grad_output again", "chain them"],
    }, names=("chain them",)),
    bug("linear-backward-stale-x", {"layers.py": [(
        LIN_FWD_X, "        if self._x is None:\n            self._x = x\n"
                   "        return x @ self.weight.data.T + self.bias.data")]}, {
        "linear_gradients_accumulate": ["backward used the x of an EARLIER forward"],
    }, names=("backward used the x of an EARLIER forward",)),
    bug("zero-grad-zeroes-nothing", {"framework.py": [(ZG, "np.zeros_like(self.grad)")]}, {
        "linear_gradients_accumulate": ["zero_grad() left the gradients unchanged"],
        "sgd_zero_grad": ["zero_grad() left the gradients unchanged"],
    }, names=("zero_grad() left the gradients unchanged",)),
    bug("preprocess-without-scaling", {"mlp.py": [
        (PRE, "return images.reshape(len(images), -1).astype(np.float64)")]}, {
        "mnist_preprocess": ["no scaling: the features must be in [0, 1] (divide by 255)"],
    }, names=("divide by 255",)),
    bug("mlp-without-hidden-activation", {"mlp.py": [
        (MLP, "return Sequential(Linear(784, 128, rng), Linear(128, 10, rng))")]}, {
        "mnist_build_mlp": ["the model is affine: no activation (e.g. ReLU) between the Linear layers"],
    }, names=("no activation",)),
    bug("sgd-step-changes-nothing", {"optim.py": [(SGD_STEP, "p.data - self.lr * p.grad")]}, {
        c: ["step() left the parameters unchanged"] for c in ("sgd_step", "sgd_updates_in_place", "sgd_zero_grad")
    }, names=("step() left the parameters unchanged",)),
    bug("sgd-step-zeroes-grads", {"optim.py": [
        (SGD_STEP, "p.data -= self.lr * p.grad\n            p.grad[...] = 0.0")]}, {
        "sgd_step": ["step() zeroed the gradients: leave that to zero_grad()"],
    }, names=("step() zeroed the gradients",)),
    bug("sigmoid-backward-without-grad-output", {"layers.py": [(SIG_BWD, "return self._y * (1.0 - self._y)")]}, {
        "sigmoid_backward": ["leaving out grad_output: y * (1 - y) alone"],
    }, names=("leaving out grad_output",)),
    bug("tanh-backward-uses-x", {"layers.py": [
        (TANH_FWD, "        self._x = x\n        self._y = np.tanh(x)\n        return self._y"),
        (TANH_BWD, "return grad_output * (1.0 - self._x**2)")]}, {
        "tanh_backward": ["1 - x**2 (the input) instead of 1 - y**2 (the output)"],
        "sequential_forward_backward": ["Sequential.backward: dL/dx: does not match the reference",
                                        "Tanh.backward using 1 - x**2 (the input)"],
    }, names=("1 - x**2 (the input)",)),
    bug("relu-forward-returns-mask", {"layers.py": [
        (RELU_FWD, "        self._mask = x > 0\n        return self._mask.astype(np.float64)")]}, {
        "relu_forward": ["the mask without x"],
        "relu_backward": ["your FORWARD computes something else", "backward is not the problem"],
    }, names=("the mask without x",)),
]

def outputs(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def failed(result: LabResult) -> set[str]:
    return {c.name for c in result.cases if not c.passed}


def test_lab1_points() -> None:
    assert LAB.max_score == 100 and POINTS[MNIST] == 13


def test_unpatched_reference_passes_every_fast_case(grade_bug) -> None:
    """The control: a copy of the reference with no patch scores full marks."""
    grade_bug(LAB, "reference", {}, {}, FAST)


NAMED: dict[str, bool] = {}  # bug id -> did a failure message name its class (filled by the test below)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # student code overflowing is part of the bug
@pytest.mark.parametrize(("patches", "fails", "names"), BUGS)
def test_bug_fails_exactly_its_cases_with_a_message_naming_it(grade_bug, request, patches, fails, names) -> None:
    bug_id = request.node.callspec.id
    got = grade_bug(LAB, bug_id, patches, fails, FAST)
    NAMED[bug_id] = any(phrase in got.outputs[c] for c in got.failed for phrase in names)
    # Not misleading: every known mistake the messages name is this bug's class.
    misleading = [line.strip() for c in got.failed for line in got.outputs[c].splitlines()
                  if "matches a known mistake" in line and not any(phrase in line for phrase in names)]
    assert misleading == [], f"hints naming another bug: {misleading}"


def test_at_least_forty_distinct_bugs() -> None:
    ids = [p.id for p in BUGS]
    assert len(ids) == len(set(ids)) >= 40


def test_share_of_bugs_whose_message_names_the_bug(request) -> None:
    """Measured over the bugs graded above in this session; printed at the end of the session."""
    missing = [p.id for p in BUGS if p.id not in NAMED]
    if missing:
        pytest.skip(f"run the whole file to measure the share ({len(missing)} bugs were not graded in this session)")
    named = sum(NAMED.values())
    share = named / len(NAMED)
    summary_line(request.config, f"feedback: {named} of {len(NAMED)} buggy implementations ({share:.0%}) get a "
                                 "message that names the bug class (tests/engine/test_buggy.py)")
    unnamed = sorted(k for k, v in NAMED.items() if not v)
    assert share >= 0.8, f"only {share:.0%} named; unnamed: {unnamed}"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_sgd_ascent_trains_to_chance_level_on_mnist(patched_reference) -> None:
    root = patched_reference("ascent", {"optim.py": [(SGD_STEP, "p.data += self.lr * p.grad")]})
    result = grade(LAB, root, isolated=False)  # every case, MNIST training included
    out = outputs(result)
    assert failed(result) == {"sgd_step", "sgd_updates_in_place", "sgd_zero_grad", MNIST}, out
    assert result.score == 100 - sum(POINTS[c] for c in ("sgd_step", "sgd_updates_in_place", "sgd_zero_grad", MNIST))
    message = out[MNIST]
    assert "fit_mnist + predict on the held-out split: accuracy 0.1" in message
    assert "is below the threshold 0.9300" in message
    # No fixed list of suspects: a pointer to the handout's checklist (the failing SGD cases name the bug).
    assert "hint: this is chance level: the model did not learn anything" in message
    assert "Check the sign of the SGD update" not in message


STUB_FUNCTION = {  # the first unimplemented function each case reaches
    "linear": "Linear.forward", "relu": "ReLU.forward", "sigmoid": "Sigmoid.forward", "tanh": "Tanh.forward",
    "softmax": "SoftmaxCrossEntropy.forward", "sequential": "Sequential.forward", "sgd": "SGD.step",
    "mnist_accuracy": "preprocess", "mnist_build_mlp": "build_mlp", "mnist_preprocess": "preprocess",
}


def test_untouched_stubs_score_zero_and_every_case_names_the_missing_function() -> None:
    result = grade(LAB, paths.labs_dir(), isolated=False)  # every case, MNIST included
    assert [c.name for c in result.cases] == [c.name for c in LAB.cases]
    assert result.score == 0 and result.max_score == 100
    for case in result.cases:
        function = STUB_FUNCTION.get(case.name, STUB_FUNCTION.get(case.name.split("_")[0]))
        assert not case.passed
        assert RAISED in case.output, case.output
        assert f"NotImplementedError: {function}: not implemented yet" in case.output, case.output
