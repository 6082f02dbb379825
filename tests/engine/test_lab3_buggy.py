"""Lab 3's grader against realistic student bugs: each bug fails exactly its cases, with a message naming it.

Every bug is a patch of the reference (``patched_reference`` with lab="lab3"), graded in-process on
every case but MNIST training. For each we declare the exact set of cases that must fail and, per
failing case, substrings of the failure message that point at the bug. Slow tests: a Conv2d
written with loops is stopped by fit_mnist's time budget with a message that says to vectorise;
the untouched stubs score 0 with every case naming the missing function.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import LabResult, grade

LAB = load_cases("lab3", paths.tests_dir())
POINTS = {c.name: c.points for c in LAB.cases}
MNIST = "mnist_accuracy"
FAST = [c.name for c in LAB.cases if c.name != MNIST]
FAST_MAX = 100 - POINTS[MNIST]

# Reference lines the patches replace (each must occur exactly once in its file).
OUT_SIZE = "return (size + 2 * padding - kernel) // stride + 1"
NAIVE_SUM = "out[b, k, i, j] = np.sum(patch * weight[k])"
NAIVE_BIAS = "            if bias is not None:\n                out[b, k] += bias[k]\n"
IM2COL_PAD = ("    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))\n"
              "    cols = np.empty(")
IM2COL_ALLOC = "cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)"
IM2COL_COPY = "cols[:, :, u, v] = xp["
COL2IM_ADD = "xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += cols[:, :, u, v]"
FWD_MATMUL = "out = np.matmul(self.weight.data.reshape(self.out_channels, -1), cols)"
FWD_BIAS = "out += self.bias.data[:, None]"
FWD_RETURN = "return out.reshape(n, self.out_channels, ho, wo)"
BWD_DW = "self.weight.grad += np.matmul(g, self._cols.transpose(0, 2, 1)).sum(axis=0).reshape(self.weight.data.shape)"
BWD_DB = "self.bias.grad += g.sum(axis=(0, 2))"
POOL_ADD = "+= grad_windows[u * k + v]"
MAX_BWD = "grad_windows = np.where(self._argmax == positions, grad_output, 0.0)"
MAX_WINDOWS = "win = _windows(x, self.kernel_size, self.stride)"
AVG_FWD = "return _windows(x, self.kernel_size, self.stride).mean(axis=0)"
AVG_BWD = "grad_windows = np.broadcast_to(grad_output / k2, (k2,) + grad_output.shape)"

ONE_SIDE = "padding on one side only"
UVC = "ordering a patch's entries (u, v, c)"
OVERWRITE = "col2im overwriting (=) where it must accumulate (+=)"
LAYOUT = "reading the weight as (in_channels, out_channels, kh, kw)"
FWD_ELSEWHERE = "your FORWARD computes something else"
STRIDE = "the stride ignored in backward"
MAX_OVERWRITE = "overwriting (=) where overlapping windows must add (+=)"
RAISED = "your code raised an error"
EVERY_ENTRY = "to every entry of the window instead of only to its maximum"
FWD_CASES = ("conv_forward", "conv_forward_strided", "conv_forward_batch_of_one", "conv_forward_twice")
FWD_IM2COL = "cols = im2col(x, self.kernel_size, self.stride, self.padding)"
STALE = "the second forward returned the first one's output"


def bug(bug_id: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, list[str]]):
    """One bug: its patches, and {case expected to fail: substrings its message must contain}."""
    return pytest.param(patches, fails, id=bug_id)


BUGS = [
    # Conv2d's forward and gradients are judged given the student's own im2col (and dL/dx given their col2im):
    # an im2col or col2im bug is charged in that function's cases only.
    bug("padding-one-side", {"conv.py": [(IM2COL_PAD, "    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding))\n"
                                                      "    xp[:, :, :h, :w] = x\n    cols = np.empty(")]}, {
        "im2col": ["im2col(x, kernel_size, stride, padding)", ONE_SIDE],
    }),
    bug("im2col-patch-order-uvc", {"conv.py": [
        (IM2COL_ALLOC, "cols = np.empty((n, kh, kw, c, ho, wo), dtype=x.dtype)"),
        (IM2COL_COPY, "cols[:, u, v] = xp["),
    ]}, {
        "im2col": [UVC, "channel first"], "im2col_strided": [UVC, "channel first"],
    }),
    # both earlier functions wrong at once: each is charged in its own cases, no Conv2d case loses a point
    bug("im2col-and-col2im-both-wrong", {"conv.py": [
        (IM2COL_PAD, "    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding))\n    xp[:, :, :h, :w] = x\n"
                     "    cols = np.empty("),
        (COL2IM_ADD, COL2IM_ADD.replace("+=", "="))]}, {
        "im2col": [ONE_SIDE], "col2im": [OVERWRITE], "col2im_no_padding": [OVERWRITE],
    }),
    bug("conv-forward-reuses-stale-columns", {"conv.py": [
        (FWD_IM2COL, "cols = self._cols if self._cols is not None else " + FWD_IM2COL.removeprefix("cols = "))]}, {
        "conv_forward_twice": [STALE],
    }),
    # a "cache" keyed by the input's shape (0.1125 on MNIST, scripts/lab3_broken_models.py): caught in a second
    bug("conv-forward-caches-columns-per-shape", {"conv.py": [
        (FWD_IM2COL, "cols = self._cols if self._x_shape == x.shape else " + FWD_IM2COL.removeprefix("cols = "))]}, {
        "conv_forward_twice": [STALE],
    }),
    bug("maxpool-backward-raises", {"pooling.py": [(MAX_BWD, MAX_BWD.replace("self._argmax", "self._arg_max"))]}, {
        # forward's own case keeps its points: it never calls backward; the error's own text names the bug
        **{case: [RAISED, "in backward", "AttributeError: 'MaxPool2d' object has no attribute '_arg_max'"]
           for case in ("maxpool_backward", "maxpool_overlapping")},
    }),
    bug("output-reshape-order", {"conv.py": [
        (FWD_MATMUL, "out = np.matmul(cols.transpose(0, 2, 1), self.weight.data.reshape(self.out_channels, -1).T)"),
        (FWD_BIAS, "out += self.bias.data"),
    ]}, {
        # the backward cases are judged given the student's own forward: their backward is right, so they pass
        **{case: ["a wrong reshape order after im2col: an (N, Ho*Wo, F) product reshaped straight"]
           for case in FWD_CASES},
        "conv_gradients_accumulate": ["a wrong reshape order"],  # its Conv2d(bias=False) forward check
    }),
    bug("col2im-overwrites", {"conv.py": [(COL2IM_ADD, COL2IM_ADD.replace("+=", "="))]}, {
        "col2im": ["col2im(cols, x_shape, kernel_size, stride, padding)", OVERWRITE],
        "col2im_no_padding": [OVERWRITE],
    }),
    bug("col2im-ignores-stride", {"conv.py": [
        (COL2IM_ADD, "xp[:, :, u:u + ho, v:v + wo] += cols[:, :, u, v]")]}, {
        "col2im_no_padding": [STRIDE],  # public at stride 2 since col2im's stride-1 case cannot see it
    }),
    bug("weight-layout-in-out", {"conv.py": [
        (FWD_MATMUL, "out = np.matmul(self.weight.data.transpose(1, 0, 2, 3).reshape(self.out_channels, -1), cols)"),
    ]}, {
        **{case: [LAYOUT, "(out_channels, in_channels, kh, kw)"] for case in FWD_CASES},
        "conv_gradients_accumulate": [LAYOUT],
    }),
    bug("bias-grad-wrong-axes", {"conv.py": [(BWD_DB, "self.bias.grad += g.sum(axis=(1, 2))")]}, {
        # N = F in every backward case: the (N,) sum fits into bias.grad, so only bias.grad's own case sees it
        "conv_backward_bias": ["Conv2d.backward: bias.grad", "summing over the wrong axes", "axes (0, 2, 3)"],
    }),
    bug("bias-grad-averaged", {"conv.py": [(BWD_DB, "self.bias.grad += g.mean(axis=0).sum(axis=1)")]}, {
        # accumulation is judged against the student's own one-pass gradient: averaged, it still doubles
        "conv_backward_bias": ["averaging over the batch (mean) instead of summing"],
    }),
    bug("weight-grad-averaged", {"conv.py": [(BWD_DW, BWD_DW + " / n")]}, {
        "conv_backward_weight": ["averaging over the batch (the 1/N belongs to the loss"],
    }),
    bug("weight-grad-overwritten", {"conv.py": [(BWD_DW, BWD_DW.replace("+=", "=", 1))]}, {
        "conv_gradients_accumulate": ["overwriting the gradient (grad = ...) instead of accumulating",
                                      "backward adds into .grad"],
    }),
    bug("maxpool-grad-to-every-entry", {"pooling.py": [
        (MAX_BWD, "grad_windows = np.broadcast_to(grad_output, (self.kernel_size ** 2,) + grad_output.shape)")]}, {
        "maxpool_backward": ["MaxPool2d.backward: dL/dx", EVERY_ENTRY],
        "maxpool_overlapping": [EVERY_ENTRY],
    }),
    bug("pool-windows-overwrite", {"pooling.py": [(POOL_ADD, POOL_ADD.replace("+=", "="))]}, {
        "maxpool_overlapping": ["MaxPool2d(3, stride=2).backward", MAX_OVERWRITE],
        "avgpool_backward": ["AvgPool2d.backward", "overwriting (=) where overlapping windows must add (+=): an "
                             "entry that belongs to two windows"],
    }),
    bug("avgpool-missing-1-over-k2", {"pooling.py": [(AVG_BWD, "grad_windows = np.broadcast_to(grad_output, "
                                                               "(k2,) + grad_output.shape)")]}, {
        "avgpool_backward": ["AvgPool2d.backward", "leaving out the 1/(k*k) of the mean"],
    }),
    bug("avgpool-sum-not-mean", {"pooling.py": [(AVG_FWD, AVG_FWD.replace(".mean(", ".sum("))]}, {
        # backward is right for a mean, and judged given the student's own forward: only the forward's case fails
        "avgpool_forward": ["the window's sum instead of its mean"],
    }),
    bug("naive-flips-kernel", {"conv.py": [(NAIVE_SUM, NAIVE_SUM.replace("weight[k]", "weight[k, :, ::-1, ::-1]"))]}, {
        **{case: ["conv2d_naive(x, weight, bias, stride, padding)", "flipping the kernel (a true convolution)"]
           for case in ("conv2d_naive", "conv2d_naive_strided")},
    }),
    bug("naive-without-bias", {"conv.py": [(NAIVE_BIAS, "")]}, {
        "conv2d_naive": ["leaving out the bias"], "conv2d_naive_strided": ["leaving out the bias"],
    }),
    # a combination of two known mistakes: the engine tries pairs of a check's mistakes
    bug("naive-flipped-kernel-and-no-bias", {"conv.py": [
        (NAIVE_SUM, NAIVE_SUM.replace("weight[k]", "weight[k, :, ::-1, ::-1]")), (NAIVE_BIAS, "")]}, {
        case: ["matches two known mistakes at once", "leaving out the bias", "flipping the kernel"]
        for case in ("conv2d_naive", "conv2d_naive_strided")
    }),
    # an error no known mistake matches, said in the formula's own terms (DWEIGHT_TERMS in cases.py): a loop over
    # the batch that overwrites its product, so only the last image's gradient is left
    bug("weight-grad-last-image-only", {"conv.py": [(BWD_DW, (
        "for b in range(n):\n            dw = np.matmul(g[b], self._cols[b].T)\n"
        "        self.weight.grad += dw.reshape(self.weight.data.shape)"))]}, {
        "conv_backward_weight": ["fitted term by term to dL/dW", "the sum over the batch's other images (n < N-1), "
                                 "which is missing"],
    }),
    # a regime bug: hidden variants of maxpool_forward use stride < kernel, and so does the public maxpool_overlapping
    bug("maxpool-forward-ignores-stride", {"pooling.py": [
        (MAX_WINDOWS, MAX_WINDOWS.replace("self.stride", "self.kernel_size"))]}, {
        "maxpool_overlapping": ["the windows stepped by the kernel size, the stride ignored"],
    }),
    # the pooling forward cases never call backward: a backward crash costs the backward cases only
    bug("avgpool-backward-raises", {"pooling.py": [(AVG_BWD, AVG_BWD.replace("output.shape", "output.shap"))]}, {
        "avgpool_backward": [RAISED, "in backward", "'numpy.ndarray' object has no attribute 'shap'"],
    }),
    bug("output-size-ceil", {"conv.py": [(OUT_SIZE, "return -(-(size + 2 * padding - kernel) // stride) + 1")]}, {
        # only where the stride does not divide H + 2P - k does ceil differ from floor: in no other case
        "conv_output_size": ["rounding up (ceil) instead of down"],
    }),
]


def outputs(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def failed(result: LabResult) -> set[str]:
    return {c.name for c in result.cases if not c.passed}


def test_lab3_points() -> None:
    assert LAB.max_score == 100 and POINTS[MNIST] == 12


def test_unpatched_reference_passes_every_fast_case(grade_bug) -> None:
    """The control: a copy of the reference with no patch scores full marks."""
    grade_bug(LAB, "reference", {}, {}, FAST)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("patches", "fails"), BUGS)
def test_bug_fails_exactly_its_cases_with_a_message_naming_it(grade_bug, request, patches, fails) -> None:
    grade_bug(LAB, request.node.callspec.id, patches, fails, FAST)


def _geometries(inputs: dict) -> list[tuple[int, int, int, int]]:
    """(size, kernel, stride, padding) along each spatial axis of a case's inputs ([] for no window)."""
    import numpy as np

    if "weight" in inputs:
        kernel = inputs["weight"].shape[2:]
    elif "kernel" in inputs:
        kernel = np.broadcast_to(np.asarray(inputs["kernel"]), (2,))
    else:
        return []
    stride, padding = int(inputs["stride"]), int(inputs.get("padding", 0))
    return [(int(inputs["x"].shape[2 + a]), int(kernel[a]), stride, padding) for a in range(2)]


