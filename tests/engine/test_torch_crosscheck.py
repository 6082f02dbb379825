"""The Lab 1 reference agrees with PyTorch in float64, to ~1e-10.

Every test builds the same inputs, weights and (random, never all-ones) upstream gradients for
the reference in ``solutions/lab1`` and for PyTorch, then compares forward values and every
gradient entry: |ref - torch| <= ATOL + RTOL * |torch|. torch comes from the ``torch`` fixture,
never a module-level import: a student release may lack it (these tests skip there, and fail in
CI, where torch is required).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from grader.isolation.loading import load_package
from grader.judging.gradcheck import away_from_zero

pytestmark = pytest.mark.torch

RTOL = 1e-10
ATOL = 1e-12
SEEDS = [0, 1, 2]
# (N, D, M): batch 1, non-square both ways, N == D == M.
LINEAR_SHAPES = [(1, 5, 3), (6, 5, 3), (3, 2, 7), (4, 4, 4)]
# Any shape for the elementwise activations: 1-d, batch 1, non-square, 3-d.
ACT_SHAPES = [(7,), (1, 6), (5, 3), (2, 3, 4)]
# (N, C): batch 1, N < C, N > C, N == C.
CE_SHAPES = [(1, 5), (3, 10), (8, 3), (4, 4)]
EXTREMES = np.array([-1000.0, -40.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 40.0, 1000.0])


@cache
def _load(root: Path) -> ModuleType:
    return load_package(root, "lab1")


@pytest.fixture
def lab1(solutions: Path) -> ModuleType:
    """The reference Lab 1 package, imported once under a private name."""
    return _load(solutions)


def assert_close(got: np.ndarray | float, want: np.ndarray | float, what: str, *,
                 rtol: float = RTOL, atol: float = ATOL) -> None:
    """Every entry of ``got`` (the reference) within ``atol + rtol * |want|`` of ``want`` (torch)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} (reference) != {want.shape} (torch)"
    assert np.all(np.isfinite(want)), f"{what}: torch itself is not finite: {want}"
    err = np.abs(got - want)
    bound = atol + rtol * np.abs(want)
    bad = ~(err <= bound)  # NaN in got counts as bad
    if bad.any():
        with np.errstate(divide="ignore", invalid="ignore"):  # bound is 0 for exact comparisons
            score = np.where(bad, np.nan_to_num(err / bound, nan=np.inf), -1.0)
        i = tuple(int(k) for k in np.unravel_index(int(np.argmax(score)), got.shape))
        pytest.fail(f"{what}: reference differs from torch in {int(bad.sum())} of {got.size} entries "
                    f"(tolerance |ref - torch| <= {atol:g} + {rtol:g} * |torch|); worst at {i}: "
                    f"ref {float(got[i])!r}, torch {float(want[i])!r}, abs err {float(err[i]):.3g}")


