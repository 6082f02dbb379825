"""Lab 2's known-mistake predictors: instructor-only (they hold the solution's math).

``tests/lab2/cases.py`` names these by key (``Mistake(description, instructor(key))``); each is a
plain function ``(inputs, expected) -> array`` giving what an implementation with that bug outputs
for the checked array. They run in the grading process only: ``gradelab fixtures lab2`` stores
their predictions for the public seeds, isolated grading computes them for hidden variants
(grader/authoring/fixtures.py). This folder is never released (grader/authoring/stubs.py: release rule).

Keys: ``<what>.<bug>`` (and ``.<input>`` where a case checks several inputs), e.g.
``bn1d_y.eps_outside.x_small`` or ``bn_dx.no_mean_path``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]
Predictor = Callable[[Arrays, Arrays], np.ndarray]

# ----------------------------------------------------------------------------- the math, with bug switches


def _normalise(x: np.ndarray, eps: float, axes: tuple[int, ...] = (0,), *, ddof: bool = False,
               eps_outside: bool = False) -> np.ndarray:
    """x_hat with statistics over ``axes`` (biased variance unless ``ddof``)."""
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    if ddof:
        m = np.prod([x.shape[a] for a in axes])
        var = var * m / (m - 1)
    return (x - mu) / (np.sqrt(var) + eps if eps_outside else np.sqrt(var + eps))


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    """(D,) -> broadcastable against (N, D) or (N, C, H, W)."""
    return v if ndim == 2 else v.reshape(1, -1, 1, 1)


def _affine(xhat: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _per_channel(g, xhat.ndim) * xhat + _per_channel(b, xhat.ndim)


def _running(batches: list[np.ndarray], momentum: float, *, keras: bool = False, biased: bool = False,
             axes: tuple[int, ...] = (0,), count: Callable[[np.ndarray], int] | None = None,
             twice: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Running (mean, var) after training steps on ``batches``, under a (possibly wrong) convention
    (``twice``: the unbiased correction applied to an already unbiased variance)."""
    d = batches[0].shape[1]
    rm, rv = np.zeros(d), np.ones(d)
    for x in batches:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        m = count(x) if count else int(np.prod([x.shape[a] for a in axes]))
        if not biased:
            var = var * m / (m - 1)
        if twice:
            var = var * m / (m - 1)
        w_old, w_new = (momentum, 1 - momentum) if keras else (1 - momentum, momentum)
        rm, rv = w_old * rm + w_new * mu, w_old * rv + w_new * var
    return rm, rv


def _staged_dx(x: np.ndarray, g: np.ndarray, dy: np.ndarray, eps: float, bug: str = "") -> np.ndarray:
    """dL/dx of BatchNorm1d by the staged derivation, optionally with one named bug."""
    n = len(x)
    mu = x.mean(axis=0)
    xc = x - mu
    var = (xc**2).mean(axis=0)
    std = np.sqrt(var + eps)
    istd = 1.0 / std
    xhat = xc * istd
    dxhat = dy if bug == "no_gamma" else dy * g
    distd = (dxhat * (xhat if bug == "xhat_for_xc" else xc)).sum(axis=0)
    if bug == "sum_no_axis_istd":
        distd = np.full_like(distd, (dxhat * xc).sum())
    dxc = dxhat * (std if bug == "std_for_istd" else istd)
    dstd = -distd * (std**2 if bug == "istd_for_std" else istd**2)
    dvar = 0.5 * dstd / std
    if bug != "no_var_path":
        dxc = dxc + 2.0 * xc * dvar / n
    dmu = -(dxc.sum() if bug == "sum_no_axis_mu" else dxc.sum(axis=0))
    return dxc if bug == "no_mean_path" else dxc + dmu / n