def test_only_conv_output_size_depends_on_how_the_output_size_is_rounded() -> None:
    """Every other case, public and hidden variants, has the stride dividing H + 2P - k: floor = ceil there,
    so a conv_output_size that rounds up costs conv_output_size's points only (a bug costs points once)."""
    import numpy as np

    size_case = LAB.get("conv_output_size")
    grid = size_case.make_inputs(np.random.default_rng(0))["grid"]
    assert any((s + 2 * p - k) % st for s, k, st, p in grid), "conv_output_size itself must test the rounding"
    assert any((s - k) % st and p == 0 and st > 1 for s, k, st, p in grid), "pooling shapes (no padding) too"
    checked = 0
    for case in LAB.cases:
        if case.name in ("conv_output_size", MNIST):
            continue
        for maker in (case.make_inputs, *case.hidden_inputs):
            for size, kernel, stride, padding in _geometries(maker(np.random.default_rng(0))):
                assert (size + 2 * padding - kernel) % stride == 0, (case.name, size, kernel, stride, padding)
                checked += 1
    assert checked > 100


COL2IM_SETS = (COL2IM_ADD, COL2IM_ADD.replace("+=", "="))
DCOLS = "dcols = np.matmul(self.weight.data.reshape(f, -1).T, g)"


def test_a_wrong_dx_is_still_caught_when_col2im_is_wrong_too(patched_reference) -> None:
    """Judged given the student's col2im, a backward that is wrong on its own (the kernel flipped in dL/dcols)
    still fails, and the message says col2im differs but the failure is Conv2d.backward's own."""
    root = patched_reference("col2im-and-flipped-dx", {"conv.py": [
        COL2IM_SETS, (DCOLS, DCOLS.replace("self.weight.data.reshape", "self.weight.data[:, :, ::-1, ::-1].reshape"))]},
        lab="lab3")
    result = grade(LAB, root, isolated=False, only=FAST)
    out = outputs(result)
    assert failed(result) == {"col2im", "col2im_no_padding", "conv_backward_input",
                              "conv_backward_input_nonoverlapping"}, out
    assert "note: your col2im differs from the reference here" in out["conv_backward_input"], out
    assert "so the failure above is in conv_backward_input's own logic" in out["conv_backward_input"]
    # no overlap there: col2im's overwriting cannot matter, so the flip is named as usual
    assert "the kernel flipped in backward" in out["conv_backward_input_nonoverlapping"]


