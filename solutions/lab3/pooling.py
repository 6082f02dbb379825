"""Pooling layers (max and average, square windows, no padding) and Flatten.

Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo), Ho = floor((H - k) / S) + 1 (Wo likewise), with
k the window size and S the stride (default S = k). Windows overlap when S < k (e.g. k=3, S=2).

Convention on ties (max pooling): the graded inputs have no two equal values in a window. For
completeness, PyTorch gives the whole gradient of a window to the FIRST maximal entry in
row-major order inside the window (what np.argmax returns too).
"""

from __future__ import annotations

import numpy as np

from .conv import conv_output_size
from .lab1 import Module


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (k*k, N, C, Ho, Wo): entry u*k + v of the k x k window of each output position.

    Provided. A loop over the k*k offsets (u, v), each a strided slice of x (as in im2col). The
    window axis comes FIRST: reductions over it (max, argmax, mean) then run over large
    contiguous blocks, several times faster than over a short last axis.
    """
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, k, stride), conv_output_size(w, k, stride)
    out = np.empty((k * k, n, c, ho, wo), dtype=x.dtype)
    for u in range(k):
        for v in range(k):
            out[u * k + v] = x[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride]
    return out


def _add_windows(grad_windows: np.ndarray, x_shape: tuple[int, ...], k: int, stride: int) -> np.ndarray:
    """The adjoint of ``_windows``: (k*k, N, C, Ho, Wo) -> (N, C, H, W), ADDING overlapping entries.

    Provided. A pixel inside several windows (stride < k) receives the sum of their gradients.
    """
    n, c, h, w = x_shape
    ho, wo = grad_windows.shape[3:5]
    dx = np.zeros(x_shape, dtype=grad_windows.dtype)
    for u in range(k):
        for v in range(k):
            dx[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += grad_windows[u * k + v]
    return dx


class MaxPool2d(Module):
    """y[n, c, i, j] = max over the k x k window of x[n, c] starting at (S*i, S*j).

    ``kernel_size`` k and ``stride`` S are ints (S defaults to k, as in PyTorch).
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The max of each window, (N, C, H, W) -> (N, C, Ho, Wo).

        Remember, for backward, WHICH entry of each window was the maximum (e.g. its argmax
        over the window) and the input's shape. ``_windows`` may help; loops over the k*k
        window offsets are fine, loops over N, C or output positions are too slow for training.
        """
        ### BEGIN SOLUTION
        win = _windows(x, self.kernel_size, self.stride)
        self._argmax = win.argmax(axis=0)
        self._x_shape = x.shape
        return win.max(axis=0)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx: each window's gradient goes ONLY to the entry that was its maximum.

        Where windows overlap, an entry that is the maximum of several windows receives the SUM
        of their gradients. Every other entry gets 0.
        """
        ### BEGIN SOLUTION
        positions = np.arange(self.kernel_size ** 2).reshape(-1, 1, 1, 1, 1)
        grad_windows = np.where(self._argmax == positions, grad_output, 0.0)
        return _add_windows(grad_windows, self._x_shape, self.kernel_size, self.stride)
        ### END SOLUTION


class AvgPool2d(Module):
    """y[n, c, i, j] = mean over the k x k window of x[n, c] starting at (S*i, S*j).

    ``kernel_size`` k and ``stride`` S are ints (S defaults to k, as in PyTorch).
    """

    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.stride = int(stride) if stride is not None else self.kernel_size

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The mean of each window (the divisor is k*k), (N, C, H, W) -> (N, C, Ho, Wo)."""
        ### BEGIN SOLUTION
        self._x_shape = x.shape
        return _windows(x, self.kernel_size, self.stride).mean(axis=0)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx: every entry of a window gets the window's gradient divided by k*k (overlaps add)."""
        ### BEGIN SOLUTION
        k2 = self.kernel_size ** 2
        grad_windows = np.broadcast_to(grad_output / k2, (k2,) + grad_output.shape)
        return _add_windows(grad_windows, self._x_shape, self.kernel_size, self.stride)
        ### END SOLUTION


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), in C order (as torch.flatten(x, 1)); backward reshapes back."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, C, H, W) -> (N, C*H*W); remember the input's shape for backward."""
        ### BEGIN SOLUTION
        self._x_shape = x.shape
        return x.reshape(len(x), -1)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """(N, C*H*W) -> (N, C, H, W): the gradient in the input's shape."""
        ### BEGIN SOLUTION
        return grad_output.reshape(self._x_shape)
        ### END SOLUTION
