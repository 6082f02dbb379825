"""Layers: Linear, the activations ReLU, Sigmoid and Tanh, and Sequential.

Shapes: N is the batch size, D the input features, M the output features.
Every ``backward`` gets ``grad_output = dL/dy`` (same shape as the forward output) and
returns ``dL/dx`` (same shape as the forward input). See labs/lab1/README.md for the
derivations.
"""

from __future__ import annotations

import numpy as np

from .framework import Module, Parameter


class Linear(Module):
    """A fully connected layer: ``y = x @ W.T + b``.

    Weight layout is PyTorch's: ``weight`` has shape (M, D) = (out_features, in_features),
    ``bias`` has shape (M,).

    Shapes: x (N, D) -> y (N, M).
    """

    def __init__(self, in_features: int, out_features: int,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        # U(-1/sqrt(D), 1/sqrt(D)) keeps the output variance independent of D (PyTorch's default).
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, size=(out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, size=(out_features,)))
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y[n, m] = sum_d x[n, d] * W[m, d] + b[m].

        Args:
            x: (N, D) input batch. Keep it for backward; do not modify it.
        Returns:
            y: (N, M).
        """
        ### BEGIN SOLUTION
        self._x = x
        return x @ self.weight.data.T + self.bias.data
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Given dL/dy (N, M), ADD the parameter gradients and return dL/dx.

            dL/dW = grad_output.T @ x     (M, D)   -> add into self.weight.grad
            dL/db = sum over the batch    (M,)     -> add into self.bias.grad
            dL/dx = grad_output @ W       (N, D)   -> return it

        The bias gradient is a SUM over the batch, not a mean: any 1/N belongs to the loss.
        """
        ### BEGIN SOLUTION
        self.weight.grad += grad_output.T @ self._x
        self.bias.grad += grad_output.sum(axis=0)
        return grad_output @ self.weight.data
        ### END SOLUTION


class ReLU(Module):
    """ReLU: y = max(x, 0) elementwise. Any shape.

    Convention: the derivative at exactly x = 0 is taken as 0.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = max(x, 0). Return a NEW array: ``x`` belongs to the caller and must not change."""
        ### BEGIN SOLUTION
        self._mask = x > 0
        return np.where(self._mask, x, 0.0)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx = dL/dy * 1[x > 0]."""
        ### BEGIN SOLUTION
        return grad_output * self._mask
        ### END SOLUTION


class Sigmoid(Module):
    """Sigmoid: y = 1 / (1 + exp(-x)) elementwise. Any shape.

    Must be finite for any finite x (x = -1000 and x = +1000 included).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = 1 / (1 + exp(-x)), computed without overflow.

        Hint: with z = exp(-|x|) (always <= 1), y = 1/(1+z) for x >= 0 and z/(1+z) for x < 0.
        """
        ### BEGIN SOLUTION
        z = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
        self._y = y
        return y
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx = dL/dy * y * (1 - y), with y the forward output."""
        ### BEGIN SOLUTION
        return grad_output * self._y * (1.0 - self._y)
        ### END SOLUTION


class Tanh(Module):
    """Tanh: y = tanh(x) elementwise. Any shape."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = tanh(x) (np.tanh is stable for large |x|)."""
        ### BEGIN SOLUTION
        self._y = np.tanh(x)
        return self._y
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx = dL/dy * (1 - y**2), with y the forward output."""
        ### BEGIN SOLUTION
        return grad_output * (1.0 - self._y**2)
        ### END SOLUTION


class Sequential(Module):
    """Applies modules in order: y = f_K(...f_2(f_1(x))).

    ``self.layers`` is the list of modules; ``parameters()`` finds theirs through it.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        self.layers = list(layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Feed x through every layer, first to last."""
        ### BEGIN SOLUTION
        for layer in self.layers:
            x = layer(x)
        return x
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Chain rule: feed the gradient through every layer's backward, LAST to first."""
        ### BEGIN SOLUTION
        for layer in reversed(self.layers):
            grad_output = layer.backward(grad_output)
        return grad_output
        ### END SOLUTION
