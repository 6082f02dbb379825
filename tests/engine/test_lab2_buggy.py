"""Lab 2's grader against realistic BatchNorm and Dropout bugs, and against correct alternatives.

Every bug is a patch of the reference (``patched_reference`` with lab="lab2"), graded in-process
on every case but MNIST training. For each we declare the exact set of cases that must fail and,
per failing case, substrings of the message that name the bug. Correct alternatives (the compact
backward formula instead of the staged one, BatchNorm2d without reusing BatchNorm1d, other ways to
draw a dropout mask) must keep full marks. The untouched stubs score 0, each case naming the
function it reached first.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import LabResult, grade

LAB = load_cases("lab2", paths.tests_dir())
POINTS = {c.name: c.points for c in LAB.cases}
MNIST = "mnist_accuracy"
FAST = [c.name for c in LAB.cases if c.name != MNIST]
FAST_MAX = 100 - POINTS[MNIST]

BN = "batchnorm.py"
DR = "dropout.py"
# Reference lines the patches replace (each must occur exactly once in its file).
STD = "std = np.sqrt(var + self.eps)"
VAR = "var = (xc**2).mean(axis=0)"
CACHE = "self._cache = (xc, std, istd, x_hat)"
FWD_OUT = "return self.weight.data * x_hat + self.bias.data"
RUN_MEAN = "self.running_mean = (1.0 - m) * self.running_mean + m * mu"
RUN_VAR = "self.running_var = (1.0 - m) * self.running_var + m * var * n / (n - 1)"
EVAL_BRANCH = "        if not self.training:\n            return"
DBETA = "self.bias.grad += grad_output.sum(axis=0)"
DGAMMA = "self.weight.grad += (grad_output * x_hat).sum(axis=0)"
DISTD = "distd = (dx_hat * xc).sum(axis=0)"
DXC1 = "dxc = dx_hat * istd "
DVAR_PATH = "dxc = dxc + 2.0 * xc * dvar / n"
DMU = "dmu = -dxc.sum(axis=0)"
DSTD = "dstd = -distd / std**2"
DVAR = "dvar = 0.5 * dstd / std"
DX_HAT = "dx_hat = grad_output * self.weight.data"
DX_RET = "return dxc + dmu / n "
ROWS_FWD = "rows = x.transpose(0, 2, 3, 1).reshape(-1, c)"
UNROWS_FWD = "return y.reshape(n, h, w, c).transpose(0, 3, 1, 2)"
ROWS_BWD = "dx = self._rows_backward(grad_output.transpose(0, 2, 3, 1).reshape(-1, c))"
UNROWS_BWD = "return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)"
MASK = "self._scale = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)"
DR_BWD = "return grad_output * self._scale"
DR_EVAL = "if not self.training or self.p == 0.0:"
MD = "model.py"
BUILD = ("    return Sequential(Linear(784, 128, rng), BatchNorm1d(128), ReLU(), Dropout(0.2, rng=rng),\n"
         "                      Linear(128, 10, rng))\n")
FIT_RNG = "rng = np.random.default_rng(seed)"

def _reference_region(file: str, start: str, end: str = "        ### END SOLUTION") -> str:
    """The reference's text from ``start`` to ``end`` (excluded): a patch that replaces a whole body."""
    text = (paths.solutions_dir() / "lab2" / file).read_text()
    i = text.index(start)
    return text[i:text.index(end, i)]


BN2D_FWD_BODY = _reference_region(BN, "        n, c, h, w = x.shape\n")
BN2D_BWD_BODY = _reference_region(BN, "        n, c, h, w = grad_output.shape\n")
AXES0_2D = """        g, b = self.weight.data.reshape(1, -1, 1, 1), self.bias.data.reshape(1, -1, 1, 1)
        if not self.training:
            rm, rv = self.running_mean.reshape(1, -1, 1, 1), self.running_var.reshape(1, -1, 1, 1)
            return g * (x - rm) / np.sqrt(rv + self.eps) + b
        n = x.shape[0]
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc**2).mean(axis=0)
        self._istd = 1.0 / np.sqrt(var + self.eps)
        self._x_hat = xc * self._istd
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * mu.mean(axis=(1, 2))
        self.running_var = (1 - m) * self.running_var + m * var.mean(axis=(1, 2)) * n / (n - 1)
        return g * self._x_hat + b
"""
AXES0_2D_BWD = """        self.bias.grad += grad_output.sum(axis=(0, 2, 3))
        self.weight.grad += (grad_output * self._x_hat).sum(axis=(0, 2, 3))
        dx_hat = grad_output * self.weight.data.reshape(1, -1, 1, 1)
        return self._istd * (dx_hat - dx_hat.mean(axis=0) - self._x_hat * (dx_hat * self._x_hat).mean(axis=0))
"""