def _rows(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C), one row per pixel."""
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def _unrows(r: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    n, c, h, w = shape
    return r.reshape(n, h, w, c).transpose(0, 3, 1, 2)


def _bn2d_dx(x: np.ndarray, g: np.ndarray, dy: np.ndarray, eps: float, bug: str = "", *,
             flat_reshape: bool = False) -> np.ndarray:
    """dL/dx of BatchNorm2d (with one of _staged_dx's bugs), or of 'reshape(-1, C) without moving C last'."""
    if flat_reshape:
        c = x.shape[1]
        return _staged_dx(x.reshape(-1, c), g, dy.reshape(-1, c), eps).reshape(x.shape)
    return _unrows(_staged_dx(_rows(x), g, _rows(dy), eps, bug), x.shape)


def _eps(i: Arrays) -> float:
    return float(i["eps"])


def _batches(i: Arrays) -> list[np.ndarray]:
    """The training batches x0, x1, ... of a running-statistics case (as tests/lab2/cases.py)."""
    return [i[f"x{k}"] for k in range(sum(1 for key in i if key[1:].isdigit()))]


def _batches2d(i: Arrays) -> list[np.ndarray]:
    return [i["x"], *_batches(i)]


# ----------------------------------------------------------------------------- the predictors

PREDICTORS: dict[str, Predictor] = {}


# Each forward bug as switches of one forward; a pair of bugs is both switch sets at once (cases.py lists
# the singles and every pair not within one exclusive group: two settings of the same switch).
FORWARD_1D: dict[str, dict[str, Any]] = {"eps_outside": {"eps_outside": True}, "unbiased": {"ddof": True},
                                         "axis1": {"axes": (1,)}, "swapped": {"affine": "swapped"},
                                         "no_affine": {"affine": "none"}}


def _forward(x: np.ndarray, i: Arrays, axes: tuple[int, ...] = (0,), affine: str = "ok", flat: bool = False,
             **kw: Any) -> np.ndarray:
    """BatchNorm's training forward of ``x`` with the case's gamma, beta, eps, under bug switches."""
    g, b = i["gamma"], i["beta"]
    if flat:  # BatchNorm2d through x.reshape(-1, C): rows that mix channels and pixels
        c = x.shape[1]
        return _forward(x.reshape(-1, c), i, affine=affine, **kw).reshape(x.shape)
    xhat = _normalise(x, _eps(i), axes, **kw)
    return xhat if affine == "none" else _affine(xhat, b, g) if affine == "swapped" else _affine(xhat, g, b)


def _register_forwards(prefix: str, table: dict[str, dict[str, Any]], src: str, suffix: str = "",
                       base: dict[str, Any] | None = None) -> None:
    """Predictions of every single bug of ``table`` and of every pair whose switches do not collide
    (``base``: the correct settings a bug does not change, e.g. BatchNorm2d's axes)."""
    def predict(kw: dict[str, Any]) -> Predictor:
        return lambda i, e: _forward(i[src], i, **{**(base or {}), **kw})
    names = list(table)
    for k, a in enumerate(names):
        PREDICTORS[f"{prefix}.{a}{suffix}"] = predict(table[a])
        for b in names[k + 1:]:
            if not set(table[a]) & set(table[b]):
                PREDICTORS[f"{prefix}.{a}-{b}{suffix}"] = predict({**table[a], **table[b]})


for _src in ("x", "x_small", "x_large"):
    _register_forwards("bn1d_y", FORWARD_1D, _src, f".{_src}")


def _running_1d(which: int, **kw: Any) -> Predictor:
    return lambda i, e: _running(_batches(i), float(i["momentum"]), **kw)[which]


for _which, _stat in enumerate(("mean", "var")):
    PREDICTORS[f"bn1d_running.{_stat}.keras"] = _running_1d(_which, keras=True)
PREDICTORS["bn1d_running.var.biased"] = _running_1d(1, biased=True)
PREDICTORS["bn1d_running.var.keras_biased"] = _running_1d(1, keras=True, biased=True)


PREDICTORS["bn1d_eval.batch_stats"] = lambda i, e: _affine(_normalise(i["x_eval"], _eps(i)), i["gamma"], i["beta"])


def _dx(bug: str) -> Predictor:
    """A known wrong dL/dx; the same bug in BatchNorm2d (4-d inputs) is predicted per channel."""
    def predict(i: Arrays, e: Arrays) -> np.ndarray:
        fn = _staged_dx if i["x"].ndim == 2 else _bn2d_dx
        return fn(i["x"], i["gamma"], i["dout"], _eps(i), bug)
    return predict


for _bug in ("no_mean_path", "no_var_path", "xhat_for_xc", "std_for_istd", "istd_for_std", "sum_no_axis_mu",
             "sum_no_axis_istd", "no_gamma"):
    PREDICTORS[f"bn_dx.{_bug}"] = _dx(_bug)
PREDICTORS["bn_dx.no_paths"] = lambda i, e: i["dout"] * i["gamma"] / np.sqrt(i["x"].var(axis=0) + _eps(i))


def _sum_all(v: np.ndarray, d: int) -> np.ndarray:
    return np.full(d, v.sum())


PREDICTORS["bn1d_dgamma.sum_all"] = lambda i, e: _sum_all(i["dout"] * _normalise(i["x"], _eps(i)), len(i["gamma"]))
PREDICTORS["bn1d_dbeta.is_dgamma"] = lambda i, e: (i["dout"] * _normalise(i["x"], _eps(i))).sum(axis=0)


def _y2d(i: Arrays, axes: tuple[int, ...], **kw: Any) -> np.ndarray:
    return _affine(_normalise(i["x"], _eps(i), axes, **kw), i["gamma"], i["beta"])


# "axes" and "flat" both choose the statistics' axes: one key, so that they never pair.
FORWARD_2D: dict[str, dict[str, Any]] = {
    "axes0": {"axes": (0,)}, "axes23": {"axes": (2, 3)}, "axes01": {"axes": (0, 1)},
    "flat_reshape": {"axes": (0,), "flat": True}, "eps_outside": {"eps_outside": True}, "unbiased": {"ddof": True},
    "swapped": {"affine": "swapped"}}
_register_forwards("bn2d_y", FORWARD_2D, "x", base={"axes": (0, 2, 3)})


def _running2d(i: Arrays, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    return _running(_batches2d(i), float(i["momentum"]), axes=(0, 2, 3), **kw)


PREDICTORS["bn2d_running.var.batch_count"] = lambda i, e: _running2d(i, count=lambda x: x.shape[0])[1]
PREDICTORS["bn2d_running.var.keras"] = lambda i, e: _running2d(i, keras=True)[1]
PREDICTORS["bn2d_running.var.biased"] = lambda i, e: _running2d(i, biased=True)[1]
PREDICTORS["bn2d_running.mean.keras"] = lambda i, e: _running2d(i, keras=True)[0]
PREDICTORS["bn2d_eval.batch_stats"] = lambda i, e: _y2d(i, (0, 2, 3))
PREDICTORS["bn2d_dx.flat_reshape"] = lambda i, e: _bn2d_dx(i["x"], i["gamma"], i["dout"], _eps(i), flat_reshape=True)
PREDICTORS["bn2d_dgamma.flat_reshape"] = lambda i, e: (i["dout"].reshape(-1, len(i["gamma"])) * _normalise(
    i["x"].reshape(-1, len(i["gamma"])), _eps(i))).sum(axis=0)


# ----------------------------------------------------------------------------- the terms of dL/dx
# tests/lab2/cases.py declares dL/dx = gamma/std * (dy - mean(dy) - x_hat * mean(dy * x_hat)) as three terms
# (Terms(..., instructor("bn1d_dx.terms")) and "bn2d_dx.terms"); these return them stacked, then each term's
# variants in the order cases.py describes them. The engine fits a wrong dx against them (grader/judging/terms.py).


def _dx_terms(x: np.ndarray, g: np.ndarray, dy: np.ndarray, eps: float, axes: tuple[int, ...],
              variant_axes: tuple[tuple[int, ...] | None, ...]) -> list[np.ndarray]:
    """The three terms (statistics over ``axes``), then the mean term's and the variance term's variants:
    for each of ``variant_axes`` (None: every entry) in place of ``axes``, the mean taken of dy (then times
    gamma/std) and of dL/dx_hat = gamma * dy (then times 1/std), the two ways the formula is written; last,
    the per-group quantities std and gamma, broadcast to x's shape."""
    gamma = _per_channel(g, x.ndim)
    mu = x.mean(axis=axes, keepdims=True)
    std = np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True) + eps)
    xhat = (x - mu) / std

    def mean(v: np.ndarray, over: tuple[int, ...] | None) -> np.ndarray:
        return np.broadcast_to(v.mean(axis=over, keepdims=True), v.shape)

    means, variances = [], []
    for over in variant_axes:
        means += [-gamma / std * mean(dy, over), -1.0 / std * mean(gamma * dy, over)]
        variances += [-gamma / std * xhat * mean(dy * xhat, over), -1.0 / std * xhat * mean(gamma * dy * xhat, over)]
    return [gamma / std * dy, -gamma / std * mean(dy, axes), -gamma / std * xhat * mean(dy * xhat, axes),
            *means, *variances, np.broadcast_to(std, x.shape), np.broadcast_to(gamma, x.shape)]


