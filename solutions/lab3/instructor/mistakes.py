"""Lab 3's known-mistake predictors: instructor-only (they hold the solution's math).

``tests/lab3/cases.py`` names these by key (``Mistake(description, instructor(key))``); each is a
plain function ``(inputs, expected) -> array`` giving what an implementation with that bug outputs
for the checked array: convolutions by sliding windows + einsum, col2im (the adjoint of im2col)
with overwriting and stride bugs, pooling masks. They run in the grading process only:
``gradelab fixtures lab3`` stores their predictions for the public seeds, isolated grading computes
them for hidden variants (grader/authoring/fixtures.py). This folder is never released.

Keys: ``<what>.<bug>``, e.g. ``conv.flipped``, ``conv_dx.set_offsets``, ``maxpool_dx.minimum``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

Arrays = dict[str, np.ndarray]
Predictor = Callable[[Arrays, Arrays], np.ndarray]

# ----------------------------------------------------------------------------- the math, with bug switches


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return len(range(0, size + 2 * padding - kernel + 1, stride))


def _windows(x: np.ndarray, kh: int, kw: int, stride: int, pads: tuple[int, int, int, int]) -> np.ndarray:
    """(N, C, H, W) -> (N, C, Ho, Wo, kh, kw), x zero-padded by (top, bottom, left, right) = pads."""
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    return sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int,
          pads: tuple[int, int, int, int]) -> np.ndarray:
    y = np.einsum("nchwuv,fcuv->nfhw", _windows(x, w.shape[2], w.shape[3], stride, pads), w)
    return y if b is None else y + b[:, None, None]


def _pads(i: Arrays) -> tuple[int, int, int, int]:
    p = int(i["padding"])
    return (p, p, p, p)


def _scatter(contrib: np.ndarray, x_shape: tuple[int, ...], stride: int, padding: int,
             mode: str = "add", step: int | None = None) -> np.ndarray:
    """col2im on contributions (N, C, kh, kw, Ho, Wo); ``mode`` names correct and mistaken variants.

    "add": the adjoint of im2col (correct). "set_offsets": ``=`` instead of ``+=`` in a loop over
    kernel offsets. "set_patches": ``=`` in a loop over patches. ``step`` other than the stride:
    the stride forgotten in the slices.
    """
    n, c, h, w = x_shape
    kh, kw, ho, wo = contrib.shape[2:]
    step = stride if step is None else step
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    if mode == "set_patches":
        for a in range(ho):
            for b in range(wo):
                xp[:, :, stride * a:stride * a + kh, stride * b:stride * b + kw] = contrib[:, :, :, :, a, b]
    else:
        for u in range(kh):
            for v in range(kw):
                region = (slice(None), slice(None), slice(u, u + step * (ho - 1) + 1, step),
                          slice(v, v + step * (wo - 1) + 1, step))
                if mode == "add":
                    xp[region] += contrib[:, :, u, v]
                else:
                    xp[region] = contrib[:, :, u, v]
    return xp[:, :, padding:padding + h, padding:padding + w]


def _conv_dx(i: Arrays, mode: str = "add", step: int | None = None, flip: bool = False) -> np.ndarray:
    w = i["weight"][:, :, ::-1, ::-1] if flip else i["weight"]
    contrib = np.einsum("fcuv,nfhw->ncuvhw", w, i["dout"])
    return _scatter(contrib, i["x"].shape, int(i["stride"]), int(i["padding"]), mode, step)


def _k(i: Arrays) -> int:
    return int(i["kernel"])


def _pool_windows(i: Arrays) -> np.ndarray:
    return _windows(i["x"], _k(i), _k(i), int(i["stride"]), (0, 0, 0, 0))


def _max_mask(i: Arrays) -> np.ndarray:
    """1 at each window's maximum: (N, C, Ho, Wo, k, k) (inputs are tie-free)."""
    win = _pool_windows(i)
    return (win == win.max(axis=(-2, -1), keepdims=True)).astype(np.float64)


def _pool_scatter(i: Arrays, per_window: np.ndarray, mode: str = "add") -> np.ndarray:
    """Scatters (N, C, Ho, Wo, k, k) window gradients back onto x's shape."""
    return _scatter(per_window.transpose(0, 1, 4, 5, 2, 3), i["x"].shape, int(i["stride"]), 0, mode)


def _per_window(i: Arrays) -> np.ndarray:
    """Each window's upstream gradient, on every entry of the window: (N, C, Ho, Wo, k, k)."""
    return np.broadcast_to(i["dout"][..., None, None], i["dout"].shape + (_k(i), _k(i))).copy()


def _max_dx_last_window(i: Arrays, e: Arrays) -> np.ndarray:
    """dx[argmax of window (a, b)] = g[a, b] for the windows in row-major order (the last one wins)."""
    k, s = _k(i), int(i["stride"])
    mask = _max_mask(i)
    dx = np.zeros_like(i["x"])
    for a in range(mask.shape[2]):
        for b in range(mask.shape[3]):
            window = dx[:, :, s * a:s * a + k, s * b:s * b + k]
            m = mask[:, :, a, b] > 0
            window[m] = np.broadcast_to(i["dout"][:, :, a, b][:, :, None, None], m.shape)[m]
    return dx