GRAD_DISAGREES = "numerical gradient"  # the engine words the rest (it may say whether forward or backward is off)
EPS_OUTSIDE = "eps outside the square root"
KERAS = "the Keras convention: momentum weighting the OLD value"
BIASED = "running_var updated with the BIASED batch variance"
NOT_UPDATED = "running statistics never updated in training (still 0 and 1)"
BATCH_IN_EVAL = "eval still normalising with the BATCH statistics"
MEAN_PATH = "the mean path of the gradient is missing"
VAR_PATH = "the variance path of the gradient is missing"
SUM_NO_AXIS = "a sum without axis=0 in the backward"
XHAT_FOR_XC = "x_hat (the NORMALISED x) is used where x - mean belongs"
FLAT = "x.reshape(-1, C) without moving the channel axis last first"
DGAMMA_X = "it is sum_n dy * x_hat (the normalised x)"
MEAN_NOT_SUM = "averaging over the batch (mean) instead of summing"
OVERWRITE = "overwriting the gradient (grad = ...) instead of accumulating (grad += ...)"
UNBIASED_NORM = "normalising with the UNBIASED variance"
SWAPPED = "gamma and beta swapped"
NO_SCALING = "no inverted-dropout scaling"
RAISED = "your code raised an error"
TWO_AT_ONCE = "matches two known mistakes at once"
PAIR = "two mistakes at once:"
TWICE = "correction applied twice to running_var"
FORWARD_TOO = "so your FORWARD differs from the reference as well"
FOLLOWS = "so the forward (or a convention) differs from the reference, and backward follows it"
TERMS = "fitted term by term to dL/dx's direct, mean and variance terms"


def bug(bug_id: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, list[str]]):
    """One bug: its patches, and {case expected to fail: substrings its message must contain}."""
    return pytest.param(patches, fails, id=bug_id)


