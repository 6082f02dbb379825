"""Numerical gradients by central differences, for checking backward passes.

For a scalar function f and an input x (float64), every entry i gets

    df/dx[i] ~= (f(x + h e_i) - f(x - h e_i)) / (2 h)

whose error is O(h^2) from truncation plus O(eps * |f| / h) from rounding; with h = 1e-6 in
float64 both are around 1e-10 for the O(1) values the cases use, far below the 1e-5
relative tolerance of ``GradCheck``. Cases keep inputs away from kinks (ReLU at 0) and
ties (max pooling) by at least 100 h, so the two-sided difference never straddles one.

To check a layer y = g(x) against an upstream gradient G = dL/dy, use the scalar
L(x) = sum(g(x) * G), whose gradient is exactly what backward(G) must return. A random G
(never all ones: with all ones, softmax and batch-norm gradients vanish identically and a
wrong backward passes) is what makes the check see every term.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

H = 1e-6


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = H) -> np.ndarray:
    """Central-difference gradient of scalar ``f`` at ``x`` over every entry; x is not changed.

    Args:
        f: maps an array shaped like x to a scalar (it must not keep a reference to its input).
        x: float64 array, any shape.
    Returns:
        float64 array shaped like x.
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        f_plus = float(f(x.copy()))
        flat[i] = old - h
        f_minus = float(f(x.copy()))
        flat[i] = old
        gflat[i] = (f_plus - f_minus) / (2.0 * h)
    return grad


def require_float64(value: object, what: str) -> np.ndarray:
    """``value`` as an array, or a clear error if it is not float64.

    A float32 forward makes its own numerical gradient noise (rounding 1e-7 / h = 0.1), which
    would then blame a correct backward; the convention is named instead.
    """
    arr = np.asarray(value)
    if arr.dtype != np.float64:
        raise TypeError(f"{what} returned dtype {arr.dtype}; the labs compute in float64 (gradient "
                        "checks cannot work in lower precision): look for an astype or a float32 array")
    return arr


def directional_loss(forward: Callable[[np.ndarray], np.ndarray],
                     upstream: np.ndarray, what: str = "forward") -> Callable[[np.ndarray], float]:
    """L(x) = sum(forward(x) * upstream): its gradient is backward(upstream)."""
    return lambda x: float(np.sum(require_float64(forward(x), what) * upstream))


def away_from_zero(rng: np.random.Generator, shape: tuple[int, ...], low: float = 0.1,
                   high: float = 2.0) -> np.ndarray:
    """Random values with |v| in [low, high) and a random sign: no entry near a ReLU kink."""
    magnitude = rng.uniform(low, high, size=shape)
    return magnitude * rng.choice([-1.0, 1.0], size=shape)
