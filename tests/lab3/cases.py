"""Lab 3 cases: convolution (naive and im2col), pooling, Flatten, and a CNN on MNIST.

Each case's run function is the only code that touches the implementation (``lab`` is the
imported lab package); what it returns is judged by the grader against the reference
(``Close``), against a numerical gradient of the same implementation (``GradCheck``), or against
held-out labels (``Accuracy``). See labs/lab3/README.md for the table of cases and points.

Conventions that the inputs follow:
  * float64 everywhere; random upstream gradients (never all ones);
  * C_in != C_out, H != W and rectangular kernels wherever the point is not something else, so a
    swapped axis is a shape error or a visible value error;
  * hidden variants change the configuration (batch of one, stride, padding, kernel shape), not
    only the random values;
  * max-pooling inputs have no ties: every value of an input differs from every other by >= 0.04,
    far more than the numerical gradient's step (1e-6).
  * outside conv_output_size's own case, the stride divides H + 2P - k along every axis, so the
    output size does not depend on rounding: a conv_output_size that rounds up costs its own
    case's points only, not those of every layer built on it;
  * in every Conv2d backward case the batch size N equals the number of filters F, so a bias
    gradient summed over the wrong axes (shape (N,)) fits into bias.grad and costs only
    conv_backward_bias's points, instead of crashing every backward case.

Predictions of known mistakes that need the solution's math (a convolution, col2im, pooling masks)
are computed by the instructor-only solutions/lab3/instructor/mistakes.py, named here by key:
``Mistake(description, instructor(key))`` (grader/judging/case.py); the public seeds' predictions are in
fixtures/public.npz. Those left here are transforms of the expected array or of the inputs.
"""

from __future__ import annotations

from collections.abc import Callable
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

LAB = Lab("lab3", "Lab 3: convolution and pooling, naive and fast, and a CNN on MNIST")

# The MNIST threshold: the reference's worst held-out accuracy over seeds 0-4, measured by
# `python scripts/measure_accuracy.py --lab lab3` (quoted in the handout), minus a 0.01 margin for
# other reasonable architectures and hyperparameters (rounded down to 0.955); a point above Lab 1's
# MLP (mean 0.9453, worst 0.9425).
ACCURACY_THRESHOLD = 0.955
REFERENCE_ACCURACY = ("the reference CNN (conv 8 -> pool -> conv 16 -> pool -> linear 64 -> linear 10, 8 epochs of "
                      "SGD, lr 0.1, batch 32) reaches 0.9719 on average over seeds 0-4 (worst 0.9655); "
                      "Lab 1's MLP: 0.9453")

Maker = Callable[[np.random.Generator], Arrays]

# ----------------------------------------------------------------------------- output sizes


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """How many windows fit (PyTorch's floor rule, as the handout states): the shapes of the inputs."""
    return len(range(0, size + 2 * padding - kernel + 1, stride))


# ----------------------------------------------------------------------------- inputs


def conv_inputs(n: int, c: int, h: int, w: int, f: int, kernel: tuple[int, int], stride: int,
                padding: int) -> Maker:
    """x (N, C, H, W), weight (F, C, kh, kw), bias (F,), a random upstream dout (N, F, Ho, Wo)."""
    kh, kw = kernel
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)

    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal((n, c, h, w)),
                "weight": rng.standard_normal((f, c, kh, kw)) / np.sqrt(c * kh * kw),
                "bias": rng.standard_normal(f), "dout": rng.standard_normal((n, f, ho, wo)),
                "stride": np.array(stride), "padding": np.array(padding)}
    return make


def pool_inputs(n: int, c: int, h: int, w: int, k: int, stride: int) -> Maker:
    """Tie-free x: a random permutation of values 0.05 apart (plus jitter < 0.01), and dout."""
    ho, wo = out_size(h, k, stride, 0), out_size(w, k, stride, 0)

    def make(rng: np.random.Generator) -> Arrays:
        size = n * c * h * w
        values = (rng.permutation(size) - size / 2) * 0.05 + rng.uniform(0.0, 0.01, size)
        return {"x": values.reshape(n, c, h, w), "dout": rng.standard_normal((n, c, ho, wo)),
                "kernel": np.array(k), "stride": np.array(stride)}
    return make


def col2im_inputs(n: int, c: int, h: int, w: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    kh, kw = kernel
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)

    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal((n, c, h, w)), "cols": rng.standard_normal((n, c * kh * kw, ho * wo)),
                "kernel": np.array(kernel), "stride": np.array(stride), "padding": np.array(padding)}
    return make


# ----------------------------------------------------------------------------- building layers


def _kernel_arg(kh: int, kw: int) -> int | tuple[int, int]:
    """Square kernels are passed as an int, rectangular ones as a pair: both forms are graded."""
    return kh if kh == kw else (kh, kw)


def make_conv(lab: ModuleType, weight: np.ndarray, bias: np.ndarray | None, stride: Any, padding: Any) -> Any:
    """A Conv2d of the implementation with the given parameters (bias None: bias=False)."""
    f, c, kh, kw = weight.shape
    conv = lab.Conv2d(c, f, _kernel_arg(kh, kw), stride=int(stride), padding=int(padding), bias=bias is not None,
                      rng=np.random.default_rng(0))
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            continue
        param = getattr(conv, name, None)
        if param is None or not hasattr(param, "data"):
            raise ConventionError(f"Conv2d has no Parameter attribute '{name}' (the provided __init__ "
                                  "creates self.weight and self.bias)")
        if param.data.shape != value.shape:
            raise ConventionError(
                f"Conv2d({c}, {f}, {(kh, kw)}).{name} has shape {param.data.shape}; the convention is "
                + ("(out_channels, in_channels, kh, kw) = " if name == "weight" else "(out_channels,) = ")
                + f"{value.shape}, as in PyTorch")
        param.data[...] = value
    return conv