BUGS = [
    # ---------------------------------------------------------------- BatchNorm forward
    bug("eps-outside-sqrt", {BN: [(STD, "std = np.sqrt(var) + self.eps")]}, {
        "bn1d_train_forward": ["BatchNorm1d.forward (training): output y", EPS_OUTSIDE],
        "bn1d_batch_sizes": [EPS_OUTSIDE],
        # The staged backward differentiates sqrt(var + eps): it no longer matches this forward, and the
        # numerical gradient of the forward is not the reference's: the forward is named as the one to fix.
        "bn1d_backward_dx": [GRAD_DISAGREES, FORWARD_TOO],
        "bn1d_backward_params": ["weight.grad (dL/dgamma): does not match the reference", FOLLOWS],
        "bn2d_train_forward": [EPS_OUTSIDE],
        "bn2d_backward": [GRAD_DISAGREES, FORWARD_TOO],
    }),
    bug("unbiased-variance-to-normalise", {BN: [(VAR, "var = (xc**2).sum(axis=0) / (n - 1)")]}, {
        "bn1d_train_forward": [UNBIASED_NORM],
        "bn1d_batch_sizes": [UNBIASED_NORM],
        # var feeds the running variance too: it is now corrected twice.
        "bn1d_running_stats": ["BatchNorm1d.running_var after training steps", TWICE],
        "bn1d_backward_dx": [GRAD_DISAGREES, FORWARD_TOO],
        "bn1d_backward_params": ["BatchNorm1d.backward: weight.grad (dL/dgamma)", FOLLOWS],
        "bn2d_train_forward": ["BatchNorm2d.forward (training): output y", UNBIASED_NORM],
        "bn2d_running_stats": ["BatchNorm2d.running_var after training steps", TWICE],
        "bn2d_backward": [GRAD_DISAGREES, FORWARD_TOO],
    }),
    bug("gamma-beta-swapped", {BN: [(FWD_OUT, "return self.bias.data * x_hat + self.weight.data")]}, {
        "bn1d_train_forward": [SWAPPED],
        "bn1d_batch_sizes": [SWAPPED],
        "bn1d_backward_dx": [GRAD_DISAGREES],
        "bn1d_backward_params": [GRAD_DISAGREES],
        "bn2d_train_forward": ["BatchNorm2d.forward (training): output y", SWAPPED],
        "bn2d_backward": [GRAD_DISAGREES],
    }),
    # ---------------------------------------------------------------- running statistics and eval
    bug("keras-momentum", {BN: [
        (RUN_MEAN, "self.running_mean = m * self.running_mean + (1.0 - m) * mu"),
        (RUN_VAR, "self.running_var = m * self.running_var + (1.0 - m) * var * n / (n - 1)"),
    ]}, {
        "bn1d_running_stats": ["BatchNorm1d.running_mean after training steps", KERAS,
                               "running = (1 - momentum) * running + momentum * batch"],
        "bn2d_running_stats": [KERAS],
    }),
    bug("biased-running-var", {BN: [(RUN_VAR, "self.running_var = (1.0 - m) * self.running_var + m * var")]}, {
        "bn1d_running_stats": ["BatchNorm1d.running_var after training steps", BIASED, "divide by N - 1"],
        "bn2d_running_stats": [BIASED],
    }),
    # Two conventions at once: Keras' momentum and the biased variance (one listed prediction for the pair).
    bug("keras-momentum-and-biased-running-var", {BN: [
        (RUN_MEAN, "self.running_mean = m * self.running_mean + (1.0 - m) * mu"),
        (RUN_VAR, "self.running_var = m * self.running_var + (1.0 - m) * var"),
    ]}, {
        "bn1d_running_stats": [KERAS, "; and running_var updated with the BIASED batch variance"],
        "bn2d_running_stats": [KERAS],
    }),
    # Two forward mistakes at once, found by trying pairs of the listed ones.
    bug("eps-outside-sqrt-and-gamma-beta-swapped", {BN: [
        (STD, "std = np.sqrt(var) + self.eps"), (FWD_OUT, "return self.bias.data * x_hat + self.weight.data")]}, {
        "bn1d_train_forward": [PAIR, EPS_OUTSIDE, SWAPPED],
        "bn1d_batch_sizes": [PAIR, EPS_OUTSIDE, SWAPPED],
        "bn1d_backward_dx": [GRAD_DISAGREES],
        "bn1d_backward_params": [GRAD_DISAGREES],
        "bn2d_train_forward": [PAIR, EPS_OUTSIDE, SWAPPED],
        "bn2d_backward": [GRAD_DISAGREES],
    }),
    bug("running-stats-not-updated", {BN: [(f"        {RUN_MEAN}\n        {RUN_VAR}\n", "")]}, {
        "bn1d_running_stats": [NOT_UPDATED],
        "bn2d_running_stats": [NOT_UPDATED],
    }),
    bug("eval-uses-batch-stats", {BN: [(EVAL_BRANCH, "        if False:\n            return")]}, {
        "bn1d_eval_forward": [BATCH_IN_EVAL, "must use running_mean and running_var"],
        "bn2d_eval_forward": [BATCH_IN_EVAL],
        "train_eval_nested": ["eval output independent of the rest of the batch",
                              "your layers must read self.training"],
    }),
    # The eval cases pass: float32 running statistics count as differing from the reference's (given.py),
    # so eval is judged given them, and their rounding is not charged again there.
    bug("running-var-float32", {BN: [
        (RUN_VAR, f"self.running_var = ({RUN_VAR.split(' = ', 1)[1]}).astype(np.float32)")]}, {
        "bn1d_float64": ["got     [0:6] = [8. 8. 8. 4. 8. 8.]", "A 4 is float32"],
        "bn1d_running_stats": ["dtype: expected float64, got float32"],
        "bn2d_running_stats": ["dtype: expected float64, got float32"],
    }),
    # ---------------------------------------------------------------- backward
    bug("mean-path-missing", {BN: [(DX_RET, "return dxc ")]}, {
        "bn1d_backward_dx": [GRAD_DISAGREES, MEAN_PATH],
        "bn2d_backward": [MEAN_PATH],
    }),
    bug("variance-path-missing", {BN: [(DVAR_PATH, "dxc = dxc")]}, {
        "bn1d_backward_dx": [GRAD_DISAGREES, VAR_PATH],
        "bn2d_backward": [VAR_PATH],
    }),
    bug("sum-without-axis-in-backward", {BN: [(DMU, "dmu = -dxc.sum()")]}, {
        "bn1d_backward_dx": [SUM_NO_AXIS, "dL/dmean summed over EVERY entry"],
        "bn2d_backward": [SUM_NO_AXIS],
    }),
    # The real student's bug: two intermediate variables swapped in the staged backward.
    bug("xhat-used-for-x-minus-mean", {BN: [(DISTD, "distd = (dx_hat * x_hat).sum(axis=0)")]}, {
        "bn1d_backward_dx": [GRAD_DISAGREES, XHAT_FOR_XC, "dL/d(1/std) = sum_n dL/dx_hat * (x - mean)"],
        "bn2d_backward": [XHAT_FOR_XC],
    }),
    bug("std-used-for-1-over-std", {BN: [(DXC1, "dxc = dx_hat * std ")]}, {
        "bn1d_backward_dx": ["std is used where 1/std belongs"],
        "bn2d_backward": ["std is used where 1/std belongs"],
    }),
    # Two known mistakes at once (a real student's backward: 1/std and std swapped everywhere): each alone
    # is listed, their combination is named by adding their errors.
    bug("std-and-1-over-std-swapped-everywhere", {BN: [(DXC1, "dxc = dx_hat * std "),
                                                       (DSTD, "dstd = -distd * std**2")]}, {
        "bn1d_backward_dx": [TWO_AT_ONCE, "std is used where 1/std belongs", "1/std and std are swapped"],
        "bn2d_backward": [TWO_AT_ONCE, "std is used where 1/std belongs", "1/std and std are swapped"],
    }),
    # Errors no known mistake describes, said in the terms of dx = gamma/std * (dy - mean(dy) - x_hat * ...).
    bug("mean-term-with-the-wrong-sign", {BN: [(DX_RET, "return dxc - dmu / n ")]}, {
        "bn1d_backward_dx": [TERMS, "except the mean term", "which has the wrong sign"],
        "bn2d_backward": [TERMS, "except the mean term", "which has the wrong sign"],
    }),
    bug("variance-term-doubled", {BN: [(DVAR, "dvar = dstd / std")]}, {
        "bn1d_backward_dx": [TERMS, "except the variance term", "which is multiplied by 2"],
        "bn2d_backward": [TERMS, "except the variance term", "which is multiplied by 2"],
    }),
    bug("compact-mean-over-axis-1", {BN: [(DX_HAT, f"{DX_HAT}\n        return istd * (dx_hat - dx_hat.mean(axis=1, "
                                                  "keepdims=True) - x_hat * (dx_hat * x_hat).mean(axis=0))\n")]}, {
        "bn1d_backward_dx": [TERMS, "the mean term", "taken over axis 1 (each sample's features)"],
        "bn2d_backward": [TERMS, "the mean term", "taken over axis 1 (each pixel's channels)"],
    }),
    bug("compact-prefactor-gamma-over-var", {BN: [(DX_HAT, f"{DX_HAT}\n        return istd**2 * (dx_hat - dx_hat.mean("
                                                          "axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))\n")]}, {
        "bn1d_backward_dx": [TERMS, "the common prefactor is wrong: a division by std = sqrt(var + eps) too many"],
        "bn2d_backward": [TERMS, "the common prefactor is wrong: a division by std = sqrt(var + eps) too many"],
    }),
    bug("dgamma-uses-x-not-xhat", {BN: [(CACHE, f"{CACHE}\n        self._x = x"),
                                        (DGAMMA, "self.weight.grad += (grad_output * self._x).sum(axis=0)")]}, {
        "bn1d_backward_params": [GRAD_DISAGREES, DGAMMA_X],
        "bn2d_backward": ["it is sum dy * x_hat"],
    }),
    bug("dbeta-averaged", {BN: [(DBETA, "self.bias.grad += grad_output.mean(axis=0)")]}, {
        "bn1d_backward_params": [MEAN_NOT_SUM],
        "bn2d_backward": ["averaging (mean) instead of summing"],
    }),
    bug("grads-overwritten", {BN: [(DGAMMA, "self.weight.grad = (grad_output * x_hat).sum(axis=0)"),
                                   (DBETA, "self.bias.grad = grad_output.sum(axis=0)")]}, {
        "bn1d_gradients_accumulate": [OVERWRITE, "backward adds into .grad"],
    }),
    bug("2d-reshape-without-transpose", {BN: [
        (ROWS_FWD, "rows = x.reshape(-1, c)"), (UNROWS_FWD, "return y.reshape(n, c, h, w)"),
        (ROWS_BWD, "dx = self._rows_backward(grad_output.reshape(-1, c))"),
        (UNROWS_BWD, "return dx.reshape(n, c, h, w)"),
    ]}, {
        "bn2d_train_forward": [FLAT, "x.transpose(0, 2, 3, 1).reshape(-1, C)"],
        "bn2d_running_stats": ["BatchNorm2d.running_var after training steps", FLAT],
        # eval is judged given the student's own (flat) running statistics: still wrong, and named
        "bn2d_eval_forward": [f"eval with {FLAT}", "judged given your own"],
        "bn2d_backward": [FLAT],
    }),
    # BatchNorm2d written with axis=0 statistics (per channel AND pixel), consistently: its running_mean (the
    # pixels' means averaged) is right, its running_var is not, its eval is right given its own running
    # statistics (not charged again), its backward is the gradient of its own forward.
    bug("2d-stats-over-axis-0-only", {BN: [(BN2D_FWD_BODY, AXES0_2D), (BN2D_BWD_BODY, AXES0_2D_BWD)]}, {
        "bn2d_train_forward": ["statistics over axis 0 only (per channel AND pixel)", "over N, H and W"],
        "bn2d_running_stats": ["BatchNorm2d.running_var after training steps", "statistics over axis 0 only"],
        "bn2d_backward": ["the gradient of a forward with statistics over axis 0 only", FOLLOWS,
                          "x_hat from a forward with statistics over axis 0 only"],
    }),
    # ---------------------------------------------------------------- the MNIST model's structure
    # Each of these still trains (see scripts/lab2_structure_accuracy.py for what they reach on MNIST); only
    # mnist_model_structure, which inspects the model and two tiny fit_mnist runs, can fail them.
    bug("model-without-batchnorm", {MD: [(BUILD, "    return Sequential(Linear(784, 128, rng), ReLU(), "
                                                 "Dropout(0.2, rng=rng), Linear(128, 10, rng))\n")]}, {
        "mnist_model_structure": ["holds a BatchNorm1d that its training forward goes through",
                                  "no BatchNorm1d of this lab (lab2.BatchNorm1d) is called"],
    }),
    # A BatchNorm1d built but left out of the Sequential: present as an attribute, never called.
    bug("model-batchnorm-never-called", {MD: [(BUILD, "    model = Sequential(Linear(784, 128, rng), ReLU(), "
                                                      "Dropout(0.2, rng=rng), Linear(128, 10, rng))\n"
                                                      "    model.bn = BatchNorm1d(128)\n    return model\n")]}, {
        "mnist_model_structure": ["no BatchNorm1d of this lab (lab2.BatchNorm1d) is called"],
    }),
    bug("model-without-dropout", {MD: [(BUILD, "    return Sequential(Linear(784, 128, rng), BatchNorm1d(128), "
                                               "ReLU(), Linear(128, 10, rng))\n")]}, {
        "mnist_model_structure": ["holds a Dropout with p > 0", "no Dropout of this lab (lab2.Dropout) with p > 0"],
    }),
    bug("model-dropout-p-zero", {MD: [(BUILD, BUILD.replace("Dropout(0.2, rng=rng)", "Dropout(0.0, rng=rng)"))]}, {
        "mnist_model_structure": ["no Dropout of this lab (lab2.Dropout) with p > 0"],
    }),
    bug("model-dropout-without-rng", {MD: [(BUILD, BUILD.replace("Dropout(0.2, rng=rng)", "Dropout(0.2)"))]}, {
        "mnist_model_structure": ["two runs with the same seed give the same model",
                                  "a Dropout left with its own unseeded generator", "Dropout(0.2, rng=rng)"],
    }),
    bug("fit-mnist-unseeded-generator", {MD: [(FIT_RNG, "rng = np.random.default_rng()")]}, {
        "mnist_model_structure": ["two runs with the same seed give the same model",
                                  "np.random.default_rng() without a seed"],
    }),
    bug("fit-mnist-ignores-its-seed", {MD: [(FIT_RNG, "rng = np.random.default_rng(0)")]}, {
        "mnist_model_structure": ["runs with different seeds give different models", "the seed is ignored"],
    }),
    # ---------------------------------------------------------------- regimes a hidden variant uses, public too
    # BatchNorm1d's N >= 2 check copied into BatchNorm2d: a hidden variant of bn2d_backward has N = 1.
    bug("bn2d-refuses-one-image", {BN: [(ROWS_FWD, "if n < 2:\n            raise ValueError(f'BatchNorm2d needs "
                                                   "at least 2 samples per batch in training, got {n}')\n"
                                                   f"        {ROWS_FWD}")]}, {
        "bn2d_train_forward": ["on ONE image (N = 1) raised ValueError", "BatchNorm2d must work on a single image"],
    }),
    # 1 / (1 - p) at p = 1: 0 / 0 (a hidden variant of dropout_eval_and_edges reaches p = 0.97, none p = 1).
    bug("dropout-p-one-gives-nan", {DR: [("        if self.p == 1.0:\n            self._scale = np.zeros_like(x)\n"
                                          "        else:\n            self._scale = (self.rng.random(x.shape) >= "
                                          "self.p) / (1.0 - self.p)\n",
                                          "        self._scale = (self.rng.random(x.shape) >= self.p) / (1.0 - "
                                          "self.p)\n")]}, {
        "dropout_eval_and_edges": ["Dropout(p=1).forward in training: y must be all zeros", "handle p = 1 apart"],
    }),
    # ---------------------------------------------------------------- Dropout
    bug("dropout-p-as-keep-probability", {DR: [(MASK, "self._scale = (self.rng.random(x.shape) < self.p) / self.p")]}, {
        "dropout_train_forward": ["p used as the probability to KEEP", "expected = 0.3", "got      = 0.7"],
        "dropout_backward": ["kept entries divided by p instead of (1 - p)"],
        "dropout_eval_and_edges": ["p used as the probability to KEEP"],
    }),
    bug("dropout-without-scaling", {DR: [(MASK, "self._scale = (self.rng.random(x.shape) >= self.p) * 1.0")]}, {
        "dropout_train_forward": [NO_SCALING],
        "dropout_backward": [NO_SCALING],
        "dropout_eval_and_edges": [NO_SCALING],
    }),
    bug("dropout-new-mask-in-backward", {DR: [
        (DR_BWD, "return grad_output * (self.rng.random(grad_output.shape) >= self.p) / (1.0 - self.p)")]}, {
        "dropout_backward": ["fraction of entries where dx is zero but y is not",
                             "backward must reuse the mask of the last forward"],
        "dropout_eval_and_edges": ["Dropout.backward in eval mode: dx must equal grad_output"],
    }),
    bug("dropout-active-in-eval", {DR: [(DR_EVAL, "if self.p == 0.0:")]}, {
        "dropout_eval_and_edges": ["Dropout.forward in eval mode: y must equal x", "drops nothing and scales nothing"],
        "train_eval_nested": ["your layers must read self.training"],
    }),
    bug("dropout-global-random-state", {DR: [
        (MASK, "self._scale = (np.random.random(x.shape) >= self.p) / (1.0 - self.p)")]}, {
        "dropout_train_forward": ["equally seeded rng give the same mask", "not from np.random's global state"],
    }),
    bug("dropout-mask-drawn-once", {DR: [(MASK, (
        "if getattr(self, '_fixed', None) is None or self._fixed.shape != x.shape:\n"
        "                self._fixed = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)\n"
        "            self._scale = self._fixed"))]}, {
        "dropout_train_forward": ["two calls draw different masks", "Draw a new mask in every training forward"],
        "train_eval_nested": ["two training forwards differ"],
    }),
]


