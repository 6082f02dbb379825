"""The Lab 2 reference agrees with PyTorch in float64, to ~1e-10.

BatchNorm1d/2d: training forward, input and parameter gradients under a RANDOM upstream gradient,
running statistics over several training steps with batches of different sizes (PyTorch's
momentum convention and unbiased running variance), and the eval forward that uses them.
Dropout: masks differ between libraries, so only the convention is compared: kept entries are
scaled by 1/(1 - p) exactly as torch.nn.functional.dropout scales them, and eval is the identity.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from grader.isolation.loading import load_package

pytestmark = pytest.mark.torch

RTOL = 1e-10
ATOL = 1e-12


@cache
def _load(root: Path) -> ModuleType:
    return load_package(root, "lab2")


@pytest.fixture
def lab2(solutions: Path) -> ModuleType:
    return _load(solutions)


def assert_close(got, want, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} (reference) != {want.shape} (torch)"
    err = np.abs(got - want)
    bad = ~(err <= ATOL + RTOL * np.abs(want))
    assert not bad.any(), f"{what}: max abs error {err.max():.3g} ({int(bad.sum())} of {bad.size} entries)"


def _pair(lab2, torch, kind: str, c: int, eps: float, momentum: float, rng: np.random.Generator):
    ours = getattr(lab2, kind)(c, eps=eps, momentum=momentum)
    theirs = getattr(torch.nn, kind)(c, eps=eps, momentum=momentum).double()
    gamma, beta = rng.uniform(0.5, 2.0, c) * rng.choice([-1.0, 1.0], c), rng.standard_normal(c)
    ours.weight.data[...], ours.bias.data[...] = gamma, beta
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(gamma))
        theirs.bias.copy_(torch.from_numpy(beta))
    return ours, theirs


# (kind, shapes of the successive training batches, eps, momentum)
SETTINGS = [
    ("BatchNorm1d", [(6, 4), (2, 4), (9, 4)], 1e-5, 0.1),
    ("BatchNorm1d", [(3, 7), (16, 7)], 1e-3, 0.3),
    ("BatchNorm2d", [(3, 4, 2, 5), (2, 4, 2, 5), (4, 4, 3, 3)], 1e-5, 0.1),
    ("BatchNorm2d", [(1, 3, 4, 2), (5, 3, 1, 2)], 1e-2, 0.05),
]


@pytest.mark.parametrize(("kind", "shapes", "eps", "momentum"), SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_batchnorm_matches_torch_in_training_and_eval(lab2, torch, kind, shapes, eps, momentum, seed) -> None:
    rng = np.random.default_rng(seed)
    c = shapes[0][1]
    ours, theirs = _pair(lab2, torch, kind, c, eps, momentum, rng)
    ours.train()
    theirs.train()
    for step, shape in enumerate(shapes):
        view = (1, c) + (1,) * (len(shape) - 2)
        x = rng.standard_normal(shape) * rng.uniform(0.01, 3.0, c).reshape(view) + rng.uniform(-2, 2, c).reshape(view)
        upstream = rng.standard_normal(shape)  # random: under all ones dL/dx would be zero for both
        ours.zero_grad()
        y = ours(x)
        dx = ours.backward(upstream)
        xt = torch.from_numpy(x).requires_grad_(True)
        theirs.zero_grad()
        yt = theirs(xt)
        yt.backward(torch.from_numpy(upstream))
        what = f"{kind} step {step} {shape}"
        assert_close(y, yt.detach().numpy(), f"{what}: training forward")
        assert_close(dx, xt.grad.numpy(), f"{what}: dL/dx")
        assert_close(ours.weight.grad, theirs.weight.grad.numpy(), f"{what}: dL/dgamma")
        assert_close(ours.bias.grad, theirs.bias.grad.numpy(), f"{what}: dL/dbeta")
        assert_close(ours.running_mean, theirs.running_mean.numpy(), f"{what}: running_mean")
        assert_close(ours.running_var, theirs.running_var.numpy(), f"{what}: running_var")
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shapes[0])
    with torch.no_grad():
        assert_close(ours(x), theirs(torch.from_numpy(x)).numpy(), f"{kind}: eval forward")
    assert_close(ours.running_var, theirs.running_var.numpy(), f"{kind}: running_var after eval")


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_scaling_matches_torch(lab2, torch, p) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 2.0, size=(200, 300))
    layer = lab2.Dropout(p, rng=np.random.default_rng(0))
    layer.train()
    y = layer(x)
    yt = torch.nn.functional.dropout(torch.from_numpy(x), p=p, training=True).numpy()
    ours_kept, theirs_kept = y[y != 0] / x[y != 0], yt[yt != 0] / x[yt != 0]
    assert_close(np.unique(ours_kept), np.unique(theirs_kept), f"Dropout(p={p}): scale of the kept entries")
    # Both drop a fraction close to p (5 standard deviations over 60,000 entries).
    tol = 5 * np.sqrt(p * (1 - p) / x.size) + 1e-12
    assert abs(np.mean(y == 0) - p) <= tol and abs(np.mean(yt == 0) - p) <= tol
    dx = layer.backward(np.ones_like(x))
    assert np.array_equal(dx != 0, y != 0), "backward must use the forward's mask"
    layer.eval()
    assert_close(layer(x), torch.nn.functional.dropout(torch.from_numpy(x), p=p, training=False).numpy(),
                 f"Dropout(p={p}): eval")