def _cols_used(lab: ModuleType, x: np.ndarray, weight: np.ndarray, stride: Any, padding: Any) -> Arrays:
    """The student's im2col on the case's input, which their Conv2d computes through ({} if it
    raises: a Conv2d that does not call im2col is judged on its own; im2col's case reports the error)."""
    try:
        return {"cols_used": np.asarray(lab.im2col(x, weight.shape[2:], int(stride), int(padding)), dtype=np.float64)}
    except Exception:  # noqa: BLE001 - any failure of the earlier function is its own case's business
        return {}


def _given_im2col(key: str) -> Given:
    """Conv2d judged given the student's own im2col (grader/judging/given.py): a wrong im2col is
    charged in im2col's cases, and Conv2d's cases pass when Conv2d is right about its columns."""
    return Given("im2col", ("cols_used",), key)


def _describe_conv(stride: int, padding: int, n: int, kernel: tuple[int, int]) -> str:
    return f"stride {stride}, " + (f"padding {padding}" if padding else "no padding") + \
        f", N={n}, {kernel[0]}x{kernel[1]} kernel"


def conv_variant(n: int, c: int, h: int, w: int, f: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    """A hidden variant's conv inputs, described for its failure message."""
    return described(_describe_conv(stride, padding, n, kernel), conv_inputs(n, c, h, w, f, kernel, stride, padding))


def _pool(lab: ModuleType, cls: str, kernel: Any, stride: Any) -> Any:
    return getattr(lab, cls)(int(kernel), int(stride))


# ----------------------------------------------------------------------------- known mistakes


def _conv_mistakes(with_layout: bool = True, output: str = "y", with_bias: bool = True) -> tuple[Mistake, ...]:
    """Forward mistakes for the checked ``output`` (computed with the bias, or without it for
    Conv2d(..., bias=False)): instructor predictions from the inputs, or transforms of the expected array."""
    family = "conv" if with_bias else "conv_nobias"
    mistakes = [
        Mistake("leaving out the bias", instructor(f"{family}.no_bias")),
        Mistake("flipping the kernel (a true convolution): PyTorch's Conv2d, and this lab, compute a "
                "cross-correlation, sum x[S*i + u, S*j + v] * w[u, v], without flipping",
                instructor(f"{family}.flipped")),
        Mistake("padding on one side only: x copied into the top-left corner of the padded array "
                "(2P zeros after it, none before); the P zeros go on every side: xp[:, :, P:P+H, P:P+W] = x",
                instructor(f"{family}.pad_after")),
        Mistake("padding on one side only (2P zeros before x, none after); the P zeros go on every side",
                instructor(f"{family}.pad_before")),
        Mistake("a wrong reshape order after im2col: the (F, N*Ho*Wo) product reshaped straight to "
                "(N, F, Ho, Wo); reshape to (F, N, Ho, Wo) first, then transpose the axes",
                lambda i, e: e[output].transpose(1, 0, 2, 3).reshape(e[output].shape)),
        Mistake("a wrong reshape order after im2col: an (N, Ho*Wo, F) product reshaped straight to "
                "(N, F, Ho, Wo); transpose to (N, F, Ho*Wo) before reshaping",
                lambda i, e: e[output].transpose(0, 2, 3, 1).reshape(e[output].shape)),
        Mistake("im2col ordering a patch's entries (u, v, c) while weight.reshape(F, -1) is ordered (c, u, v): "
                "the column layout must be channel first, as torch.nn.functional.unfold", instructor(f"{family}.uvc")),
    ]
    if with_layout:
        mistakes.append(Mistake(
            "reading the weight as (in_channels, out_channels, kh, kw) (e.g. weight.transpose(1, 0, 2, 3) "
            "before the reshape): the layout is PyTorch's (out_channels, in_channels, kh, kw)",
            instructor(f"{family}.layout")))
    return tuple(mistakes)


CONV_FORWARD_MISTAKES = _conv_mistakes()
OVERWRITE_OFFSETS = "col2im overwriting (=) where it must accumulate (+=): with stride < kernel, patches overlap " \
                    "and an input pixel receives the sum of the gradients of every patch that contains it"
STRIDE_IGNORED = "the stride ignored in backward (col2im slices with step 1 instead of step S)"
DX_MISTAKES = (
    Mistake(OVERWRITE_OFFSETS, instructor("conv_dx.set_offsets")),
    Mistake(OVERWRITE_OFFSETS, instructor("conv_dx.set_patches")),
    Mistake(STRIDE_IGNORED, instructor("conv_dx.stride_ignored")),
    Mistake("the kernel flipped in backward (or not flipped in forward): dx must use the same cross-correlation "
            "weights as forward", instructor("conv_dx.flipped")),
)

# ----------------------------------------------------------------------------- output size, im2col, col2im

# The only case where rounding the output size matters: every other case, public or hidden, uses sizes where the
# stride divides H + 2P - k (floor = ceil; tests/engine/test_lab3_buggy.py checks it), so a conv_output_size that
# rounds up costs points here only. Rows of (size, kernel, stride, padding); the last public rows are pooling's
# shapes (no padding): MaxPool2d(2) on an odd size, MaxPool2d(3, stride=2) on an even one.
SIZE_GRIDS = {
    "public": [(5, 3, 1, 0), (5, 3, 1, 1), (7, 3, 2, 1), (8, 3, 2, 1), (9, 2, 3, 2), (28, 5, 1, 2), (6, 6, 1, 0),
               (10, 3, 3, 0), (11, 4, 2, 1), (7, 2, 2, 0), (8, 3, 2, 0), (9, 2, 1, 0)],
    "v0": [(4, 2, 1, 0), (6, 3, 2, 0), (7, 2, 2, 2), (13, 5, 3, 1), (28, 3, 2, 1), (9, 4, 4, 0)],
    "v1": [(3, 3, 1, 1), (12, 5, 2, 2), (8, 2, 3, 1), (15, 4, 3, 0), (20, 7, 5, 3)],
}


def size_inputs(grid: str) -> Maker:
    return lambda rng: {"grid": np.array(SIZE_GRIDS[grid], dtype=np.int64)}


@LAB.case(points=2, inputs=size_inputs("public"), hidden_inputs=(size_inputs("v0"), size_inputs("v1")), checks=[
    Close("sizes", "conv_output_size on a grid of (size, kernel, stride, padding)", exact=True, mistakes=(
        Mistake("rounding up (ceil) instead of down: a window that does not fit is dropped, as in PyTorch",
                lambda i, e: np.array([-(-(s + 2 * p - k) // st) + 1 for s, k, st, p in i["grid"]])),
        Mistake("adding the padding once (size + P) instead of on both sides (size + 2P)",
                lambda i, e: np.array([(s + p - k) // st + 1 for s, k, st, p in i["grid"]])),
        Mistake("forgetting the + 1", lambda i, e: e["sizes"] - 1),
    )),
])
def conv_output_size(lab, grid):
    """conv_output_size(size, kernel, stride, padding) = floor((size + 2P - kernel) / S) + 1."""
    return {"sizes": np.array([lab.conv_output_size(int(s), int(k), int(st), int(p)) for s, k, st, p in grid],
                              dtype=np.int64)}


def im2col_inputs(n: int, c: int, h: int, w: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal((n, c, h, w)), "kernel": np.array(kernel), "stride": np.array(stride),
                "padding": np.array(padding)}
    return make


def im2col_variant(n: int, c: int, h: int, w: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    return described(f"stride {stride}, " + (f"padding {padding}" if padding else "no padding")
                     + f", {kernel[0]}x{kernel[1]} kernel", im2col_inputs(n, c, h, w, kernel, stride, padding))


IM2COL_CHECKS = [
    Close("cols", "im2col(x, kernel_size, stride, padding): the columns (N, C*kh*kw, Ho*Wo)", mistakes=(
        Mistake("ordering a patch's entries (u, v, c) instead of (c, u, v): the layout is channel first, "
                "cols[n, (c*kh + u)*kw + v, i*Wo + j], as torch.nn.functional.unfold", instructor("im2col.uvc")),
        Mistake("padding on one side only (x in the top-left corner of the padded array)",
                instructor("im2col.pad_after")),
        Mistake("patches ordered column by column (j, then i) instead of row by row (i*Wo + j)",
                lambda i, e: e["cols"].reshape(e["cols"].shape[:2] + (
                    out_size(i["x"].shape[2], int(i["kernel"][0]), int(i["stride"]), int(i["padding"])), -1)
                ).transpose(0, 1, 3, 2).reshape(e["cols"].shape)),
    )),
]


@LAB.case(points=3, inputs=im2col_inputs(2, 3, 4, 5, (3, 2), 1, 1),
          hidden_inputs=(im2col_variant(1, 2, 6, 5, (3, 3), 1, 0), im2col_variant(2, 1, 7, 6, (2, 3), 1, 2)),
          checks=IM2COL_CHECKS)
def im2col(lab, x, kernel, stride, padding):
    """im2col at stride 1 with padding, on a non-square input with a rectangular kernel (unfold's layout)."""
    return {"cols": lab.im2col(x, (int(kernel[0]), int(kernel[1])), int(stride), int(padding))}


@LAB.case(points=3, inputs=im2col_inputs(2, 2, 7, 6, (3, 2), 2, 0),
          hidden_inputs=(im2col_variant(1, 2, 7, 5, (3, 3), 2, 1), im2col_variant(2, 1, 7, 8, (2, 3), 3, 2)),
          checks=IM2COL_CHECKS)
def im2col_strided(lab, x, kernel, stride, padding):
    """im2col at stride 2 without padding (7x6 input, 3x2 kernel)."""
    return {"cols": lab.im2col(x, (int(kernel[0]), int(kernel[1])), int(stride), int(padding))}


def col2im_variant(n: int, c: int, h: int, w: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    return described(f"stride {stride}, " + (f"padding {padding}" if padding else "no padding")
                     + f", {kernel[0]}x{kernel[1]} kernel", col2im_inputs(n, c, h, w, kernel, stride, padding))


COL2IM_CHECKS = [
    Close("dx", "col2im(cols, x_shape, kernel_size, stride, padding): (N, C, H, W) with overlapping patches",
          mistakes=(Mistake(OVERWRITE_OFFSETS, instructor("col2im.set_offsets")),
                    Mistake(OVERWRITE_OFFSETS, instructor("col2im.set_patches")),
                    Mistake(STRIDE_IGNORED, instructor("col2im.stride_ignored")))),
]


@LAB.case(points=4, inputs=col2im_inputs(2, 3, 5, 6, (3, 3), 1, 1),
          hidden_inputs=(col2im_variant(1, 2, 7, 6, (3, 2), 2, 1), col2im_variant(2, 2, 6, 8, (2, 3), 1, 2)),
          checks=COL2IM_CHECKS)
def col2im(lab, x, cols, kernel, stride, padding):
    """col2im adds every column entry back where im2col took it from (the adjoint of im2col), with padding."""
    return {"dx": lab.col2im(cols, x.shape, (int(kernel[0]), int(kernel[1])), int(stride), int(padding))}


@LAB.case(points=2, inputs=col2im_inputs(2, 2, 7, 9, (3, 3), 2, 0),
          hidden_inputs=(col2im_variant(1, 3, 6, 7, (3, 2), 1, 0), col2im_variant(2, 2, 8, 7, (2, 3), 2, 0)),
          checks=COL2IM_CHECKS)
def col2im_no_padding(lab, x, cols, kernel, stride, padding):
    """col2im without padding, stride 2 (overlapping 3x3 patches): nothing is cropped away."""
    return {"dx": lab.col2im(cols, x.shape, (int(kernel[0]), int(kernel[1])), int(stride), int(padding))}


# ----------------------------------------------------------------------------- Conv2d forward

FORWARD_CHECKS = [Close("y", "Conv2d.forward: output y (N, F, Ho, Wo)", mistakes=CONV_FORWARD_MISTAKES)]
GIVEN_Y = _given_im2col("given.conv_y")


def _conv_forward(lab: ModuleType, x, weight, bias, stride, padding) -> Arrays:
    return {"y": make_conv(lab, weight, bias, stride, padding)(x), **_cols_used(lab, x, weight, stride, padding)}


@LAB.case(points=5, inputs=conv_inputs(2, 3, 5, 7, 4, (3, 3), 1, 1),
          hidden_inputs=(conv_variant(3, 2, 6, 5, 3, (2, 2), 1, 0), conv_variant(2, 4, 7, 6, 2, (3, 3), 1, 2)),
          checks=FORWARD_CHECKS, given=GIVEN_Y)
def conv_forward(lab, x, weight, bias, stride, padding):
    """Conv2d.forward, stride 1 with padding: C_in=3 != C_out=4, H=5 != W=7."""
    return _conv_forward(lab, x, weight, bias, stride, padding)


@LAB.case(points=5, inputs=conv_inputs(2, 3, 9, 10, 4, (3, 2), 2, 1),
          hidden_inputs=(conv_variant(2, 2, 11, 8, 3, (3, 3), 3, 2), conv_variant(2, 3, 8, 10, 2, (2, 4), 3, 0)),
          checks=FORWARD_CHECKS, given=GIVEN_Y)
def conv_forward_strided(lab, x, weight, bias, stride, padding):
    """Conv2d.forward with stride 2, padding 1 and a 3x2 kernel on a 9x10 input."""
    return _conv_forward(lab, x, weight, bias, stride, padding)


@LAB.case(points=3, inputs=conv_inputs(1, 2, 6, 9, 3, (2, 3), 2, 1),
          hidden_inputs=(conv_variant(1, 1, 7, 7, 2, (3, 3), 1, 1), conv_variant(1, 3, 5, 7, 1, (3, 2), 3, 2)),
          checks=FORWARD_CHECKS, given=GIVEN_Y)
def conv_forward_batch_of_one(lab, x, weight, bias, stride, padding):
    """Conv2d.forward with N=1: nothing may squeeze the batch axis away."""
    return _conv_forward(lab, x, weight, bias, stride, padding)


def twice_inputs(n: int, c: int, h: int, w: int, f: int, kernel: tuple[int, int], stride: int, padding: int) -> Maker:
    """conv_inputs plus a second input x2 of the same shape."""
    first = conv_inputs(n, c, h, w, f, kernel, stride, padding)

    def make(rng: np.random.Generator) -> Arrays:
        return {**first(rng), "x2": rng.standard_normal((n, c, h, w))}
    return make


STALE = ("the second forward returned the first one's output: something computed from the first input (the "
         "im2col columns, or the output) is kept and reused; every forward must start from its own x")


@LAB.case(points=2, inputs=twice_inputs(2, 3, 5, 6, 2, (3, 2), 1, 0),
          hidden_inputs=(described("stride 2, no padding, N=1", twice_inputs(1, 2, 7, 5, 3, (3, 3), 2, 0)),),
          given=Given("im2col", ("cols_used", "cols_used2"), "given.conv_y_twice"), checks=[
    Close("y2", "Conv2d.forward: the second output of one layer, on a new input", mistakes=(
        Mistake(STALE, lambda i, e: e["y1"]),), explain=(
        "A layer is called on batch after batch: a forward may keep what its backward needs, but must "
        "never read anything an earlier forward left behind.")),
    Close("y1", "Conv2d.forward: the first output", mistakes=_conv_mistakes(output="y1")),
])
def conv_forward_twice(lab, x, x2, weight, bias, stride, padding):
    """Two forwards of one Conv2d on two inputs of one shape: the second output comes from the second input."""
    conv = make_conv(lab, weight, bias, stride, padding)
    y1 = np.array(conv(x), copy=True)
    y2 = conv(x2)
    second = {f"{k}2": v for k, v in _cols_used(lab, x2, weight, stride, padding).items()}
    return {"y1": y1, "y2": y2, **_cols_used(lab, x, weight, stride, padding), **second}


NAIVE_CHECKS = [
    Close("y", "conv2d_naive(x, weight, bias, stride, padding): equals Conv2d.forward",
          mistakes=_conv_mistakes(with_layout=False)),
]


@LAB.case(points=3, inputs=conv_inputs(2, 2, 5, 6, 3, (3, 3), 1, 1),
          hidden_inputs=(conv_variant(1, 3, 7, 5, 2, (3, 2), 1, 0), conv_variant(2, 1, 6, 6, 2, (2, 2), 1, 2)),
          checks=NAIVE_CHECKS)
def conv2d_naive(lab, x, weight, bias, stride, padding):
    """conv2d_naive (the definition, with loops) gives Conv2d.forward's output: stride 1, padding 1."""
    return {"y": lab.conv2d_naive(x, weight, bias, int(stride), int(padding))}


@LAB.case(points=3, inputs=conv_inputs(2, 2, 7, 8, 3, (3, 2), 2, 0),
          hidden_inputs=(conv_variant(1, 3, 7, 6, 2, (3, 2), 2, 2), conv_variant(2, 1, 9, 6, 2, (2, 2), 3, 1)),
          checks=NAIVE_CHECKS)
def conv2d_naive_strided(lab, x, weight, bias, stride, padding):
    """conv2d_naive at stride 2 without padding (7x8 input, 3x2 kernel)."""
    return {"y": lab.conv2d_naive(x, weight, bias, int(stride), int(padding))}


# ----------------------------------------------------------------------------- Conv2d backward


def _fresh_conv(lab: ModuleType, weight, bias, stride, padding) -> Callable[[np.ndarray], np.ndarray]:
    """Conv2d.forward of a new layer on every call: the numerical gradient of dL/dx does not depend on
    what a layer keeps between calls (a stale-state bug is charged in conv_forward_twice only)."""
    return lambda v: make_conv(lab, weight, bias, stride, padding)(v)


def _col2im_used(lab: ModuleType, x: np.ndarray, weight: np.ndarray, dout: np.ndarray, stride: Any,
                 padding: Any) -> Arrays:
    """The student's im2col on x and col2im on dL/dcols = W^T G (the product this case's docstring names), the
    two functions their dL/dx goes through ({} for one that raises: its own case reports the error)."""
    out = _cols_used(lab, x, weight, stride, padding)
    f = len(weight)
    dcols = np.matmul(weight.reshape(f, -1).T, dout.reshape(len(dout), f, -1))
    try:
        out["col2im_used"] = np.asarray(lab.col2im(dcols, x.shape, weight.shape[2:], int(stride), int(padding)),
                                        dtype=np.float64)
    except Exception:  # noqa: BLE001 - any failure of the earlier function is its own case's business
        pass
    return out


# Conv2d's gradients judged given the student's own forward output, im2col (forward) and col2im (backward): a bug in
# any of them is charged in its own cases; the numerical gradient of a forward that differs from the reference is no
# target for backward then (the instructor functions also give the numerical gradient, so the GradCheck is left out).
FORWARD = "Conv2d.forward"
GIVEN_DX = Given("im2col", ("cols_used", "col2im_used", "y_used"), "given.conv_dx",
                 functions=("im2col", "col2im", FORWARD))
GIVEN_DWEIGHT = Given("im2col", ("cols_used", "y_used"), "given.conv_dweight", functions=("im2col", FORWARD))
GIVEN_DBIAS = Given(FORWARD, ("y_used",), "given.conv_dbias")


def _conv_backward(lab: ModuleType, x, weight, bias, dout, stride, padding) -> tuple[Any, Any, Arrays]:
    """The layer after one forward and backward, dL/dx, and the forward's output as ``y_used``: a backward case
    is judged given the student's own forward (a forward bug is charged in the forward's cases)."""
    conv = make_conv(lab, weight, bias, stride, padding)
    y = np.array(conv(x), dtype=np.float64, copy=True)
    return conv, conv.backward(dout), {"y_used": y}


@LAB.case(points=8, inputs=conv_inputs(3, 2, 7, 5, 3, (3, 3), 2, 1),
          hidden_inputs=(conv_variant(2, 3, 7, 8, 2, (3, 2), 2, 2), conv_variant(3, 2, 8, 5, 3, (2, 3), 2, 0)),
          given=GIVEN_DX, checks=[
    GradCheck("dx", "dx_numeric", "Conv2d.backward: dL/dx (its return value), overlapping patches"),
    Close("dx", "Conv2d.backward: dL/dx (its return value), overlapping patches", mistakes=DX_MISTAKES),
])
def conv_backward_input(lab, x, weight, bias, dout, stride, padding):
    """Conv2d.backward returns dL/dx = col2im(W^T G) where patches overlap (stride < kernel)."""
    _, dx, y = _conv_backward(lab, x, weight, bias, dout, stride, padding)
    numeric = numerical_gradient(directional_loss(_fresh_conv(lab, weight, bias, stride, padding), dout,
                                                  "Conv2d.forward"), x)
    return {"dx": dx, "dx_numeric": numeric, **y, **_col2im_used(lab, x, weight, dout, stride, padding)}


@LAB.case(points=5, inputs=conv_inputs(2, 3, 6, 8, 2, (2, 2), 2, 0),
          hidden_inputs=(conv_variant(3, 2, 9, 6, 3, (3, 3), 3, 0), conv_variant(2, 2, 6, 7, 2, (2, 3), 3, 1)),
          given=GIVEN_DX, checks=[
    GradCheck("dx", "dx_numeric", "Conv2d.backward: dL/dx, patches that do not overlap (stride >= kernel)"),
    Close("dx", "Conv2d.backward: dL/dx, patches that do not overlap (stride >= kernel)", mistakes=DX_MISTAKES),
])
def conv_backward_input_nonoverlapping(lab, x, weight, bias, dout, stride, padding):
    """Conv2d.backward's dL/dx with stride = kernel: every pixel in at most one patch."""
    _, dx, y = _conv_backward(lab, x, weight, bias, dout, stride, padding)
    numeric = numerical_gradient(directional_loss(_fresh_conv(lab, weight, bias, stride, padding), dout,
                                                  "Conv2d.forward"), x)
    return {"dx": dx, "dx_numeric": numeric, **y, **_col2im_used(lab, x, weight, dout, stride, padding)}


# dL/dW as a sum over the batch, split in two terms (the last image, the others) so that an error no known mistake
# matches is said in the formula's own terms, e.g. a loop over the images that keeps only the last one's product.
DWEIGHT_TERMS = Terms("dL/dW = sum over the batch n of G[n] @ cols[n]^T", (
    Term("the sum over the batch's other images (n < N-1)", short="other images"),
    Term("the last image's term G[N-1] @ cols[N-1]^T", short="last image"),
), instructor("conv_dw.terms"))


@LAB.case(points=8, inputs=conv_inputs(2, 3, 5, 6, 2, (3, 2), 2, 1),
          hidden_inputs=(conv_variant(3, 2, 7, 5, 3, (3, 3), 2, 1), conv_variant(3, 2, 6, 8, 3, (2, 2), 2, 1)),
          factors=lambda i: {"N (the batch size)": float(len(i["x"]))}, given=GIVEN_DWEIGHT,
          checks=[
    GradCheck("dweight", "dweight_numeric", "Conv2d.backward: weight.grad (F, C, kh, kw)"),
    Close("dweight", "Conv2d.backward: weight.grad (F, C, kh, kw)", terms=DWEIGHT_TERMS, mistakes=(
        Mistake("averaging over the batch (the 1/N belongs to the loss, not to Conv2d)",
                lambda i, e: e["dweight"] / len(i["x"])),
        Mistake("the flipped kernel's gradient (kernel flipped in forward or backward)",
                lambda i, e: e["dweight"][:, :, ::-1, ::-1]),
        Mistake("reshaping the (C, F, ...)-ordered gradient straight to (F, C, kh, kw): the weight layout is "
                "(out_channels, in_channels, kh, kw)",
                lambda i, e: e["dweight"].transpose(1, 0, 2, 3).reshape(e["dweight"].shape)),
    )),
])
def conv_backward_weight(lab, x, weight, bias, dout, stride, padding):
    """Conv2d.backward adds dL/dW = sum_n G[n] @ cols[n].T, reshaped to (F, C, kh, kw), into weight.grad."""
    conv, _, y = _conv_backward(lab, x, weight, bias, dout, stride, padding)
    numeric = numerical_gradient(param_loss(conv, conv.weight, x, dout), weight)
    return {"dweight": conv.weight.grad.copy(), "dweight_numeric": numeric, **y,
            **_cols_used(lab, x, weight, stride, padding)}


@LAB.case(points=4, inputs=conv_inputs(3, 2, 5, 6, 3, (3, 3), 1, 1),
          hidden_inputs=(conv_variant(2, 3, 6, 5, 2, (2, 3), 1, 1), conv_variant(4, 1, 4, 7, 4, (2, 2), 1, 1)),
          factors=lambda i: {"N (the batch size)": float(len(i["x"]))}, given=GIVEN_DBIAS, checks=[
    GradCheck("dbias", "dbias_numeric", "Conv2d.backward: bias.grad (F,)"),
    Close("dbias", "Conv2d.backward: bias.grad (F,)", mistakes=(
        Mistake("summing over the wrong axes: the bias gradient sums grad_output over the batch and every "
                "position, axes (0, 2, 3), keeping the channel axis 1", lambda i, e: i["dout"].sum(axis=(1, 2, 3))),
        Mistake("averaging over the batch (mean) instead of summing: the 1/N belongs to the loss",
                lambda i, e: i["dout"].sum(axis=(0, 2, 3)) / len(i["x"])),
        Mistake("averaging over the positions (mean over Ho, Wo) instead of summing",
                lambda i, e: i["dout"].mean(axis=(2, 3)).sum(axis=0)),
    )),
])
def conv_backward_bias(lab, x, weight, bias, dout, stride, padding):
    """Conv2d.backward adds dL/db = grad_output summed over axes (0, 2, 3) into bias.grad (N = F here)."""
    conv, _, y = _conv_backward(lab, x, weight, bias, dout, stride, padding)
    numeric = numerical_gradient(param_loss(conv, conv.bias, x, dout), bias)
    return {"dbias": conv.bias.grad.copy(), "dbias_numeric": numeric, **y}


ACCUMULATE = "overwriting the gradient (grad = ...) instead of accumulating (grad += ...)"


def _growth(twice: np.ndarray, once: np.ndarray) -> np.ndarray:
    """twice / once per entry; where one pass gives ~0 there is nothing to compare: counted as accumulated (2)."""
    safe = np.abs(once) > 1e-12
    return np.where(safe, twice / np.where(safe, once, 1.0), 2.0)


@LAB.case(points=3, inputs=conv_inputs(3, 2, 5, 6, 3, (3, 2), 1, 1),
          hidden_inputs=(conv_variant(2, 3, 7, 5, 2, (3, 3), 1, 1), conv_variant(2, 1, 7, 5, 2, (2, 2), 1, 1)),
          given=_given_im2col("given.conv_twice"), checks=[
    Close("dweight_growth", "Conv2d: weight.grad after two backward passes, divided by your own after one pass",
          mistakes=(Mistake(ACCUMULATE, lambda i, e: e["dweight_growth"] / 2),),
          explain="Gradients accumulate until zero_grad(), as in PyTorch: backward adds into .grad, so two passes "
                  "give twice one pass's gradient (whatever that is: its value is graded in conv_backward_weight "
                  "and conv_backward_bias)."),
    Close("dbias_growth", "Conv2d: bias.grad after two backward passes, divided by your own after one pass",
          mistakes=(Mistake(ACCUMULATE, lambda i, e: e["dbias_growth"] / 2),)),
    Close("y_no_bias", "Conv2d(..., bias=False).forward: output y, and parameters() holds the weight only",
          mistakes=_conv_mistakes(output="y_no_bias", with_bias=False)[1:]),
])
def conv_gradients_accumulate(lab, x, weight, bias, dout, stride, padding):
    """Two backward passes add up in .grad (judged against your own one-pass gradients); Conv2d(bias=False)."""
    grads = []
    for passes in (1, 2):
        conv = make_conv(lab, weight, bias, stride, padding)
        for _ in range(passes):
            conv(x)
            conv.backward(dout)
        grads.append((np.array(conv.weight.grad, dtype=np.float64), np.array(conv.bias.grad, dtype=np.float64)))
    (w1, b1), (w2, b2) = grads
    no_bias = make_conv(lab, weight, None, stride, padding)
    n_params = len(no_bias.parameters())
    if n_params != 1:
        raise ConventionError(f"Conv2d(..., bias=False).parameters() has {n_params} entries; expected 1 (the weight)")
    return {"dweight_growth": _growth(w2, w1), "dbias_growth": _growth(b2, b1), "y_no_bias": no_bias(x),
            **_cols_used(lab, x, weight, stride, padding)}


# ----------------------------------------------------------------------------- pooling


def _run_pool(lab: ModuleType, cls: str, x, dout, kernel, stride) -> Arrays:
    layer = _pool(lab, cls, kernel, stride)
    y = layer(x)
    # A forward of the wrong shape is y's failure (its check names it); backward then gets an upstream gradient of
    # that shape, so the message can still say whether backward agrees with the student's own forward.
    g = dout if np.shape(y) == dout.shape else np.resize(dout, np.shape(y))
    return {"y": y, "dx": layer.backward(g), "dx_numeric": numerical_gradient(
        directional_loss(_pool(lab, cls, kernel, stride), g, f"{cls}.forward"), x)}


def pool_variant(n: int, c: int, h: int, w: int, k: int, stride: int) -> Maker:
    """A hidden variant's pooling inputs, described for its failure message."""
    kind = "windows that do not overlap" if stride >= k else "overlapping windows"
    return described(f"kernel {k}, stride {stride} ({kind}), N={n}, {h}x{w}", pool_inputs(n, c, h, w, k, stride))


def _k(i: Arrays) -> int:
    return int(i["kernel"])


MAX_FORWARD_MISTAKES = (
    Mistake("the window's mean (average pooling) instead of its max", instructor("maxpool_y.mean")),
    Mistake("the windows stepped by the kernel size, the stride ignored: window (i, j) starts at (S*i, S*j), and "
            "with S < k windows overlap", instructor("maxpool_y.stride_ignored")),
)
MAX_OVERWRITE = "overwriting (=) where overlapping windows must add (+=): an entry that is the maximum of two " \
                "windows receives the sum of their gradients"
MAX_BACKWARD_MISTAKES = (
    Mistake("sending each window's gradient to every entry of the window instead of only to its maximum",
            instructor("maxpool_dx.all_entries")),
    Mistake(MAX_OVERWRITE, instructor("maxpool_dx.set_offsets")),
    Mistake(MAX_OVERWRITE, instructor("maxpool_dx.last_window")),
    Mistake("the gradient sent to each window's minimum, not its maximum", instructor("maxpool_dx.minimum")),
)
POOL_TIES = ("The inputs have no ties; for the record, PyTorch sends a window's gradient to its first maximal "
             "entry in row-major order.")


@LAB.case(points=4, inputs=pool_inputs(2, 3, 8, 6, 2, 2),
          hidden_inputs=(pool_variant(1, 2, 9, 6, 3, 3), pool_variant(2, 1, 6, 9, 2, 1)), checks=[
    Close("y", "MaxPool2d.forward: output y (N, C, Ho, Wo)", mistakes=MAX_FORWARD_MISTAKES),
])
def maxpool_forward(lab, x, dout, kernel, stride):
    """MaxPool2d(2, 2).forward on 8x6 inputs."""
    return {"y": _pool(lab, "MaxPool2d", kernel, stride)(x)}  # forward only: backward has its own cases


@LAB.case(points=6, inputs=pool_inputs(2, 3, 6, 8, 2, 2),
          hidden_inputs=(pool_variant(1, 2, 9, 6, 3, 3), pool_variant(3, 1, 4, 6, 2, 2)), checks=[
    GradCheck("dx", "dx_numeric", "MaxPool2d.backward: dL/dx, windows that do not overlap"),
    Close("dx", "MaxPool2d.backward: dL/dx, windows that do not overlap", mistakes=MAX_BACKWARD_MISTAKES,
          explain=POOL_TIES),
])
def maxpool_backward(lab, x, dout, kernel, stride):
    """MaxPool2d(2, 2).backward: each window's gradient goes to its maximum only."""
    out = _run_pool(lab, "MaxPool2d", x, dout, kernel, stride)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"]}


@LAB.case(points=5, inputs=pool_inputs(2, 2, 9, 7, 3, 2),
          hidden_inputs=(pool_variant(1, 3, 7, 11, 3, 2), pool_variant(2, 2, 6, 6, 2, 1)), checks=[
    Close("y", "MaxPool2d(3, stride=2).forward: output y, overlapping windows", mistakes=MAX_FORWARD_MISTAKES),
    GradCheck("dx", "dx_numeric", "MaxPool2d(3, stride=2).backward: dL/dx, overlapping windows"),
    Close("dx", "MaxPool2d(3, stride=2).backward: dL/dx, overlapping windows", mistakes=MAX_BACKWARD_MISTAKES,
          explain=POOL_TIES),
])
def maxpool_overlapping(lab, x, dout, kernel, stride):
    """MaxPool2d(3, stride=2): windows overlap, so an entry can be the maximum of two windows."""
    return _run_pool(lab, "MaxPool2d", x, dout, kernel, stride)


@LAB.case(points=3, inputs=pool_inputs(2, 3, 7, 9, 3, 2),
          hidden_inputs=(pool_variant(1, 2, 6, 8, 2, 1), pool_variant(2, 1, 9, 7, 3, 2)), checks=[
    Close("y", "AvgPool2d.forward: output y (N, C, Ho, Wo)", mistakes=(
        Mistake("the window's sum instead of its mean (divide by k*k)", lambda i, e: e["y"] * _k(i) ** 2),
        Mistake("dividing by k instead of k*k", lambda i, e: e["y"] * _k(i)),)),
])
def avgpool_forward(lab, x, dout, kernel, stride):
    """AvgPool2d(3, stride=2).forward on 7x9 inputs: the mean of each (overlapping) window."""
    return {"y": _pool(lab, "AvgPool2d", kernel, stride)(x)}  # forward only: backward has its own cases


@LAB.case(points=5, inputs=pool_inputs(2, 2, 7, 9, 3, 2),
          hidden_inputs=(pool_variant(1, 3, 6, 5, 2, 1), pool_variant(2, 2, 8, 7, 3, 1)),
          given=Given("AvgPool2d.forward", ("y_used",), "given.avgpool_dx"), checks=[
    GradCheck("dx", "dx_numeric", "AvgPool2d.backward: dL/dx"),
    Close("dx", "AvgPool2d.backward: dL/dx", mistakes=(
        Mistake("leaving out the 1/(k*k) of the mean", lambda i, e: e["dx"] * _k(i) ** 2),
        Mistake("dividing by k instead of k*k", lambda i, e: e["dx"] * _k(i)),
        Mistake(MAX_OVERWRITE.replace("is the maximum of", "belongs to"), instructor("avgpool_dx.set_offsets")),
    )),
])
def avgpool_backward(lab, x, dout, kernel, stride):
    """AvgPool2d.backward: every entry of a window gets the window's gradient / (k*k); overlaps add (judged given
    your own forward's output: a forward bug costs avgpool_forward's points)."""
    out = _run_pool(lab, "AvgPool2d", x, dout, kernel, stride)
    return {"dx": out["dx"], "dx_numeric": out["dx_numeric"], "y_used": out["y"]}


def flatten_inputs(shape: tuple[int, int, int, int]) -> Maker:
    def make(rng: np.random.Generator) -> Arrays:
        return {"x": rng.standard_normal(shape), "dout": rng.standard_normal((shape[0], int(np.prod(shape[1:]))))}
    return make


@LAB.case(points=2, inputs=flatten_inputs((2, 3, 4, 5)),
          hidden_inputs=(flatten_inputs((1, 2, 3, 3)), flatten_inputs((3, 1, 5, 2))), checks=[
    Close("y", "Flatten.forward: (N, C, H, W) -> (N, C*H*W) in C order", exact=True, mistakes=(
        Mistake("flattening channels last (N, H, W, C) instead of C order (as torch.flatten(x, 1))",
                lambda i, e: i["x"].transpose(0, 2, 3, 1).reshape(len(i["x"]), -1)),)),
    Close("dx", "Flatten.backward: dL/dx reshaped to (N, C, H, W)", exact=True),
])
def flatten(lab, x, dout):
    """Flatten keeps the batch axis and backward restores the input's shape."""
    layer = lab.Flatten()
    return {"y": layer(x), "dx": layer.backward(dout)}


# ----------------------------------------------------------------------------- MNIST


# A CNN with no nonlinearity at all (an affine map of the pixels) was reported at 0.9550, the threshold (the
# reference's CNN without ReLUs, with average pooling: 0.8935, fit_mnist seed 0, scripts/lab3_broken_models.py, which
# also measures stale im2col columns: 0.1125, and no ReLUs with max pooling kept: 0.9635, which passes): accuracy
# alone cannot tell such a model from a CNN, so the trained model's structure is checked too.
# An affine f has f(a + b) - f(a) - f(b) + f(0) = 0 up to rounding (~1e-15 relative); a ReLU CNN's is of
# the order of its logits. The check fails below 1e-6 relative.
LINEARITY_TOL = 1e-6


def _nonlinearity(model: Any, x: np.ndarray) -> float:
    """max |f(a + b) - f(a) - f(b) + f(0)| / max |f(a)| over pairs (a, b) of held-out digits."""
    a, b = x[: len(x) // 2], x[len(x) // 2:]

    def f(v: np.ndarray) -> np.ndarray:
        return np.asarray(model(v), dtype=np.float64)

    fa = f(a)
    residual = f(a + b) - fa - f(b) + f(np.zeros_like(a))
    return float(np.abs(residual).max() / max(float(np.abs(fa).max()), 1e-300))


def _is_nonlinear(i: Arrays, o: Arrays) -> float:
    return float(float(o["nonlinearity"]) > LINEARITY_TOL)


def _linearity_detail(i: Arrays, o: Arrays) -> str:
    return (f"max |f(a+b) - f(a) - f(b) + f(0)| is {float(o['nonlinearity']):.2e} of max |f(a)| on held-out digits: "
            "your trained model is linear (affine) in its input, so it is not the CNN the lab asks for; put a ReLU "
            "after each Conv2d and after the hidden Linear layer")


# timeout: the reference trains in about 26 s of CPU time, but wall times up to 170 s were measured on the shared
# 2-core machine under heavy load; fit_mnist itself stops code that is far too slow, with a message.
@LAB.case(points=12, inputs=mnist_inputs, private=["test_labels"], hidden=False, timeout=480, slow=True,
          checks=[Accuracy("predictions", "test_labels", ACCURACY_THRESHOLD,
                           "fit_mnist + predict (the CNN) on the held-out split", reference=REFERENCE_ACCURACY),
                  Metric("nonlinearity", _is_nonlinear, 1.0,
                         "the trained model is not linear in its input (1: f(a+b) != f(a) + f(b) - f(0))",
                         describe=_linearity_detail)])
def mnist_accuracy(lab, train_images, train_labels, test_images):
    """Train the CNN with fit_mnist (within its time budget) on the training split; predict the held-out digits."""
    model = lab.fit_mnist(train_images, train_labels, seed=0)
    predictions = lab.predict(model, test_images)
    nonlinearity = _nonlinearity(model, lab.preprocess(test_images[:32]))
    return {"predictions": predictions, "nonlinearity": np.array(nonlinearity)}
