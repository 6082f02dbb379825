"""Lab 4's reference against torch.optim and torch.optim.lr_scheduler, in float64, step by step.

Each optimizer runs 100 steps on three parameters of different shapes with a fixed gradient
sequence (exact zeros, and a parameter whose grad is None on some steps), the lr changed twice
mid-run and a state_dict round trip into a NEW optimizer halfway; every parameter is compared
with PyTorch's after every step: |ref - torch| <= ATOL + RTOL * |torch|. The schedules are
compared over 100 steps. Also: the instructor module's rule simulator (used for the mistake
hints, solutions/lab4/instructor/mistakes.py) agrees with the reference when it simulates no mistake.
"""

from __future__ import annotations

import numpy as np
import pytest

from grader import paths
from grader.isolation.loading import load_cases, load_package
from grader.judging.expected import load_instructor, make_inputs

RTOL, ATOL = 1e-12, 1e-12
STEPS = 100
SHAPES = ((4, 3), (5,), (2, 3, 2))
SCALES = (1.0, 1e-3, 10.0)
LR_CHANGES = {30: 0.3, 60: 5.0}  # step -> factor applied to the current lr
RESUME_AT = 50


@pytest.fixture
def lab4(solutions):
    return load_package(solutions, "lab4")


def _sequence(seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    x0 = [rng.standard_normal(s) for s in SHAPES]
    grads = [rng.standard_normal((STEPS, *s)) * c for s, c in zip(SHAPES, SCALES, strict=True)]
    for g in grads:
        g[rng.random(g.shape) < 0.15] = 0.0
    grads[0][[4, 5, 40]] = 0.0
    has = [np.ones(STEPS, bool), rng.random(STEPS) > 0.3, np.ones(STEPS, bool)]
    return x0, grads, has


OPTIMIZERS = [
    ("SGD", "SGD", {"lr": 0.05}),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", "SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("Adagrad", "Adagrad", {"lr": 0.05}),
    ("Adagrad", "Adagrad", {"lr": 0.05, "eps": 1e-6, "weight_decay": 0.01}),
    ("RMSprop", "RMSprop", {"lr": 0.01, "weight_decay": 0.01}),
    ("RMSprop", "RMSprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.8, "eps": 1e-6}),
    ("Adam", "Adam", {"lr": 0.01}),
    ("Adam", "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.05}),
    ("AdamW", "AdamW", {"lr": 0.01}),
    ("AdamW", "AdamW", {"lr": 0.02, "betas": (0.85, 0.995), "weight_decay": 0.1}),
]


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    err = np.abs(got - want)
    bad = err > ATOL + RTOL * np.abs(want)
    if bad.any():
        i = np.unravel_index(int(np.argmax(err)), err.shape)
        pytest.fail(f"{what}: reference differs from torch in {int(bad.sum())} entries; worst at {i}: "
                    f"ref {got[i]!r}, torch {want[i]!r}")


@pytest.mark.torch
@pytest.mark.parametrize(("ours", "theirs", "kwargs"), OPTIMIZERS,
                         ids=[f"{o}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for o, _, kw in OPTIMIZERS])
def test_optimizer_matches_torch_every_step(lab4, torch, ours, theirs, kwargs) -> None:
    x0, grads, has = _sequence(len(kwargs))
    params = [lab4.Parameter(x) for x in x0]
    tparams = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in x0]
    opt = getattr(lab4, ours)(params, **kwargs)
    topt = getattr(torch.optim, theirs)(tparams, **kwargs)
    for t in range(STEPS):
        if t in LR_CHANGES:
            opt.lr *= LR_CHANGES[t]
            for group in topt.param_groups:
                group["lr"] *= LR_CHANGES[t]
            assert opt.lr == topt.param_groups[0]["lr"]
        if t == RESUME_AT:  # both continue in a NEW optimizer from a checkpoint (lr changed before it)
            checkpoint, tcheckpoint = opt.state_dict(), topt.state_dict()
            opt = getattr(lab4, ours)(params, **kwargs)
            opt.load_state_dict(checkpoint)
            topt = getattr(torch.optim, theirs)(tparams, **kwargs)
            topt.load_state_dict(tcheckpoint)
        for k, (p, tp) in enumerate(zip(params, tparams, strict=True)):
            p.grad = grads[k][t].copy() if has[k][t] else None
            tp.grad = torch.tensor(grads[k][t], dtype=torch.float64) if has[k][t] else None
        opt.step()
        topt.step()
        for k, (p, tp) in enumerate(zip(params, tparams, strict=True)):
            _close(p.data, tp.detach().numpy(), f"{ours}{kwargs} parameter {k} after step {t + 1}")
    assert not has[1].all() and (grads[0][4] == 0).all()  # the sequence has what it claims


def _torch_schedule(torch, name: str, opt):
    sched = torch.optim.lr_scheduler
    if name == "step":
        return sched.StepLR(opt, step_size=7, gamma=0.5)
    if name == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=30, eta_min=0.01)
    if name == "linear":
        return sched.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=12)
    return sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=0.1, total_iters=10),
                                    sched.CosineAnnealingLR(opt, T_max=90, eta_min=0.001)], milestones=[10])