def outputs(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def failed(result: LabResult) -> set[str]:
    return {c.name for c in result.cases if not c.passed}


def test_lab2_points() -> None:
    assert LAB.max_score == 100


def test_unpatched_reference_passes_every_fast_case(grade_bug) -> None:
    """The control: a copy of the reference with no patch scores full marks."""
    grade_bug(LAB, "reference", {}, {}, FAST)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("patches", "fails"), BUGS)
def test_bug_fails_exactly_its_cases_with_a_message_naming_it(grade_bug, request, patches, fails) -> None:
    grade_bug(LAB, request.node.callspec.id, patches, fails, FAST)


def test_at_least_twelve_batchnorm_bugs() -> None:
    ids = [p.id for p in BUGS]
    assert len(ids) == len(set(ids))
    assert sum(1 for p in BUGS if BN in p.values[0]) >= 12


def test_all_ones_upstream_hides_the_real_students_bug(patched_reference) -> None:
    """Why the cases use random upstream gradients: under all ones, dL/dx is zero for ANY x, and the
    swapped-variable backward returns (numerically) zero too, so an all-ones check would pass it."""
    import numpy as np

    from grader.isolation.loading import load_package

    lab = load_package(patched_reference("swapped", {BN: [(DISTD, "distd = (dx_hat * x_hat).sum(axis=0)")]},
                                         lab="lab2"), "lab2")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 4)) * 2 + 1
    layer = lab.BatchNorm1d(4)
    layer.weight.data[...] = rng.uniform(0.5, 2.0, 4)
    layer(x)
    assert np.abs(layer.backward(np.ones((6, 4)))).max() < 1e-12
    layer(x)
    assert np.abs(layer.backward(rng.standard_normal((6, 4)))).max() > 1e-2


