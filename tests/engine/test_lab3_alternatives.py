"""Lab 3's grader against CORRECT implementations that differ from the reference: full marks for each.

The cases compare results, not code: a col2im that loops over patches, a Conv2d written with
einsum over stride-trick windows, an im2col built with sliding_window_view, a max pooling that
loops over output positions, and a conv2d_naive with scalar loops all keep every point.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import grade

LAB = load_cases("lab3", paths.tests_dir())
FAST = [c.name for c in LAB.cases if c.name != "mnist_accuracy"]
FAST_MAX = sum(c.points for c in LAB.cases if c.name in FAST)

COL2IM_LOOP = """    for u in range(kh):
        for v in range(kw):
            xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride] += cols[:, :, u, v]
"""
IM2COL_BODY = """    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for u in range(kh):
        for v in range(kw):
            cols[:, :, u, v] = xp[:, :, u:u + stride * (ho - 1) + 1:stride, v:v + stride * (wo - 1) + 1:stride]
    return cols.reshape(n, c * kh * kw, ho * wo)
"""
FORWARD_TAIL = """        cols = im2col(x, self.kernel_size, self.stride, self.padding)
        self._cols, self._x_shape = cols, x.shape
        out = np.matmul(self.weight.data.reshape(self.out_channels, -1), cols)
        if self.bias is not None:
            out += self.bias.data[:, None]
        return out.reshape(n, self.out_channels, ho, wo)
"""
BACKWARD_BODY = """        n, f = grad_output.shape[:2]
        g = grad_output.reshape(n, f, -1)
        self.weight.grad += np.matmul(g, self._cols.transpose(0, 2, 1)).sum(axis=0).reshape(self.weight.data.shape)
        if self.bias is not None:
            self.bias.grad += g.sum(axis=(0, 2))
        dcols = np.matmul(self.weight.data.reshape(f, -1).T, g)
        return col2im(dcols, self._x_shape, self.kernel_size, self.stride, self.padding)
"""
NAIVE_LOOP = """                    patch = xp[b, :, stride * i:stride * i + kh, stride * j:stride * j + kw]
                    out[b, k, i, j] = np.sum(patch * weight[k])
"""
MAX_FORWARD = """        win = _windows(x, self.kernel_size, self.stride)
        self._argmax = win.argmax(axis=0)
        self._x_shape = x.shape
        return win.max(axis=0)
"""
MAX_BACKWARD = """        positions = np.arange(self.kernel_size ** 2).reshape(-1, 1, 1, 1, 1)
        grad_windows = np.where(self._argmax == positions, grad_output, 0.0)
        return _add_windows(grad_windows, self._x_shape, self.kernel_size, self.stride)
"""

ALTERNATIVES = {
    "col2im-loops-over-patches": {"conv.py": [(COL2IM_LOOP, """    for i in range(ho):
        for j in range(wo):
            xp[:, :, stride * i:stride * i + kh, stride * j:stride * j + kw] += cols[:, :, :, :, i, j]
""")]},
    "im2col-sliding-window-view": {"conv.py": [(IM2COL_BODY, """    p = padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    windows = np.lib.stride_tricks.sliding_window_view
    win = windows(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)
""")]},
    "conv-einsum-stride-tricks": {"conv.py": [
        (FORWARD_TAIL, """        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        windows = np.lib.stride_tricks.sliding_window_view
        win = windows(xp, (kh, kw), axis=(2, 3))[:, :, ::self.stride, ::self.stride]
        self._win, self._x_shape = win, x.shape
        out = np.einsum("nchwuv,fcuv->nfhw", win, self.weight.data)
        return out + self.bias.data[:, None, None] if self.bias is not None else out
"""),
        (BACKWARD_BODY, """        self.weight.grad += np.einsum("nchwuv,nfhw->fcuv", self._win, grad_output)
        if self.bias is not None:
            self.bias.grad += grad_output.sum(axis=(0, 2, 3))
        contrib = np.einsum("fcuv,nfhw->ncuvhw", self.weight.data, grad_output)
        n, c, kh, kw, ho, wo = contrib.shape
        return col2im(contrib.reshape(n, c * kh * kw, ho * wo), self._x_shape, self.kernel_size, self.stride,
                      self.padding)
"""),
    ]},
    "naive-scalar-loops": {"conv.py": [(NAIVE_LOOP, """                    total = 0.0
                    for ch in range(weight.shape[1]):
                        for u in range(kh):
                            for v in range(kw):
                                total += xp[b, ch, stride * i + u, stride * j + v] * weight[k, ch, u, v]
                    out[b, k, i, j] = total
""")]},
    "maxpool-loops-over-positions": {"pooling.py": [
        (MAX_FORWARD, """        k, s = self.kernel_size, self.stride
        n, c, h, w = x.shape
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        out = np.empty((n, c, ho, wo))
        self._where = []
        for i in range(ho):
            for j in range(wo):
                window = x[:, :, s * i:s * i + k, s * j:s * j + k].reshape(n, c, k * k)
                out[:, :, i, j] = window.max(axis=2)
                self._where.append((i, j, window.argmax(axis=2)))
        self._x_shape = x.shape
        return out
"""),
        (MAX_BACKWARD, """        k, s = self.kernel_size, self.stride
        dx = np.zeros(self._x_shape)
        nn, cc = np.meshgrid(np.arange(self._x_shape[0]), np.arange(self._x_shape[1]), indexing="ij")
        for i, j, arg in self._where:
            np.add.at(dx, (nn, cc, s * i + arg // k, s * j + arg % k), grad_output[:, :, i, j])
        return dx
"""),
    ]},
}


@pytest.mark.parametrize("patches", list(ALTERNATIVES.values()), ids=list(ALTERNATIVES))
def test_correct_alternative_keeps_full_marks(patched_reference, request, patches) -> None:
    root = patched_reference(request.node.callspec.id, patches, lab="lab3")
    result = grade(LAB, root, isolated=False, only=FAST)
    failures = {c.name: c.output for c in result.cases if not c.passed}
    assert not failures, "\n\n".join(f"[{k}]\n{v}" for k, v in failures.items())
    assert result.score == FAST_MAX
