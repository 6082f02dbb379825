"""Convolution: the definition with loops, im2col / col2im, and the Conv2d layer built on them.

Shapes: N batch, C input channels (C_in), F output channels (C_out), H x W input size,
kh x kw kernel size, S stride, P zero padding (the same on all four sides), Ho x Wo output size,
K = C * kh * kw the length of one patch, L = Ho * Wo the number of patches per image.

Convention (PyTorch's): a "convolution" is a cross-correlation (the kernel is NOT flipped),
and the weight has shape (F, C, kh, kw) = (out_channels, in_channels, kh, kw).
See labs/lab3/README.md for the drawings and the derivation of the backward pass.
"""

from __future__ import annotations

import numpy as np

from .lab1 import Module, Parameter

IntPair = int | tuple[int, int]


def _pair(value: IntPair) -> tuple[int, int]:
    """3 -> (3, 3); (3, 5) -> (3, 5)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair (h, w), got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: floor((size + 2 * padding - kernel) / stride) + 1.

    The floor matters when the stride does not divide size + 2P - kernel: the last rows or
    columns of the padded input that do not fill a whole window are ignored, as in PyTorch.
    Raises ValueError if the kernel does not fit in the padded input.
    """
    ### BEGIN SOLUTION
    if size + 2 * padding < kernel:
        raise ValueError(f"kernel {kernel} does not fit in an input of size {size} with padding {padding}")
    return (size + 2 * padding - kernel) // stride + 1
    ### END SOLUTION


def conv2d_naive(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
                 stride: int = 1, padding: int = 0) -> np.ndarray:
    """The definition, with loops (slow: for understanding and for checking the fast version).

        out[n, f, i, j] = b[f] + sum_{c, u, v} xp[n, c, S*i + u, S*j + v] * w[f, c, u, v]

    where xp is x zero-padded by P on every side (top, bottom, left and right).

    Args:
        x: (N, C, H, W). weight: (F, C, kh, kw). bias: (F,) or None.
        stride, padding: ints (the same along both axes).
    Returns:
        (N, F, Ho, Wo) with Ho = conv_output_size(H, kh, S, P), Wo likewise.
    """
    ### BEGIN SOLUTION
    n, _, h, w = x.shape
    f, _, kh, kw = weight.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, f, ho, wo))
    for b in range(n):
        for k in range(f):
            for i in range(ho):
                for j in range(wo):
                    patch = xp[b, :, stride * i:stride * i + kh, stride * j:stride * j + kw]
                    out[b, k, i, j] = np.sum(patch * weight[k])
            if bias is not None:
                out[b, k] += bias[k]
    return out
    ### END SOLUTION