@pytest.mark.parametrize(("patch", "function", "cases"), [
    (COL2IM_SETS, "col2im", {"col2im", "col2im_no_padding", "conv_backward_input"}),
    ((IM2COL_PAD, "    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding))\n    xp[:, :, :h, :w] = x\n"
                  "    cols = np.empty("), "im2col", None),
], ids=["col2im", "im2col"])
def test_without_the_instructor_module_dx_says_which_earlier_function_to_fix(
        patched_reference, monkeypatch, patch, function, cases) -> None:
    """A student's local run (no solutions/): Conv2d's dL/dx cannot be judged given their col2im or im2col, so
    it fails with a message naming the earlier function that differs, and only that one."""
    from grader.judging import given

    monkeypatch.setattr(given, "load_instructor", lambda lab: None)
    root = patched_reference(f"release-{function}", {"conv.py": [patch]}, lab="lab3")
    result = grade(LAB, root, isolated=False, only=FAST)
    out = outputs(result)
    if cases is not None:
        assert failed(result) == cases, out
    message = out["conv_backward_input"]
    assert f"conv_backward_input is computed through your {function}" in message, message
    assert f"fix {function} first" in message
    other = {"col2im": "im2col", "im2col": "col2im"}[function]
    assert other not in message.split("Graded")[0]


