"""Softmax cross-entropy: the loss of a C-class classifier, from raw scores (logits)."""

from __future__ import annotations

import numpy as np

from .framework import Module


class SoftmaxCrossEntropy(Module):
    """Mean cross-entropy of softmax(logits) against integer class labels.

    Forward:
        p[n, c] = exp(z[n, c]) / sum_k exp(z[n, k])        softmax over the CLASS axis (axis 1)
        L = -(1/N) * sum_n log p[n, y[n]]                   mean over the batch
    Backward (for an upstream scalar g = dL_total/dL, 1.0 when L is the final loss):
        dL/dz = g * (p - onehot(y)) / N                     (N, C)

    Numerical stability: subtract each row's max before exp (softmax is unchanged by a
    per-row shift) and compute log p as ``z - max - log(sum(exp(z - max)))``; logits of
    +-1000 must give a finite loss and gradient.

    Shapes: logits (N, C) float64, targets (N,) integers in [0, C).
    """

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Returns the mean loss L as a Python float; keeps what backward needs."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("SoftmaxCrossEntropy.forward: not implemented yet")

    def backward(self, grad_output: float = 1.0) -> np.ndarray:
        """Returns dL/dlogits, shape (N, C), scaled by the upstream scalar ``grad_output``."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("SoftmaxCrossEntropy.backward: not implemented yet")