def _unfold(x: np.ndarray, kh: int, kw: int, stride: int, pads: tuple[int, int, int, int],
            order: str = "cuv") -> np.ndarray:
    win = _windows(x, kh, kw, stride, pads)  # (N, C, Ho, Wo, kh, kw)
    n, c, ho, wo = win.shape[:4]
    axes = (0, 1, 4, 5, 2, 3) if order == "cuv" else (0, 4, 5, 1, 2, 3)
    return win.transpose(axes).reshape(n, c * kh * kw, ho * wo)


# ----------------------------------------------------------------------------- the predictors

PREDICTORS: dict[str, Predictor] = {}


def _conv_family(prefix: str, with_bias: bool) -> None:
    """Forward mistakes of Conv2d (and conv2d_naive), with the bias or for Conv2d(..., bias=False)."""
    def bias(i: Arrays) -> np.ndarray | None:
        return i["bias"] if with_bias else None

    def shifted(where: str) -> Predictor:
        def predict(i: Arrays, e: Arrays) -> np.ndarray:
            p = 2 * int(i["padding"])
            pads = (0, p, 0, p) if where == "after" else (p, 0, p, 0)
            return _conv(i["x"], i["weight"], bias(i), int(i["stride"]), pads)
        return predict

    def uvc(i: Arrays, e: Arrays) -> np.ndarray:
        f, _, kh, kw = i["weight"].shape
        return _conv(i["x"], i["weight"].reshape(f, kh, kw, -1).transpose(0, 3, 1, 2), bias(i), int(i["stride"]),
                     _pads(i))

    PREDICTORS[f"{prefix}.no_bias"] = lambda i, e: _conv(i["x"], i["weight"], None, int(i["stride"]), _pads(i))
    PREDICTORS[f"{prefix}.flipped"] = lambda i, e: _conv(i["x"], i["weight"][:, :, ::-1, ::-1], bias(i),
                                                         int(i["stride"]), _pads(i))
    PREDICTORS[f"{prefix}.pad_after"] = shifted("after")
    PREDICTORS[f"{prefix}.pad_before"] = shifted("before")
    PREDICTORS[f"{prefix}.uvc"] = uvc
    PREDICTORS[f"{prefix}.layout"] = lambda i, e: _conv(
        i["x"], i["weight"].transpose(1, 0, 2, 3).reshape(i["weight"].shape), bias(i), int(i["stride"]), _pads(i))


_conv_family("conv", with_bias=True)
_conv_family("conv_nobias", with_bias=False)

PREDICTORS["conv_dx.set_offsets"] = lambda i, e: _conv_dx(i, "set_offsets")
PREDICTORS["conv_dx.set_patches"] = lambda i, e: _conv_dx(i, "set_patches")
PREDICTORS["conv_dx.stride_ignored"] = lambda i, e: _conv_dx(i, step=1)
PREDICTORS["conv_dx.flipped"] = lambda i, e: _conv_dx(i, flip=True)


def _im2col(order: str = "cuv", where: str = "both") -> Predictor:
    def predict(i: Arrays, e: Arrays) -> np.ndarray:
        p = int(i["padding"])
        pads = {"both": (p, p, p, p), "after": (0, 2 * p, 0, 2 * p)}[where]
        kh, kw = (int(k) for k in i["kernel"])
        return _unfold(i["x"], kh, kw, int(i["stride"]), pads, order)
    return predict


PREDICTORS["im2col.uvc"] = _im2col("uvc")
PREDICTORS["im2col.pad_after"] = _im2col(where="after")


def _col2im(mode: str, step: int | None = None) -> Predictor:
    def predict(i: Arrays, e: Arrays) -> np.ndarray:
        kh, kw = (int(k) for k in i["kernel"])
        n, c, h, w = i["x"].shape
        s, p = int(i["stride"]), int(i["padding"])
        contrib = i["cols"].reshape(n, c, kh, kw, _out(h, kh, s, p), _out(w, kw, s, p))
        return _scatter(contrib, i["x"].shape, s, p, mode, step)
    return predict


PREDICTORS["col2im.set_offsets"] = _col2im("set_offsets")
PREDICTORS["col2im.set_patches"] = _col2im("set_patches")
PREDICTORS["col2im.stride_ignored"] = _col2im("add", step=1)

PREDICTORS["maxpool_dx.all_entries"] = lambda i, e: _pool_scatter(i, _per_window(i))
PREDICTORS["maxpool_dx.set_offsets"] = lambda i, e: _pool_scatter(i, _max_mask(i) * i["dout"][..., None, None],
                                                                  "set_offsets")