def t64(torch, a: np.ndarray, grad: bool = False):
    """A float64 tensor with its own copy of ``a``."""
    return torch.tensor(np.array(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def upstream(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A random upstream gradient: never all ones, so every term of a backward is exercised."""
    return rng.normal(size=shape)


def random_scalar(rng: np.random.Generator) -> float:
    """A random upstream scalar in +-[0.5, 2.5), never 1.0."""
    return float(rng.uniform(0.5, 2.5) * rng.choice([-1.0, 1.0]))


# --------------------------------------------------------------------------- Linear

@pytest.mark.parametrize("shape", LINEAR_SHAPES, ids=lambda s: "N{}_D{}_M{}".format(*s))
@pytest.mark.parametrize("seed", SEEDS)
def test_linear_forward_and_backward(lab1, torch, seed, shape):
    n, d, m = shape
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(n, d)), rng.normal(size=(m, d)), rng.normal(size=m)
    g = upstream(rng, (n, m))

    layer = lab1.Linear(d, m, rng)
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    y = layer(x.copy())
    dx = layer.backward(g.copy())

    tx, tw, tb = t64(torch, x, True), t64(torch, w, True), t64(torch, b, True)
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(t64(torch, g))

    assert_close(y, ty.detach().numpy(), "Linear forward y")
    assert_close(dx, tx.grad.numpy(), "Linear backward dL/dx")
    assert_close(layer.weight.grad, tw.grad.numpy(), "Linear weight.grad")
    assert_close(layer.bias.grad, tb.grad.numpy(), "Linear bias.grad")


@pytest.mark.parametrize("seed", SEEDS)
def test_linear_gradients_accumulate_like_torch(lab1, torch, seed):
    """Two backward passes with different upstream gradients add up, as autograd's do."""
    rng = np.random.default_rng(seed)
    n, d, m = 5, 4, 3
    x, w, b = rng.normal(size=(n, d)), rng.normal(size=(m, d)), rng.normal(size=m)
    g1, g2 = upstream(rng, (n, m)), upstream(rng, (n, m))

    layer = lab1.Linear(d, m, rng)
    layer.weight.data[...] = w
    layer.bias.data[...] = b
    layer(x.copy())
    layer.backward(g1.copy())
    layer.backward(g2.copy())

    tw, tb = t64(torch, w, True), t64(torch, b, True)
    ty = torch.nn.functional.linear(t64(torch, x), tw, tb)
    ty.backward(t64(torch, g1), retain_graph=True)
    ty.backward(t64(torch, g2))

    assert_close(layer.weight.grad, tw.grad.numpy(), "Linear weight.grad after two backward passes")
    assert_close(layer.bias.grad, tb.grad.numpy(), "Linear bias.grad after two backward passes")


# --------------------------------------------------------------------------- activations

def _activation(lab1, torch, name: str, x: np.ndarray, g: np.ndarray):
    """(ref y, ref dx, torch y, torch dx) for activation ``name`` on x with upstream g."""
    layer = getattr(lab1, name)()
    y = layer(x.copy())
    dx = layer.backward(g.copy())
    tx = t64(torch, x, True)
    ty = {"ReLU": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh}[name](tx)
    ty.backward(t64(torch, g))
    return y, dx, ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("shape", ACT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("seed", SEEDS)
def test_relu_forward_and_backward(lab1, torch, seed, shape):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape, low=0.05, high=3.0)  # no entry near the kink
    g = upstream(rng, shape)
    y, dx, ty, tdx = _activation(lab1, torch, "ReLU", x, g)
    assert_close(y, ty, "ReLU forward", rtol=0, atol=0)
    assert_close(dx, tdx, "ReLU backward dL/dx", rtol=0, atol=0)


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh"])
@pytest.mark.parametrize("shape", ACT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("seed", SEEDS)
def test_smooth_activation_forward_and_backward(lab1, torch, seed, shape, name):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=3.0, size=shape)
    g = upstream(rng, shape)
    y, dx, ty, tdx = _activation(lab1, torch, name, x, g)
    assert_close(y, ty, f"{name} forward")
    assert_close(dx, tdx, f"{name} backward dL/dx")


@pytest.mark.parametrize("name", ["Sigmoid", "Tanh"])
def test_smooth_activation_extreme_inputs(lab1, torch, name):
    """+-1000 and +-40: finite, saturated values equal to torch's (sigmoid(-40) ~ 4e-18 included)."""
    rng = np.random.default_rng(7)
    g = upstream(rng, EXTREMES.shape)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # an overflowing exp raises
        y, dx, ty, tdx = _activation(lab1, torch, name, EXTREMES, g)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), f"{name}: not finite: y={y}, dx={dx}"
    assert_close(y, ty, f"{name} forward at extreme inputs {EXTREMES.tolist()}")
    assert_close(dx, tdx, f"{name} backward at extreme inputs {EXTREMES.tolist()}")


# --------------------------------------------------------------------------- SoftmaxCrossEntropy

def _cross_entropy(lab1, torch, logits: np.ndarray, targets: np.ndarray, g: float):
    """(ref loss, ref dlogits, torch loss, torch dlogits) with upstream scalar g."""
    loss_fn = lab1.SoftmaxCrossEntropy()
    loss = loss_fn(logits.copy(), targets.copy())
    grad = loss_fn.backward(g)
    tz = t64(torch, logits, True)
    tloss = torch.nn.functional.cross_entropy(tz, torch.tensor(targets, dtype=torch.int64), reduction="mean")
    tloss.backward(torch.tensor(g, dtype=torch.float64))
    return loss, grad, float(tloss.detach()), tz.grad.numpy()


@pytest.mark.parametrize("shape", CE_SHAPES, ids=lambda s: "N{}_C{}".format(*s))
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_forward_and_backward(lab1, torch, seed, shape):
    n, c = shape
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=shape)
    targets = rng.integers(0, c, size=n)
    g = random_scalar(rng)
    loss, grad, tloss, tgrad = _cross_entropy(lab1, torch, logits, targets, g)
    assert isinstance(loss, float), f"SoftmaxCrossEntropy.forward returns a float, got {type(loss)}"
    assert_close(loss, tloss, "SoftmaxCrossEntropy loss (mean reduction)")
    assert_close(grad, tgrad, f"SoftmaxCrossEntropy backward({g:.4g}) dL/dlogits")


@pytest.mark.parametrize("shape", CE_SHAPES, ids=lambda s: "N{}_C{}".format(*s))
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_huge_logits(lab1, torch, seed, shape):
    """Logits near +-1000 (target often on a -1000 entry: loss ~2000): finite and equal to torch."""
    n, c = shape
    rng = np.random.default_rng(seed)
    logits = rng.choice([-1000.0, 1000.0], size=shape) + rng.normal(size=shape)
    logits[0, 0] = 1000.0 + abs(logits[0, 0])  # at least one huge positive logit
    targets = rng.integers(0, c, size=n)
    g = random_scalar(rng)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, grad, tloss, tgrad = _cross_entropy(lab1, torch, logits, targets, g)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), f"not finite: loss={loss}, grad={grad}"
    assert_close(loss, tloss, "SoftmaxCrossEntropy loss at logits ~ +-1000")
    assert_close(grad, tgrad, f"SoftmaxCrossEntropy backward({g:.4g}) at logits ~ +-1000")