PREDICTORS["bn1d_dx.terms"] = lambda i, e: np.stack(_dx_terms(i["x"], i["gamma"], i["dout"], _eps(i), (0,),
                                                              ((1,), None)))
PREDICTORS["bn2d_dx.terms"] = lambda i, e: np.stack(_dx_terms(i["x"], i["gamma"], i["dout"], _eps(i), (0, 2, 3),
                                                              ((1,), None, (0,))))


# ----------------------------------------------------------------------------- the unbiased variance used to normalise
# Its footprint beyond the forward: the running variance gets the N / (N - 1) correction twice (eval is judged
# given the student's own running statistics, so it is not charged there again).

PREDICTORS["bn1d_running.var.twice"] = _running_1d(1, twice=True)
PREDICTORS["bn2d_running.var.twice"] = lambda i, e: _running2d(i, twice=True)[1]


# ----------------------------------------------------------------------------- BatchNorm2d's reshape without transpose
# Its footprint in the running statistics: every statistic is over the rows of x.reshape(-1, C).

def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, x.shape[1])


def _running_flat(i: Arrays) -> tuple[np.ndarray, np.ndarray]:
    return _running([_flat(x) for x in _batches2d(i)], float(i["momentum"]))


PREDICTORS["bn2d_running.mean.flat_reshape"] = lambda i, e: _running_flat(i)[0]
PREDICTORS["bn2d_running.var.flat_reshape"] = lambda i, e: _running_flat(i)[1]