PREDICTORS["maxpool_dx.last_window"] = _max_dx_last_window
PREDICTORS["maxpool_dx.minimum"] = lambda i, e: _pool_scatter(
    i, (lambda w: (w == w.min(axis=(-2, -1), keepdims=True)))(_pool_windows(i)) * i["dout"][..., None, None])
PREDICTORS["maxpool_y.mean"] = lambda i, e: _pool_windows(i).mean(axis=(-2, -1))
PREDICTORS["maxpool_y.stride_ignored"] = lambda i, e: _windows(i["x"], _k(i), _k(i), _k(i), (0, 0, 0, 0)).max(
    axis=(-2, -1))
PREDICTORS["avgpool_dx.set_offsets"] = lambda i, e: _pool_scatter(i, _per_window(i) / _k(i) ** 2, "set_offsets")



def _dw_terms(i: Arrays, e: Arrays) -> np.ndarray:
    """conv_backward_weight's Terms: [sum_{n < N-1} G[n] cols[n]^T, G[N-1] cols[N-1]^T], each (F, C, kh, kw)."""
    w, x = i["weight"], i["x"]
    cols = _unfold(x, w.shape[2], w.shape[3], int(i["stride"]), _pads(i))
    per = np.matmul(i["dout"].reshape(len(x), len(w), -1), cols.transpose(0, 2, 1)).reshape((len(x),) + w.shape)
    return np.stack([per[:-1].sum(axis=0), per[-1]])


PREDICTORS["conv_dw.terms"] = _dw_terms

# ----------------------------------------------------------------------------- given the student's im2col
# ``Given("im2col", ("cols_used",), key)`` in cases.py: Conv2d's outputs as the reference computes them from
# the student's own columns, ``(inputs, given) -> {output: expected}`` (grader/judging/given.py).


def _y_from_cols(i: Arrays, cols: np.ndarray, with_bias: bool = True) -> np.ndarray:
    """y = weight.reshape(F, -1) @ cols + bias, reshaped to (N, F, Ho, Wo)."""
    w, x = i["weight"], i["x"]
    ho = _out(x.shape[2], w.shape[2], int(i["stride"]), int(i["padding"]))
    wo = _out(x.shape[3], w.shape[3], int(i["stride"]), int(i["padding"]))
    y = np.matmul(w.reshape(len(w), -1), cols)
    if with_bias:
        y = y + i["bias"][:, None]
    return y.reshape(len(x), len(w), ho, wo)


def _dweight_from_cols(i: Arrays, cols: np.ndarray) -> np.ndarray:
    """dL/dW = sum_n G[n] @ cols[n].T, reshaped to (F, C, kh, kw)."""
    w, g = i["weight"], i["dout"]
    return np.matmul(g.reshape(len(g), len(w), -1), cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)


PREDICTORS["given.conv_y"] = lambda i, g: {"y": _y_from_cols(i, g["cols_used"])}
def _given_dweight(i: Arrays, g: Arrays) -> Arrays:
    """dL/dW from the student's columns (the reference's when their im2col raised), and as the numerical gradient
    too: given their forward, backward is judged against the reference's formula (see case.Given)."""
    cols = g["cols_used"] if "cols_used" in g else _unfold(i["x"], i["weight"].shape[2], i["weight"].shape[3],
                                                           int(i["stride"]), _pads(i))
    dw = _dweight_from_cols(i, cols)
    return {"dweight": dw, "dweight_numeric": dw}


PREDICTORS["given.conv_dweight"] = _given_dweight
PREDICTORS["given.conv_dbias"] = lambda i, g: {"dbias": i["dout"].sum(axis=(0, 2, 3)),
                                               "dbias_numeric": i["dout"].sum(axis=(0, 2, 3))}
PREDICTORS["given.conv_twice"] = lambda i, g: {"y_no_bias": _y_from_cols(i, g["cols_used"], with_bias=False)}
PREDICTORS["given.conv_y_twice"] = lambda i, g: {"y1": _y_from_cols(i, g["cols_used"]),
                                                 "y2": _y_from_cols({**i, "x": i["x2"]}, g["cols_used2"])}
# dL/dx given the student's own col2im: exactly their col2im of W^T G (the run computes it); the numerical gradient
# is returned too, so the GradCheck is left out (a wrong im2col or forward makes their forward differ; case.Given).
PREDICTORS["given.conv_dx"] = lambda i, g: {"dx": g["col2im_used"], "dx_numeric": g["col2im_used"]}



def _given_avgpool_dx(i: Arrays, g: Arrays) -> Arrays:
    """AvgPool2d's dL/dx does not depend on the forward's output: given the student's forward, the reference's dx
    (also as the numerical gradient, so the GradCheck is left out). A forward of the wrong shape got another upstream
    gradient: no judgement given it (the plain one says the forward differs)."""
    if np.shape(g["y_used"]) != i["dout"].shape:
        raise ValueError("the forward's output has another shape")
    dx = _pool_scatter(i, _per_window(i) / _k(i) ** 2)
    return {"dx": dx, "dx_numeric": dx}


PREDICTORS["given.avgpool_dx"] = _given_avgpool_dx
