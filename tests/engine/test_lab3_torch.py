"""Lab 3's reference against PyTorch in float64: conv2d, max_pool2d, avg_pool2d, unfold/fold, and gradients.

The graded expected values come from the reference, so the reference must agree with PyTorch's
definitions (cross-correlation, weight layout (F, C, kh, kw), floor output size, gradients by
autograd) over the same grid of configurations the cases use: strides 1/2/3, paddings 0/1/2,
rectangular kernels, C_in != C_out, H != W, a batch of one, strides that do not divide.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from grader import paths
from grader.isolation.loading import load_package

pytestmark = pytest.mark.torch
TOL = 1e-10

# (N, C, H, W, F, kh, kw, stride, padding)
CONV_GRID = [
    (2, 3, 5, 7, 4, 3, 3, 1, 1), (2, 3, 8, 9, 4, 3, 2, 2, 1), (1, 2, 10, 7, 3, 3, 3, 3, 2),
    (2, 3, 9, 11, 2, 2, 4, 3, 0), (1, 2, 6, 9, 3, 2, 3, 2, 1), (3, 1, 7, 7, 2, 3, 3, 1, 0),
    (2, 2, 7, 6, 3, 3, 3, 2, 1), (2, 3, 6, 8, 2, 2, 2, 2, 0), (1, 4, 5, 5, 5, 5, 1, 1, 2),
    (2, 1, 28, 28, 4, 3, 3, 1, 1),
]
# (N, C, H, W, k, stride)
POOL_GRID = [(2, 3, 7, 8, 2, 2), (2, 2, 7, 9, 3, 2), (1, 2, 9, 7, 3, 3), (2, 1, 6, 9, 2, 1), (3, 2, 8, 8, 3, 1)]


@pytest.fixture(scope="module")
def lab():
    root = paths.solutions_dir()
    if not root.is_dir():
        pytest.skip("no solutions/ (student release)")
    return load_package(root, "lab3")


def _err(a: np.ndarray, b) -> float:
    b = b.detach().numpy() if hasattr(b, "detach") else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


@pytest.mark.parametrize("config", CONV_GRID, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_conv2d_forward_and_gradients_match_torch(torch, lab, config, bias) -> None:
    n, c, h, w, f, kh, kw, s, p = config
    rng = np.random.default_rng(sum(config))
    x, weight = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, kh, kw))
    b = rng.standard_normal(f) if bias else None
    conv = lab.Conv2d(c, f, (kh, kw), stride=s, padding=p, bias=bias, rng=rng)
    conv.weight.data[...] = weight
    if bias:
        conv.bias.data[...] = b
    y = conv(x)
    g = rng.standard_normal(y.shape)
    dx = conv.backward(g)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=s, padding=p)
    (yt * torch.tensor(g)).sum().backward()
    assert _err(y, yt) < TOL
    assert _err(dx, xt.grad) < TOL
    assert _err(conv.weight.grad, wt.grad) < TOL
    if bias:
        assert _err(conv.bias.grad, bt.grad) < TOL
    assert _err(lab.conv2d_naive(x, weight, b, s, p), yt) < TOL


@pytest.mark.parametrize("config", CONV_GRID, ids=lambda c: "x".join(map(str, c)))
def test_im2col_is_unfold_and_col2im_is_fold(torch, lab, config) -> None:
    n, c, h, w, _, kh, kw, s, p = config
    rng = np.random.default_rng(sum(config))
    x = rng.standard_normal((n, c, h, w))
    cols = lab.im2col(x, (kh, kw), s, p)
    assert _err(cols, torch.nn.functional.unfold(torch.tensor(x), (kh, kw), padding=p, stride=s)) < TOL
    upstream = rng.standard_normal(cols.shape)
    folded = torch.nn.functional.fold(torch.tensor(upstream), (h, w), (kh, kw), padding=p, stride=s)
    assert _err(lab.col2im(upstream, x.shape, (kh, kw), s, p), folded) < TOL
    assert lab.conv_output_size(h, kh, s, p) * lab.conv_output_size(w, kw, s, p) == cols.shape[2]


@pytest.mark.parametrize("config", POOL_GRID, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_forward_and_gradient_match_torch(torch, lab, config, kind) -> None:
    n, c, h, w, k, s = config
    rng = np.random.default_rng(sum(config))
    x = rng.permutation(n * c * h * w).reshape(n, c, h, w) * 0.05 + rng.uniform(0, 0.01, (n, c, h, w))  # no ties
    layer = (lab.MaxPool2d if kind == "max" else lab.AvgPool2d)(k, s)
    y = layer(x)
    g = rng.standard_normal(y.shape)
    dx = layer.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    fn = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    yt = fn(xt, k, s)
    (yt * torch.tensor(g)).sum().backward()
    assert _err(y, yt) < TOL
    assert _err(dx, xt.grad) < TOL


def test_max_pool_sends_a_tie_to_the_first_maximum_like_torch(torch, lab) -> None:
    """Not graded (the cases avoid ties), but the handout states PyTorch's rule; the reference follows it."""
    x = np.zeros((1, 1, 4, 4))
    g = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    layer = lab.MaxPool2d(2)
    layer(x)
    xt = torch.tensor(x, requires_grad=True)
    (torch.nn.functional.max_pool2d(xt, 2) * torch.tensor(g)).sum().backward()
    assert _err(layer.backward(g), xt.grad) == 0.0
    assert [tuple(ij) for ij in np.argwhere(xt.grad.numpy()[0, 0])] == list(itertools.product((0, 2), (0, 2)))


def test_reference_cnn_matches_a_torch_cnn_with_the_same_weights(torch, lab) -> None:
    """build_cnn's forward and input gradient equal nn.Sequential's with copied parameters (float64)."""
    rng = np.random.default_rng(3)
    model = lab.build_cnn(rng)
    nn = torch.nn
    tmodel = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                           nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 64), nn.ReLU(),
                           nn.Linear(64, 10)).double()
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters(), strict=True):
            tp.copy_(torch.tensor(p.data))
    x = rng.random((3, 1, 28, 28))
    y = model(x)
    g = rng.standard_normal(y.shape)
    dx = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    yt = tmodel(xt)
    (yt * torch.tensor(g)).sum().backward()
    assert _err(y, yt) < TOL
    assert _err(dx, xt.grad) < TOL
    for p, tp in zip(model.parameters(), tmodel.parameters(), strict=True):
        assert _err(p.grad, tp.grad) < TOL