# The regimes a function's cases exercise: (stride > 1, padding > 0) for convolutions, and whether patches or
# windows overlap (kernel > stride) where that changes the result (col2im, dL/dx, pooling).
FAMILIES = {
    "im2col": (("im2col", "im2col_strided"), ("stride", "padding")),
    "col2im": (("col2im", "col2im_no_padding"), ("stride", "padding", "overlap")),
    "Conv2d.forward": (("conv_forward", "conv_forward_strided", "conv_forward_batch_of_one", "conv_forward_twice"),
                       ("stride", "padding")),
    "conv2d_naive": (("conv2d_naive", "conv2d_naive_strided"), ("stride", "padding")),
    "dL/dx": (("conv_backward_input", "conv_backward_input_nonoverlapping"), ("stride", "padding", "overlap")),
    "weight.grad": (("conv_backward_weight",), ("stride", "padding")),
    "bias.grad": (("conv_backward_bias",), ("stride", "padding")),
    "accumulation": (("conv_gradients_accumulate",), ("stride", "padding")),
    "MaxPool2d.forward": (("maxpool_forward", "maxpool_overlapping"), ("overlap",)),
    "MaxPool2d.backward": (("maxpool_backward", "maxpool_overlapping"), ("overlap",)),
    "AvgPool2d.forward": (("avgpool_forward",), ("overlap",)),
    "AvgPool2d.backward": (("avgpool_backward",), ("overlap",)),
}