def _our_schedule(lab4, name: str, opt):
    if name == "step":
        return lab4.StepLR(opt, step_size=7, gamma=0.5)
    if name == "cosine":
        return lab4.CosineAnnealingLR(opt, T_max=30, eta_min=0.01)
    if name == "linear":
        return lab4.LinearLR(opt, start_factor=0.1, end_factor=0.9, total_iters=12)
    return lab4.SequentialLR(opt, [lab4.LinearLR(opt, start_factor=0.1, total_iters=10),
                                   lab4.CosineAnnealingLR(opt, T_max=90, eta_min=0.001)], milestones=[10])


@pytest.mark.torch
@pytest.mark.parametrize("name", ["step", "cosine", "linear", "warmup-cosine"])
def test_schedule_matches_torch_over_100_steps(lab4, torch, name) -> None:
    opt = lab4.SGD([lab4.Parameter(np.zeros(2))], lr=0.3)
    topt = torch.optim.SGD([torch.zeros(2, dtype=torch.float64, requires_grad=True)], lr=0.3)
    sched, tsched = _our_schedule(lab4, name, opt), _torch_schedule(torch, name, topt)
    ours, theirs = [opt.lr], [topt.param_groups[0]["lr"]]
    for _ in range(STEPS):
        topt.step()  # torch warns when a scheduler steps before its optimizer
        sched.step()
        tsched.step()
        ours.append(opt.lr)
        theirs.append(topt.param_groups[0]["lr"])
    _close(np.array(ours), np.array(theirs), f"{name} lr after k = 0..{STEPS} steps")
    assert len(set(np.round(theirs, 12))) > 5  # the schedule does move


CASES = load_cases("lab4", paths.tests_dir())
TRAJECTORY_CASES = ["sgd_plain", "sgd_momentum", "sgd_momentum_lr_change", "sgd_dampening", "sgd_nesterov",
                    "sgd_weight_decay", "adagrad", "adagrad_weight_decay",
                    "rmsprop", "rmsprop_momentum", "adam", "adam_weight_decay", "adamw"]


@pytest.mark.parametrize("variant", [None, 0, 1])
@pytest.mark.parametrize("name", TRAJECTORY_CASES)
def test_case_simulator_without_mistakes_equals_the_reference(lab4, name, variant) -> None:
    """The mistakes are variants of ``simulate``; with no mistake it must be the reference's rule."""
    case = CASES.get(name)
    inputs = make_inputs(case, 0, variant)
    expected = case.call(lab4, inputs)
    instructor = load_instructor("lab4")
    assert instructor is not None, "solutions/lab4/instructor/mistakes.py is missing"
    simulate = instructor.simulate  # the simulator the mistake predictions are variants of
    cls = _class_of(name)
    traj, _, _ = simulate(cls, inputs)
    for k in range(len(traj)):
        np.testing.assert_allclose(traj[k], expected[f"p{k}"][1:], rtol=1e-12, atol=1e-14,
                                   err_msg=f"{name} variant {variant} p{k}")


def _class_of(case_name: str) -> str:
    return {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
            "adamw": "AdamW"}["adamw" if case_name == "adamw" else case_name.split("_")[0]]