# ----------------------------------------------------------------------------- correct alternatives

COMPACT = ("        xc, std, istd, x_hat = self._cache\n"
           "        self.bias.grad += grad_output.sum(axis=0)\n"
           "        self.weight.grad += (grad_output * x_hat).sum(axis=0)\n"
           "        dx_hat = grad_output * self.weight.data\n"
           "        return istd * (dx_hat - dx_hat.mean(axis=0) - x_hat * (dx_hat * x_hat).mean(axis=0))\n")
STAGED_START = "        xc, std, istd, x_hat = self._cache\n        n = grad_output.shape[0]\n"


def _replace_region(text: str, start: str, end: str, new: str) -> str:
    i = text.index(start)
    j = text.index(end, i)
    return text[:i] + new + text[j:]


AXES_2D = '''        mu = x.mean(axis=(0, 2, 3), keepdims=True)
        if not self.training:
            rm, rv = self.running_mean.reshape(1, -1, 1, 1), self.running_var.reshape(1, -1, 1, 1)
            return self.weight.data.reshape(1, -1, 1, 1) * (x - rm) / np.sqrt(rv + self.eps) \\
                + self.bias.data.reshape(1, -1, 1, 1)
        m = x.size // x.shape[1]
        xc = x - mu
        var = (xc**2).mean(axis=(0, 2, 3), keepdims=True)
        istd = 1.0 / np.sqrt(var + self.eps)
        self._x_hat, self._istd = xc * istd, istd
        self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mu.ravel()
        self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var.ravel() * m / (m - 1)
        return self.weight.data.reshape(1, -1, 1, 1) * self._x_hat + self.bias.data.reshape(1, -1, 1, 1)
'''
AXES_2D_BWD = '''        axes = (0, 2, 3)
        self.bias.grad += grad_output.sum(axis=axes)
        self.weight.grad += (grad_output * self._x_hat).sum(axis=axes)
        dx_hat = grad_output * self.weight.data.reshape(1, -1, 1, 1)
        return self._istd * (dx_hat - dx_hat.mean(axis=axes, keepdims=True)
                             - self._x_hat * (dx_hat * self._x_hat).mean(axis=axes, keepdims=True))
'''