def _regime(inputs: dict, features: tuple[str, ...]) -> set[tuple[str, bool]]:
    [(_, kh, stride, padding), (_, kw, _, _)] = _geometries(inputs)
    values = {"stride": stride > 1, "padding": padding > 0, "overlap": max(kh, kw) > stride}
    return {(f, values[f]) for f in features}


def test_every_regime_a_hidden_variant_tests_has_a_public_case() -> None:
    """A student who passes every public case sees no regime for the first time in grading: each (feature, value)
    of a hidden variant (stride 1 or more, padding or none, overlapping or not) is in a public case of the same
    function. Hidden variants differ in values, shapes and hyperparameter values only."""
    import numpy as np

    assert {c for cases, _ in FAMILIES.values() for c in cases} == {
        c.name for c in LAB.cases if c.name not in ("conv_output_size", "flatten", MNIST)}
    for family, (names, features) in FAMILIES.items():
        public: set[tuple[str, bool]] = set()
        hidden: dict[tuple[str, bool], str] = {}
        for name in names:
            case = LAB.get(name)
            public |= _regime(case.make_inputs(np.random.default_rng(0)), features)
            for maker in case.hidden_inputs:
                hidden.update(dict.fromkeys(_regime(maker(np.random.default_rng(0)), features), name))
        missing = {regime: name for regime, name in hidden.items() if regime not in public}
        assert not missing, f"{family}: hidden-only regimes {missing}"


def test_every_conv_backward_case_has_as_many_images_as_filters() -> None:
    """N = F in every case that runs Conv2d.backward, public and hidden: a bias gradient summed over the wrong
    axes then has bias.grad's shape, so it costs conv_backward_bias's points only (bias-grad-wrong-axes above)."""
    import numpy as np

    backward = [c for c in LAB.cases if c.name.startswith("conv_backward") or c.name == "conv_gradients_accumulate"]
    assert len(backward) == 5
    for case in backward:
        for maker in (case.make_inputs, *case.hidden_inputs):
            inputs = maker(np.random.default_rng(0))
            assert len(inputs["x"]) == len(inputs["weight"]), (case.name, inputs["x"].shape, inputs["weight"].shape)