# --------------------------------------------------------------------------- SGD

@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("lr", [0.1, 0.037])
@pytest.mark.parametrize("seed", SEEDS)
def test_sgd_matches_torch(lab1, torch, seed, lr, steps):
    """Same parameters and the same (fresh, random) gradients each step as torch.optim.SGD."""
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (4,), (1, 5), (2, 2, 3)]
    init = [rng.normal(size=s) for s in shapes]
    params = [lab1.Parameter(a) for a in init]
    tparams = [torch.nn.Parameter(t64(torch, a)) for a in init]
    opt = lab1.SGD(params, lr=lr)
    topt = torch.optim.SGD(tparams, lr=lr, momentum=0)
    for step in range(steps):
        grads = [rng.normal(size=s) for s in shapes]
        for p, tp, gr in zip(params, tparams, grads, strict=True):
            p.grad[...] = gr
            tp.grad = t64(torch, gr)
        opt.step()
        topt.step()
        for i, (p, tp) in enumerate(zip(params, tparams, strict=True)):
            assert_close(p.data, tp.detach().numpy(), f"SGD(lr={lr}) parameter {i} after step {step + 1}")
            assert_close(p.grad, tp.grad.numpy(), f"SGD(lr={lr}) parameter {i} grad after step {step + 1}",
                         rtol=0, atol=0)
    moved = max(float(np.max(np.abs(p.data - a))) for p, a in zip(params, init, strict=True))
    assert moved > 1e-3, "SGD did not move the parameters: the comparison would be vacuous"


# --------------------------------------------------------------------------- MLP

@pytest.mark.parametrize("shape", [(1, 6, 5, 4), (8, 6, 5, 4), (5, 3, 7, 5), (10, 12, 8, 3)],
                         ids=lambda s: "N{}_D{}_H{}_C{}".format(*s))
@pytest.mark.parametrize("seed", SEEDS)
def test_mlp_loss_and_gradients(lab1, torch, seed, shape):
    """Linear -> Tanh -> Linear -> ReLU, then cross-entropy: loss, dL/dx and every parameter gradient."""
    n, d, h, c = shape
    rng = np.random.default_rng(seed)
    model = lab1.Sequential(lab1.Linear(d, h, rng), lab1.Tanh(), lab1.Linear(h, c, rng), lab1.ReLU())
    for p in model.parameters():  # weights of a wider spread than the default init
        p.data[...] = rng.normal(size=p.data.shape)
    x = rng.normal(size=(n, d))
    targets = rng.integers(0, c, size=n)
    g = random_scalar(rng)

    loss_fn = lab1.SoftmaxCrossEntropy()
    loss = loss_fn(model(x.copy()), targets)
    dx = model.backward(loss_fn.backward(g))

    tmodel = torch.nn.Sequential(
        torch.nn.Linear(d, h, dtype=torch.float64), torch.nn.Tanh(),
        torch.nn.Linear(h, c, dtype=torch.float64), torch.nn.ReLU())
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters(), strict=True):
            assert tuple(tp.shape) == p.data.shape, "parameter order/layout differs from torch's"
            tp.copy_(t64(torch, p.data))
    tx = t64(torch, x, True)
    tloss = torch.nn.functional.cross_entropy(tmodel(tx), torch.tensor(targets, dtype=torch.int64))
    tloss.backward(torch.tensor(g, dtype=torch.float64))

    assert_close(loss, float(tloss.detach()), "MLP loss")
    assert_close(dx, tx.grad.numpy(), "MLP dL/dx")
    named = list(model.named_parameters())
    assert len(named) == 4, f"expected 4 parameters, got {[k for k, _ in named]}"
    grad_norm = 0.0
    for (name, p), tp in zip(named, tmodel.parameters(), strict=True):
        assert_close(p.grad, tp.grad.numpy(), f"MLP {name}.grad")
        grad_norm += float(np.sum(p.grad**2))
    assert grad_norm > 0, "every parameter gradient is zero: the comparison would be vacuous"