def alternative(alt_id: str, edit):
    return pytest.param(edit, id=alt_id)


def _compact(files):
    files[BN] = _replace_region(files[BN], STAGED_START, "        ### END SOLUTION", COMPACT)


def _bn2d_axes(files):
    text = files[BN]
    start = text.index("class BatchNorm2d")
    head, tail = text[:start], text[start:]
    tail = _replace_region(tail, "        n, c, h, w = x.shape\n", "        ### END SOLUTION", AXES_2D)
    tail = _replace_region(tail, "        n, c, h, w = grad_output.shape\n", "        ### END SOLUTION", AXES_2D_BWD)
    files[BN] = head + tail


def _dropout_binomial(files):
    files[DR] = files[DR].replace(
        MASK, "self._scale = self.rng.binomial(1, 1.0 - self.p, size=x.shape) / (1.0 - self.p)")


def _dropout_uniform_lt(files):
    files[DR] = files[DR].replace(MASK, "self._scale = np.where(self.rng.uniform(size=x.shape) < 1.0 - self.p, "
                                        "1.0 / (1.0 - self.p), 0.0)")


def _running_in_place(files):
    files[BN] = files[BN].replace(RUN_MEAN, "self.running_mean *= 1.0 - m\n        self.running_mean += m * mu") \
        .replace(RUN_VAR, "self.running_var *= 1.0 - m\n        self.running_var += m * x.var(axis=0, ddof=1)")