def test_at_least_twelve_distinct_bugs() -> None:
    ids = [p.id for p in BUGS]
    assert len(ids) == len(set(ids)) >= 12


@pytest.mark.slow
def test_loop_convolution_is_stopped_by_the_time_budget_with_a_message_to_vectorise(patched_reference) -> None:
    """A correct Conv2d.forward written with loops (conv2d_naive) fails MNIST fast and says why."""
    root = patched_reference("loops", {"conv.py": [(FWD_RETURN, (
        "return conv2d_naive(x, self.weight.data, None if self.bias is None else self.bias.data, "
        "self.stride, self.padding)"))]}, lab="lab3")
    result = grade(LAB, root, isolated=False, only=[MNIST, "conv_forward"])
    out = outputs(result)
    assert failed(result) == {MNIST}, out  # the loops are correct: forward still earns its points
    message = out[MNIST]
    for needle in (RAISED, "TrainingTooSlow: fit_mnist stopped: one training step", "the budget is 60 s",
                   "Vectorise your layers", "forward CPU time per layer on that batch: Conv2d"):
        assert needle in message, message
    assert result.cases[0].seconds < 120, "the budget check must stop training within its first steps"


STUB_FUNCTION = {  # the first unimplemented function each case reaches
    "conv_output_size": "conv_output_size", "im2col": "im2col", "col2im": "col2im",
    "im2col_strided": "im2col", "col2im_no_padding": "col2im", "conv2d_naive_strided": "conv2d_naive",
    "conv2d_naive": "conv2d_naive", "maxpool_forward": "MaxPool2d.forward", "maxpool_backward": "MaxPool2d.forward",
    "maxpool_overlapping": "MaxPool2d.forward", "avgpool_forward": "AvgPool2d.forward",
    "avgpool_backward": "AvgPool2d.forward", "flatten": "Flatten.forward", MNIST: "build_cnn",
}


@pytest.mark.slow
def test_untouched_stubs_score_zero_and_every_case_names_the_missing_function() -> None:
    result = grade(LAB, paths.labs_dir(), isolated=False)  # every case, MNIST included
    assert [c.name for c in result.cases] == [c.name for c in LAB.cases]
    assert result.score == 0 and result.max_score == 100
    for case in result.cases:
        function = STUB_FUNCTION.get(case.name, "Conv2d.forward")
        assert not case.passed
        assert RAISED in case.output, case.output
        assert f"NotImplementedError: {function}: not implemented yet" in case.output, case.output


@pytest.mark.sandbox
def test_isolated_grading_runs_the_hidden_variants_and_names_the_same_bug(patched_reference, sandbox) -> None:
    """In the sandbox, with the hidden seeds and their other configurations: the reference keeps every
    point, and col2im overwriting still fails exactly its two cases, named, on every variant (Conv2d's dL/dx is
    judged given the student's own col2im)."""
    reference = grade(LAB, patched_reference("reference-isolated", {}, lab="lab3"), isolated=True, only=FAST)
    assert failed(reference) == set(), outputs(reference)
    assert reference.score == FAST_MAX
    root = patched_reference("overwrite-isolated", {"conv.py": [(COL2IM_ADD, COL2IM_ADD.replace("+=", "="))]},
                             lab="lab3")
    result = grade(LAB, root, isolated=True, only=FAST)
    out = outputs(result)
    assert failed(result) == {"col2im", "col2im_no_padding"}, out
    assert OVERWRITE in out["col2im"] and OVERWRITE in out["col2im_no_padding"]
    assert result.score == FAST_MAX - POINTS["col2im"] - POINTS["col2im_no_padding"]


# ----------------------------------------------------------------------------- the trained model's structure