def im2col(x: np.ndarray, kernel_size: IntPair, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Every kh x kw patch of the zero-padded x as a column: (N, C, H, W) -> (N, C*kh*kw, Ho*Wo).

    The layout is torch.nn.functional.unfold's:

        cols[n, (c * kh + u) * kw + v, i * Wo + j] = xp[n, c, S*i + u, S*j + v]

    i.e. a patch's entries are ordered channel first, then kernel row u, then kernel column v
    (the order of weight.reshape(F, -1)), and the patches are ordered row by row (i, then j).

    Hint: loop over the kh * kw kernel offsets (u, v) (small), not over the Ho * Wo patches
    (many): for a fixed (u, v), the entries of all patches are one strided slice of xp,
    xp[:, :, u : u + S*(Ho-1) + 1 : S, v : v + S*(Wo-1) + 1 : S], of shape (N, C, Ho, Wo).
    """
    ### BEGIN SOLUTION
    kh, kw = _pair(kernel_size)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, u, v] = xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride]
    return cols.reshape(n, c * kh * kw, ho * wo)
    ### END SOLUTION


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel_size: IntPair,
           stride: int = 1, padding: int = 0) -> np.ndarray:
    """The adjoint (transpose) of im2col: (N, C*kh*kw, Ho*Wo) -> (N, C, H, W).

    Every entry of ``cols`` is ADDED back at the input position it was copied from, so an input
    pixel that belongs to several patches (stride < kernel: overlapping patches) receives the sum
    of their values; positions in the padding are dropped. This is what backward needs: if
    cols = im2col(x), then dL/dx = col2im(dL/dcols). (torch.nn.functional.fold does the same.)
    Returns a new array.
    """
    ### BEGIN SOLUTION
    kh, kw = _pair(kernel_size)
    n, c, h, w = x_shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = cols.reshape(n, c, kh, kw, ho, wo)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for u in range(kh):
        for v in range(kw):
            xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += cols[:, :, u, v]
    return xp[:, :, padding:padding + h, padding:padding + w].copy()
    ### END SOLUTION


class Conv2d(Module):
    """A 2-D convolution layer (cross-correlation, as torch.nn.Conv2d).

    Weight layout is PyTorch's: ``weight`` (F, C, kh, kw) = (out_channels, in_channels, kh, kw),
    ``bias`` (F,) (or None with ``bias=False``). ``kernel_size`` is an int or a pair (kh, kw);
    ``stride`` and ``padding`` are ints, the same along both axes, padding with zeros on all four
    sides.

    Shapes: x (N, C, H, W) -> y (N, F, Ho, Wo), Ho = floor((H + 2P - kh) / S) + 1 (Wo likewise).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: int = 1,
                 padding: int = 0, bias: bool = True, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding = int(stride), int(padding)
        kh, kw = self.kernel_size
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = C * kh * kw, PyTorch's default.
        bound = 1.0 / np.sqrt(in_channels * kh * kw)
        self.weight = Parameter(rng.uniform(-bound, bound, size=(out_channels, in_channels, kh, kw)))
        self.bias = Parameter(rng.uniform(-bound, bound, size=(out_channels,))) if bias else None
        self._cols: np.ndarray | None = None
        self._x_shape: tuple[int, int, int, int] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """y = conv(x, weight) + bias, through im2col and ONE matrix product (no Python loop
        over the batch or the output positions).

            cols = im2col(x)                       (N, K, L)
            y[n] = weight.reshape(F, K) @ cols[n]  (N, F, L), + bias[:, None], reshaped to (N, F, Ho, Wo)

        Keep what backward needs (cols, the input's shape); do not modify x.
        """
        ### BEGIN SOLUTION
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"Conv2d expects {self.in_channels} input channels, got x of shape {x.shape}")
        kh, kw = self.kernel_size
        ho = conv_output_size(h, kh, self.stride, self.padding)
        wo = conv_output_size(w, kw, self.stride, self.padding)
        cols = im2col(x, self.kernel_size, self.stride, self.padding)
        self._cols, self._x_shape = cols, x.shape
        out = np.matmul(self.weight.data.reshape(self.out_channels, -1), cols)
        if self.bias is not None:
            out += self.bias.data[:, None]
        return out.reshape(n, self.out_channels, ho, wo)
        ### END SOLUTION

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """Given dL/dy (N, F, Ho, Wo), ADD the parameter gradients and return dL/dx (N, C, H, W).

        The forward was a matrix product per image, y[n] = Wm @ cols[n] + b, with cols = im2col(x)
        (N, K, L), Wm = weight.reshape(F, K) and y[n] reshaped to (F, L). Derive the gradients from
        it as for Linear in Lab 1 (the handout's backward section), with G = grad_output.reshape(N, F, L):

            dL/dW    (F, K): a sum over the batch -> reshaped to (F, C, kh, kw), add into weight.grad
            dL/db    (F,)                         -> add into bias.grad
            dL/dcols (N, K, L), then dL/dx = col2im(dL/dcols) (N, C, H, W) -> return it
        """
        ### BEGIN SOLUTION
        n, f = grad_output.shape[:2]
        g = grad_output.reshape(n, f, -1)
        self.weight.grad += np.matmul(g, self._cols.transpose(0, 2, 1)).sum(axis=0).reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=(0, 2))
        dcols = np.matmul(self.weight.data.reshape(f, -1).T, g)
        return col2im(dcols, self._x_shape, self.kernel_size, self.stride, self.padding)
        ### END SOLUTION
