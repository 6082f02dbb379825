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
        ### BEGIN SOLUTION
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_norm
        self._probs = np.exp(log_probs)
        self._targets = np.asarray(targets)
        return float(-log_probs[np.arange(n), self._targets].mean())
        ### END SOLUTION

    def backward(self, grad_output: float = 1.0) -> np.ndarray:
        """Returns dL/dlogits, shape (N, C), scaled by the upstream scalar ``grad_output``."""
        ### BEGIN SOLUTION
        n = self._probs.shape[0]
        grad = self._probs.copy()
        grad[np.arange(n), self._targets] -= 1.0
        return grad * (grad_output / n)
        ### END SOLUTION