def test_mnist_case_fails_a_linear_model_and_passes_a_nonlinear_one() -> None:
    """The structural check of mnist_accuracy, on real models without training: an affine model (no
    nonlinearity, e.g. a CNN whose ReLUs were left out, with average pooling) fails it with a message that
    says so, whatever its accuracy; the reference architecture, untrained, passes it."""
    import numpy as np

    from grader.data import mnist
    from grader.judging.compare import evaluate
    from grader.runner import reference

    if not (paths.solutions_dir() / "lab3").is_dir():
        pytest.skip("no solutions/ (student release)")
    lab3 = reference("lab3")
    case = LAB.get(MNIST)
    split = mnist.load_mnist()
    x = lab3.preprocess(split.test_images[:32])
    rng = np.random.default_rng(0)
    linear = lab3.Sequential(lab3.Conv2d(1, 4, 3, padding=1, rng=rng), lab3.AvgPool2d(2), lab3.Flatten(),
                             lab3.Linear(4 * 14 * 14, 10, rng))
    cnn = lab3.build_cnn(np.random.default_rng(0))
    inputs = {"test_labels": split.test_labels}
    perfect = {"predictions": split.test_labels}
    from_case = case.run.__globals__["_nonlinearity"]  # the measure the case's run applies to the trained model
    for model, passes in ((linear, False), (cnn, True)):
        model.eval()
        messages = evaluate(case, inputs, {**perfect, "nonlinearity": np.array(from_case(model, x))}, {})
        assert (messages == []) is passes, messages
        if not passes:
            [msg] = messages
            assert "your trained model is linear (affine) in its input" in msg and "put a ReLU" in msg, msg


@pytest.mark.slow
def test_a_trained_cnn_without_nonlinearity_loses_the_mnist_points_with_a_message_saying_why(patched_reference) -> None:
    """build_cnn with no ReLU and average pooling: an affine map of the pixels, trained by the real fit_mnist."""
    root = patched_reference("affine-cnn", {"cnn.py": [(
        "        Conv2d(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),\n"
        "        Conv2d(8, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),\n"
        "        Flatten(), Linear(16 * 7 * 7, 64, rng), ReLU(), Linear(64, 10, rng),\n",
        "        Conv2d(1, 8, 3, padding=1, rng=rng), AvgPool2d(2),\n"
        "        Conv2d(8, 16, 3, padding=1, rng=rng), AvgPool2d(2),\n"
        "        Flatten(), Linear(16 * 7 * 7, 64, rng), Linear(64, 10, rng),\n"),
        ("from .pooling import Flatten, MaxPool2d", "from .pooling import AvgPool2d, Flatten, MaxPool2d")]}, lab="lab3")
    result = grade(LAB, root, isolated=False, only=[MNIST])
    [case] = result.cases
    assert not case.passed, case.output
    assert "your trained model is linear (affine) in its input" in case.output, case.output


def test_a_given_with_several_earlier_functions_names_one_per_output() -> None:
    from grader.judging.case import Given

    given = Given("im2col", ("cols_used", "col2im_used"), "given.conv_dx", functions=("im2col", "col2im"))
    assert [given.function_of(o) for o in given.outputs] == ["im2col", "col2im"]
    assert Given("box_iou", ("iou_used",), "given.nms").function_of("iou_used") == "box_iou"
    with pytest.raises(ValueError, match="one function per output"):
        Given("im2col", ("cols_used", "col2im_used"), "given.conv_dx", functions=("im2col",))


def test_a_case_passed_given_the_students_own_forward_says_so_not_that_it_matches_the_reference(
        patched_reference) -> None:
    """A wrong reshape order in forward only: the backward cases are judged given the student's own forward
    output, pass, and their report says what they were judged against (the GradCheck was left out)."""
    root = patched_reference("reshape-order-passes", {"conv.py": [
        (FWD_MATMUL, "out = np.matmul(cols.transpose(0, 2, 1), self.weight.data.reshape(self.out_channels, -1).T)"),
        (FWD_BIAS, "out += self.bias.data")]}, lab="lab3")
    backward = ["conv_backward_input", "conv_backward_input_nonoverlapping", "conv_backward_weight",
                "conv_backward_bias"]
    result = grade(LAB, root, isolated=False, only=backward)
    assert failed(result) == set(), outputs(result)
    for case in result.cases:
        assert case.output.startswith("passed: judged given your own Conv2d.forward's results, which differ"), \
            case.output
        assert "costs points in Conv2d.forward's own cases" in case.output
        assert "numerical gradient" not in case.output