def _deeper_model(files):
    """Two hidden layers, BatchNorm after the ReLU, Dropout 0.1 in a nested Sequential: still the lab's model."""
    files[MD] = files[MD].replace(BUILD, (
        "    block = Sequential(Linear(256, 64, rng), ReLU(), BatchNorm1d(64))\n"
        "    return Sequential(Linear(784, 256, rng), ReLU(), BatchNorm1d(256), Sequential(Dropout(0.1, rng=rng)),\n"
        "                      block, Linear(64, 10, rng))\n"))


ALTERNATIVES = [
    alternative("compact-backward-formula", _compact),
    alternative("bn2d-with-axes-not-reshape", _bn2d_axes),
    alternative("bn2d-axes-and-compact-1d", lambda f: (_compact(f), _bn2d_axes(f))),
    alternative("dropout-mask-by-binomial", _dropout_binomial),
    alternative("dropout-mask-by-uniform-below-keep", _dropout_uniform_lt),
    alternative("running-stats-in-place-with-ddof", _running_in_place),
    alternative("deeper-model-other-order", _deeper_model),
]


@pytest.mark.parametrize("edit", ALTERNATIVES)
def test_correct_alternative_keeps_full_marks(patched_reference, request, edit) -> None:
    root = patched_reference(request.node.callspec.id, {}, lab="lab2")
    files = {name: (root / "lab2" / name).read_text() for name in (BN, DR, MD)}
    before = dict(files)
    edit(files)
    assert files != before, "the alternative did not change anything"
    for name, text in files.items():
        (root / "lab2" / name).write_text(text)
    result = grade(LAB, root, isolated=False, only=FAST)
    assert failed(result) == set(), outputs(result)


# ----------------------------------------------------------------------------- stubs

STUB_FUNCTION = {  # the first unimplemented function each case reaches
    "bn1d": "BatchNorm1d.forward", "bn2d": "BatchNorm2d.forward", "dropout": "Dropout.forward",
    "train": "BatchNorm1d.forward", "mnist": "build_model",
}


def test_untouched_stubs_score_zero_and_every_case_names_the_missing_function() -> None:
    result = grade(LAB, paths.labs_dir(), isolated=False)  # every case, MNIST included
    assert [c.name for c in result.cases] == [c.name for c in LAB.cases]
    assert result.score == 0 and result.max_score == 100
    for case in result.cases:
        function = STUB_FUNCTION[case.name.split("_")[0]]
        assert not case.passed
        assert RAISED in case.output, case.output
        assert f"NotImplementedError: {function}: not implemented yet" in case.output, case.output