# ------------------------------------------------------------- BatchNorm2d with statistics over axis 0 only
# Per (channel, pixel) statistics: running_mean (the pixels' means averaged) is still the channel mean, but
# running_var averages the per-pixel variances (each unbiased with N / (N - 1)) and misses the spread of
# the pixels' means; the backward of that forward is BatchNorm's gradient per (channel, pixel).

def _running_axes0(i: Arrays) -> np.ndarray:
    momentum, rv = float(i["momentum"]), np.ones(len(i["gamma"]))
    for x in _batches2d(i):
        n = x.shape[0]
        rv = (1 - momentum) * rv + momentum * (x.var(axis=0) * n / (n - 1)).mean(axis=(1, 2))
    return rv


def _dx_axes0(i: Arrays) -> np.ndarray:
    x, dxhat = i["x"], i["dout"] * _per_channel(i["gamma"], 4)
    xc = x - x.mean(axis=0)
    istd = 1.0 / np.sqrt((xc**2).mean(axis=0) + _eps(i))
    xhat = xc * istd
    return istd * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).mean(axis=0))


PREDICTORS["bn2d_running.var.axes0"] = lambda i, e: _running_axes0(i)
PREDICTORS["bn2d_dx.axes0"] = lambda i, e: _dx_axes0(i)
PREDICTORS["bn2d_dgamma.axes0"] = lambda i, e: (i["dout"] * _normalise(i["x"], _eps(i), (0,))).sum(axis=(0, 2, 3))


# ------------------------------------------------------------- eval given the student's running statistics
# ``Given`` (grader/judging/given.py): when the student's running statistics differ from the reference's,
# eval is judged against the eval formula applied to THEIR statistics, so that a running-statistics bug
# costs points in the running-statistics cases only (``g``: the student's outputs, running_*_used among them).

def _eval_given(i: Arrays, g: Arrays, x_key: str) -> dict[str, np.ndarray]:
    x = i[x_key]
    shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    # In the statistics' own dtype, as the reference's eval would compute with them (float32 stays float32).
    rm, rv = (np.asarray(g[k]).reshape(shape) for k in ("running_mean_used", "running_var_used"))
    return {"y_eval": _affine((x - rm) / np.sqrt(rv + _eps(i)), i["gamma"], i["beta"])}


PREDICTORS["given.bn1d_eval"] = lambda i, g: {**_eval_given(i, g, "x_eval"), "stats_after_eval": np.concatenate(
    [np.asarray(g["running_mean_used"], dtype=np.float64), np.asarray(g["running_var_used"], dtype=np.float64)])}
PREDICTORS["given.bn2d_eval"] = lambda i, g: _eval_given(i, g, "x")
