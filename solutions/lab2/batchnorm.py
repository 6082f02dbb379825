"""Batch normalisation: BatchNorm1d on (N, D) and BatchNorm2d on (N, C, H, W).

Conventions (PyTorch's; the tests rely on them, the handout derives them):
  * Parameters are named ``weight`` (gamma, the scale, initialised to 1) and ``bias`` (beta,
    the shift, initialised to 0), shape (D,) or (C,), as ``torch.nn.BatchNorm1d`` names them.
  * Training forward normalises with the BATCH statistics; the variance used to normalise is
    the BIASED one (divide by N): ``var = mean((x - mean)**2)``.
  * ``eps`` goes INSIDE the square root: ``x_hat = (x - mean) / sqrt(var + eps)``.
  * Running statistics (plain arrays ``running_mean``, ``running_var``, not Parameters; they
    start at 0 and 1) are updated in every TRAINING forward with PyTorch's momentum convention

        running = (1 - momentum) * running + momentum * batch_statistic

    where the batch statistic for ``running_var`` is the UNBIASED variance (divide by N - 1).
    Keras' ``momentum`` is the weight of the OLD value (0.99): a different convention.
  * Eval forward (``self.training`` False, set by ``model.eval()``) normalises with the running
    statistics and changes nothing.
  * ``backward`` returns dL/dx and ADDS dL/dgamma, dL/dbeta into ``weight.grad``, ``bias.grad``.
"""

from __future__ import annotations

import numpy as np

from .lab1 import Module, Parameter


class BatchNorm1d(Module):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, statistics per feature over the batch.

    Shapes: x (N, D) -> y (N, D); weight (gamma), bias (beta), running_mean, running_var: (D,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features))   # gamma
        self.bias = Parameter(np.zeros(num_features))    # beta
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Training: batch statistics, and update the running ones. Eval: running statistics.

        Training (N >= 2), with every statistic of shape (D,) and taken over axis 0:
            mean = x.mean(axis=0)
            var  = ((x - mean)**2).mean(axis=0)                 biased: divide by N
            x_hat = (x - mean) / sqrt(var + eps)                (N, D)
            y = weight * x_hat + bias                           (N, D)
            running_mean = (1 - momentum) * running_mean + momentum * mean
            running_var  = (1 - momentum) * running_var  + momentum * var * N / (N - 1)
        Eval:
            y = weight * (x - running_mean) / sqrt(running_var + eps) + bias

        Keep what backward needs on self; do not modify ``x``.
        """
        ### BEGIN SOLUTION
        if not self.training:
            return self.weight.data * (x - self.running_mean) / np.sqrt(self.running_var + self.eps) \
                + self.bias.data
        n = x.shape[0]
        if n < 2:
            raise ValueError(f"BatchNorm1d needs at least 2 samples per batch in training, got {n}")
        mu = x.mean(axis=0)
        xc = x - mu
        var = (xc**2).mean(axis=0)
        std = np.sqrt(var + self.eps)
        istd = 1.0 / std
        x_hat = xc * istd
        self._cache = (xc, std, istd, x_hat)
        m = self.momentum
        self.running_mean = (1.0 - m) * self.running_mean + m * mu
        self.running_var = (1.0 - m) * self.running_var + m * var * n / (n - 1)
        return self.weight.data * x_hat + self.bias.data
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Given dL/dy (N, D) of the last TRAINING forward: add dgamma, dbeta; return dL/dx (N, D).

            dL/dbeta  = sum_n dy                    -> add into bias.grad      (D,)
            dL/dgamma = sum_n dy * x_hat            -> add into weight.grad    (D,)
            dL/dx                                   -> return it               (N, D)

        dL/dx is the exercise: derive it (handout, section 3). Step back through the forward's
        stages, last to first: y = gamma * x_hat + beta, x_hat = xc * istd, istd = 1 / std,
        std = sqrt(var + eps), var = mean_n(xc**2), xc = x - mu, mu = mean_n(x). Each stage's
        local derivative is one line; where a variable feeds two stages (xc feeds x_hat and var),
        add the gradients of both paths. Every gradient has the shape of its variable: (N, D) or
        (D,). Keep what the forward computed (xc, std, istd, x_hat) in a cache. Simplified, the
        stages give a compact one-line formula; either way is fine.
        """
        ### BEGIN SOLUTION
        xc, std, istd, x_hat = self._cache
        n = grad_output.shape[0]
        self.bias.grad += grad_output.sum(axis=0)
        self.weight.grad += (grad_output * x_hat).sum(axis=0)
        # Back through the forward's stages, last to first (the computational graph).
        dx_hat = grad_output * self.weight.data             # (N, D)
        distd = (dx_hat * xc).sum(axis=0)                   # x_hat = xc * istd      (D,)
        dxc = dx_hat * istd                                 # first path into xc     (N, D)
        dstd = -distd / std**2                              # istd = 1 / std         (D,)
        dvar = 0.5 * dstd / std                             # std = sqrt(var + eps)  (D,)
        dxc = dxc + 2.0 * xc * dvar / n                     # var = mean(xc**2)      (N, D)
        dmu = -dxc.sum(axis=0)                              # xc = x - mu            (D,)
        return dxc + dmu / n                                # mu = mean(x)           (N, D)
        ### END SOLUTION


class BatchNorm2d(Module):
    """BatchNorm over images: statistics per CHANNEL, over the batch and both spatial axes.

    Everything is as in BatchNorm1d with each channel c's N * H * W values playing the role of
    one feature's N values (so the unbiased factor for ``running_var`` is M / (M - 1) with
    M = N * H * W). Reusing a BatchNorm1d on a reshaped input is one way; computing with
    ``axis=(0, 2, 3)`` is another.

    Shapes: x (N, C, H, W) -> y (N, C, H, W); weight, bias, running_mean, running_var: (C,).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features))   # gamma
        self.bias = Parameter(np.zeros(num_features))    # beta
        self.running_mean = np.zeros(num_features)
        self.running_var = np.ones(num_features)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Like BatchNorm1d.forward, each channel normalised over axes (0, 2, 3)."""
        ### BEGIN SOLUTION
        n, c, h, w = x.shape
        rows = x.transpose(0, 2, 3, 1).reshape(-1, c)   # (N*H*W, C): one row per pixel
        bn = BatchNorm1d(c, self.eps, self.momentum)
        bn.weight, bn.bias = self.weight, self.bias       # the same Parameters: grads land here
        bn.running_mean, bn.running_var = self.running_mean, self.running_var
        bn.training = self.training
        y = bn(rows)
        self.running_mean, self.running_var = bn.running_mean, bn.running_var
        # A bound method, not a sub-module: parameters() must stay (weight, bias).
        self._rows_backward = bn.backward
        return y.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx (N, C, H, W); adds dL/dgamma, dL/dbeta (sums over N, H, W) into .grad."""
        ### BEGIN SOLUTION
        n, c, h, w = grad_output.shape
        dx = self._rows_backward(grad_output.transpose(0, 2, 3, 1).reshape(-1, c))
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        ### END SOLUTION
