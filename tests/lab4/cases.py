"""Lab 4 cases: optimizers and learning-rate schedules, compared with the reference at every step.

A trajectory case builds three parameters of different shapes, feeds the optimizer a fixed
sequence of gradients (exact zeros included, and a parameter that gets NO gradient, ``grad is
None``, on some steps), and returns each parameter after every step. Each parameter is its own
``Close`` check, so a failure names the parameter; a locating hint names the first step that
differs. Known wrong rules are recognised by running them over the same gradient sequence here,
in the grading process (``simulate`` in the instructor-only solutions/lab4/instructor/mistakes.py;
the public seeds' predictions are stored with the fixtures), and comparing with the student's
trajectory. The reference in solutions/lab4 is the source of truth for the expected values, and
tests/engine/test_lab4_torch.py checks it and the simulator against torch.optim.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from grader.judging.case import Accuracy, Arrays, Close, Given, Lab, Mistake, Term, Terms, described, instructor
from grader.judging.casekit import ConventionError, mnist_inputs

LAB = Lab("lab4", "Lab 4: optimizers and learning-rate schedules")

# The MNIST threshold: the reference's worst held-out accuracy over seeds 0-4, measured by
# `python scripts/measure_accuracy.py --lab lab4` (quoted in the handout), 0.9430, minus a 0.013 margin.
ACCURACY_THRESHOLD = 0.93
REFERENCE_ACCURACY = ("the reference (Lab 1's MLP, 4 epochs of Adam, lr 3e-3, batch 32, a 50-step linear warm-up "
                      "from 0.1x then cosine to 0) reaches 0.9441 on average over seeds 0-4 (worst 0.9430)")

N_PARAMS = 3
ROLES = ("p0 (exact-zero gradients on some steps)", "p1 (small gradients; NO gradient on some steps)",
         "p2 (large gradients)")
TRAJ_EXPLAIN = ("Row t is the parameter after t optimizer steps (row 0: the initial values). The "
                "gradients are fixed; p1.grad is None on some steps: skip it entirely then (no state "
                "change, no step count, no weight decay), as torch.optim does.")
HYPER = ("momentum", "dampening", "nesterov", "weight_decay", "eps", "alpha", "beta1", "beta2")


# ----------------------------------------------------------------------------- inputs


def trajectory_inputs(shapes: Sequence[tuple[int, ...]], steps: int, hp: dict[str, float],
                      lr_changes: Sequence[tuple[int, float]] = (), no_grad: Sequence[int] = (2, 3, 9, 10, 11, 24),
                      scales: Sequence[float] = (1.0, 1e-3, 10.0)) -> Callable[[np.random.Generator], Arrays]:
    """Initial values x<k>, gradients g<k> (steps, *shape), has<k> (steps,) bool, lrs (steps,), hyperparameters.

    p0 gets an all-zero gradient on steps 4, 5 and 17 (exact zeros: state still updates);
    every gradient has ~15% exact-zero entries; p1 has no gradient on the steps ``no_grad``.
    ``lr_changes`` = ((step, factor), ...): from that step on, lr = hp["lr"] * factor.
    """

    def make(rng: np.random.Generator) -> Arrays:
        out: Arrays = {}
        for k, (shape, scale) in enumerate(zip(shapes, scales, strict=True)):
            out[f"x{k}"] = rng.standard_normal(shape)
            g = rng.standard_normal((steps, *shape)) * scale
            g[rng.random(g.shape) < 0.15] = 0.0
            out[f"g{k}"] = g
            out[f"has{k}"] = np.ones(steps, dtype=bool)
        out["g0"][[s for s in (4, 5, 17) if s < steps]] = 0.0
        out["has1"][[s for s in no_grad if s < steps]] = False
        lrs = np.full(steps, float(hp["lr"]))
        for start, factor in lr_changes:
            lrs[start:] = float(hp["lr"]) * factor
        out["lrs"] = lrs
        out.update({name: np.array(value) for name, value in hp.items()})
        return out

    return make


def optimizer_kwargs(inputs: Arrays) -> dict[str, Any]:
    """The constructor's keyword arguments from the hyperparameters in ``inputs``."""
    kwargs: dict[str, Any] = {"lr": float(inputs["lr"])}
    for name in HYPER:
        if name in inputs and not name.startswith("beta"):
            kwargs[name] = bool(inputs[name]) if name == "nesterov" else float(inputs[name])
    if "beta1" in inputs:
        kwargs["betas"] = (float(inputs["beta1"]), float(inputs["beta2"]))
    return kwargs


# ----------------------------------------------------------------------------- running the student's code


@contextmanager
def _arithmetic(cls: str, step: int, params: list[Any]):
    """Division by zero and 0/0 become errors that say where they come from (NumPy only warns), with a
    cause only where this step's evidence shows one."""
    try:
        with np.errstate(divide="raise", invalid="raise", over="raise"):
            yield
    except FloatingPointError as exc:
        causes = []
        if step == 0 and cls in ("Adam", "AdamW") and "divide" in str(exc):
            causes.append("at the first step 1 - beta**t is 0 when t is still 0: increment the step counter "
                          "before using it (t = 1 at the first step)")
        zero = [k for k, p in enumerate(params) if isinstance(p.grad, np.ndarray) and np.any(p.grad == 0.0)]
        if zero and cls != "SGD":
            causes.append(f"the gradient of parameter {zero[0]} has exact zeros on this step, so a state built "
                          "from squared gradients is 0 there: is eps added to the denominator?")
        said = ("Where this step points: " + "; ".join(causes)) if causes else \
            "Which of your operations produced it: run the step with np.seterr(all='raise') and read the traceback"
        raise ConventionError(f"{cls}.step, optimizer step {step + 1}: NumPy reports '{exc}'. {said}") from exc


def _set_grads(params: list[Any], inputs: Arrays, t: int, fresh: bool = False) -> None:
    """This step's gradients, handed in as a real training loop does: zero_grad() zeroes p.grad in place
    and backward adds into the same array, so an optimizer state that aliases p.grad (a momentum buffer
    started as ``buf = p.grad`` without a copy) is wiped here as it would be in training.

    ``fresh``: a new array every step instead, where aliasing p.grad is not what the case tests (the
    state_dict cases: a checkpoint's deep copy cannot keep the alias, so an aliasing buffer would make the
    resumed run differ from the uninterrupted one and cost points there too; the trajectory cases charge it).
    """
    for k, p in enumerate(params):
        g = inputs[f"g{k}"][t]
        if not inputs[f"has{k}"][t]:
            p.grad = None
        elif not fresh and isinstance(p.grad, np.ndarray) and p.grad.shape == g.shape and p.grad.flags.writeable:
            p.grad.fill(0.0)  # in place, as zero_grad() does
            p.grad += g
        else:
            p.grad = g.copy()


_SHAPES = re.compile(r"\((\d+(?:, ?\d+)*,?)\)")


def _shared_state(cls: str, t: int, params: list[Any], exc: ValueError) -> None:
    """A broadcasting error between the shapes of two different parameters: evidence that one state (a
    buffer, m or v) serves parameters of different shapes. Raises the explanation; returns otherwise."""
    if "broadcast" not in str(exc):
        return
    named = {tuple(int(d) for d in m.split(",") if d.strip()) for m in _SHAPES.findall(str(exc))}
    shapes = {tuple(np.shape(p.data)) for p in params}
    if len(named & shapes) < 2:
        return
    raise ConventionError(
        f"{cls}.step, optimizer step {t + 1}: ValueError: {str(exc).strip()}. These are the shapes of two different "
        "parameters of this case, which meet in one array: your optimizer's state is shared between parameters "
        "(one buffer, or self.state[0], for all of them). Keep one state per parameter: self.state[i] for "
        "self.params[i]") from exc


def _none_grad(cls: str, t: int, params: list[Any], exc: Exception) -> None:
    """A TypeError/AttributeError about None on a step where a parameter's grad is None: says so, else re-raises."""
    if "NoneType" not in str(exc) or all(p.grad is not None for p in params):
        raise exc
    raise ConventionError(
        f"{cls}.step, optimizer step {t + 1}: {type(exc).__name__}: {exc}. On this step a parameter's "
        "grad is None (it got no gradient): skip that parameter entirely (`if p.grad is None: continue`), "
        "as torch.optim does") from exc


def run_steps(opt: Any, cls: str, params: list[Any], inputs: Arrays, start: int, stop: int,
              lr: float | None, fresh: bool = False) -> list[list[np.ndarray]]:
    """Steps ``start..stop-1``, setting ``opt.lr`` only where ``lrs`` changes; each parameter's values after each.

    ``fresh``: hand in each gradient as a new array (``_set_grads``)."""
    out: list[list[np.ndarray]] = [[] for _ in params]
    for t in range(start, stop):
        new_lr = float(inputs["lrs"][t])
        if lr is not None and new_lr != lr:
            opt.lr = lr = new_lr
        _set_grads(params, inputs, t, fresh)
        try:
            with _arithmetic(cls, t, params):
                opt.step()
        except Exception as exc:  # noqa: BLE001 - the call guard reports a shape error as its own Feedback
            cause = exc if isinstance(exc, ValueError) else exc.__cause__
            if isinstance(cause, ValueError):
                _shared_state(cls, t, params, cause)
            if not isinstance(exc, (TypeError, AttributeError)):
                raise
            _none_grad(cls, t, params, exc)
        for k, p in enumerate(params):
            out[k].append(np.array(p.data, dtype=np.float64, copy=True))
    return out


def make_params(lab: ModuleType, values: Sequence[np.ndarray]) -> list[Any]:
    return [lab.Parameter(np.array(v, copy=True)) for v in values]


def run_trajectory(lab: ModuleType, cls: str, inputs: Arrays) -> Arrays:
    """The optimizer ``cls`` over the whole gradient sequence: ``p<k>`` of shape (steps + 1, *shape)."""
    n = sum(1 for k in inputs if k.startswith("x"))
    params = make_params(lab, [inputs[f"x{k}"] for k in range(n)])
    kwargs = optimizer_kwargs(inputs)
    opt = getattr(lab, cls)(params, **kwargs)
    steps = run_steps(opt, cls, params, inputs, 0, len(inputs["lrs"]), kwargs["lr"])
    out = {f"p{k}": np.stack([inputs[f"x{k}"], *steps[k]]) for k in range(n)}
    out["grads_after"] = np.concatenate([p.grad.ravel() for p in params if p.grad is not None])
    return out


# ----------------------------------------------------------------------------- known mistakes

# The optimizer rules with bug switches (``simulate``) are the solution's math: they live in the
# instructor-only solutions/lab4/instructor/mistakes.py, and a mistake names its prediction there by key,
# Mistake(description, instructor("traj.<cls>.<bug>.p<k>")) (grader/judging/case.py). The public seeds'
# predictions are stored in fixtures/public.npz; isolated grading computes them for hidden variants.


def pairs(named: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, list[str]]]:
    """Each two of the rules ``named`` at once, as one more named rule: the instructor module predicts the pair
    by running both wrong rules together (an optimizer's errors do not add, so the engine's sum of two single
    predictions, grader/judging/compare.py, cannot find them)."""
    return [(f"two mistakes at once: {da}; AND {db}", [*ba, *bb])
            for (da, ba), (db, bb) in itertools.combinations(named, 2)]


def traj_mistake(description: str, cls: str, k: int, bugs: Sequence[str]) -> Mistake:
    """A named wrong rule, predicted (by the instructor module) for parameter ``k``'s trajectory."""
    return Mistake(description, instructor(f"traj.{cls}.{'-'.join(bugs)}.p{k}"))


def trajectory_checks(title: str, cls: str, named: Sequence[tuple[str, Sequence[str]]],
                      grads_unchanged: bool = False, rtol: float = 1e-7, atol: float = 1e-10) -> list[Close]:
    """One Close per parameter, each knowing the mistakes ``named`` = ((description, bugs), ...)."""
    checks = []
    for k in range(N_PARAMS):
        mistakes = tuple(traj_mistake(d, cls, k, b) for d, b in named)
        if k == 1:  # the parameter that gets no gradient on some steps
            mistakes += (traj_mistake(NONE_AS_ZERO, cls, k, ["none_as_zero"]),)
        checks.append(Close(f"p{k}", f"{title}: {ROLES[k]} after each step", rtol=rtol, atol=atol,
                            explain=TRAJ_EXPLAIN, mistakes=mistakes, rows="step"))
    if grads_unchanged:
        checks.append(Close("grads_after", f"{title}: p.grad after the last step", exact=True,
                            explain="step() must not modify p.grad: compute the decayed gradient into a new "
                                    "array (g = p.grad + weight_decay * p.data), never p.grad += ..."))
    return checks


# ----------------------------------------------------------------------------- shared mistake texts

VELOCITY = ("v = m*v - lr*g convention (lr inside the buffer): equal to PyTorch's only while lr is constant; "
            "PyTorch keeps lr out of the buffer (buf = m*buf + g; p -= lr*buf), so a new lr applies at once")
NO_DAMPENING = ("dampening ignored (buf = m*buf + g, or v = m*v - lr*g): PyTorch scales every gradient after "
                "the first by (1 - dampening), buf = m*buf + (1 - dampening)*g")
EMA_MOMENTUM = "momentum as an average buf = m*buf + (1-m)*g: PyTorch adds the full gradient (1 - dampening)*g"
DAMP_FIRST = ("dampening applied at the first step (a buffer started at zero): PyTorch starts the buffer "
              "AS the first gradient, buf = g, and dampens only later steps")
ALIASED_BUFFER = ("your momentum buffer IS p.grad (buf = g without a copy): the training loop zeroes p.grad in "
                  "place and backward adds the next gradient into the same array, which wipes and rescales your "
                  "buffer with it; start the buffer as a copy, buf = np.array(g, copy=True)")
NO_NESTEROV = "nesterov=True ignored: the update used buf, not g + momentum*buf"
NESTEROV_OLD = "Nesterov look-ahead with the OLD buffer: g + momentum*buf must use the buffer after this step's update"
SGD_DECOUPLED = ("weight decay decoupled (p *= 1 - lr*wd) where SGD adds wd*p to the gradient BEFORE momentum "
                 "(with momentum the two differ)")
SGD_WD_AFTER = "weight decay added after momentum (to the update) instead of to the gradient before it"
EPS_INSIDE = "eps inside the square root (sqrt(v + eps)): PyTorch adds eps after it, sqrt(v) + eps"
NO_BIAS = "Adam without bias correction (m and v used without dividing by 1 - beta**t)"
EPS_BEFORE = ("eps added before the bias correction (the paper's 'efficient' form lr*sqrt(1-b2^t)/(1-b1^t) * "
              "m/(sqrt(v)+eps)): PyTorch adds eps to sqrt(v_hat)")
STEP_AHEAD = "step counter one ahead (t = 2 at the first update): increment once, before use, starting from 0"
GLOBAL_STEP = ("one step counter for all parameters (it counted steps where this parameter had no gradient): "
               "t is per parameter and advances only when the parameter is updated")
ADAM_DECOUPLED = "weight decay decoupled (AdamW's rule) in Adam: Adam's weight_decay is L2, added to the gradient"
ADAMW_L2 = "weight decay added to the gradient (L2, Adam) where AdamW decouples it: p *= 1 - lr*weight_decay"
ADAMW_NO_LR = "AdamW decay without lr (p *= 1 - weight_decay): PyTorch scales it by lr, p *= 1 - lr*weight_decay"
ADAMW_AFTER = "AdamW decay applied after the Adam update: PyTorch shrinks p first, then applies the Adam update"
NONE_AS_ZERO = ("a None gradient treated as zeros (the state still moved: momentum decayed, the step counter "
                "advanced): PyTorch skips a parameter whose grad is None entirely")
SHARED_SGD = "your momentum buffer is shared between parameters: keep one buffer per parameter (self.state[i])"
SHARED_ADAM = ("your m and v are shared between parameters (one step counter per step() call): keep m, v and "
               "step per parameter (self.state[i])")


def sgd_hp(**kw: float) -> dict[str, float]:
    return {"lr": 0.05, "momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0, **kw}


PUBLIC_SHAPES = ((4, 3), (5,), (2, 3, 2))
HIDDEN_SHAPES = (((1, 6), (3,), (2, 2, 1)), ((7, 2), (1,), (3, 1, 4)))
T_PUBLIC, T_HIDDEN = 32, (36, 40)
LR_CHANGES = ((12, 0.3), (22, 2.0))


def _describe(steps: int, hp: dict[str, float], lr_changes: Sequence[tuple[int, float]] = ()) -> str:
    """A hidden variant's kind of input, for its failure message: "36 steps, lr=0.02, momentum=0.7"."""
    shown = ", ".join(f"{k}={v:g}" if not isinstance(v, bool) else f"{k}={v}" for k, v in hp.items()
                      if v or k == "lr")
    changes = ", lr changed after steps " + " and ".join(str(t) for t, _ in lr_changes) if lr_changes else ""
    return f"{steps} steps, {shown}{changes}"


def variants(hp: dict[str, float], hidden_hps: Sequence[dict[str, float]], lr_changes=()):
    """Public inputs and the two hidden variants (other shapes, steps and hyperparameters)."""
    public = trajectory_inputs(PUBLIC_SHAPES, T_PUBLIC, hp, lr_changes)
    hidden = tuple(described(_describe(n, h, lr_changes),
                             trajectory_inputs(s, n, h, lr_changes, no_grad=(1, 5, 6, 13, 29)))
                   for s, n, h in zip(HIDDEN_SHAPES, T_HIDDEN, hidden_hps, strict=True))
    return {"inputs": public, "hidden_inputs": hidden}


# ----------------------------------------------------------------------------- SGD


@LAB.case(points=4, **variants(sgd_hp(), [sgd_hp(lr=0.2), sgd_hp(lr=0.01)]),
          checks=trajectory_checks("SGD (no momentum)", "SGD", [
              ("adding the gradient (p + lr*g): that is gradient ascent", ["ascent"]),
          ]))
def sgd_plain(lab, **inputs):
    """SGD without momentum: p -= lr * g over 32 steps; a None gradient skips the parameter."""
    return run_trajectory(lab, "SGD", inputs)


@LAB.case(points=6, **variants(sgd_hp(momentum=0.9), [sgd_hp(lr=0.02, momentum=0.7), sgd_hp(lr=0.1, momentum=0.95)]),
          checks=trajectory_checks("SGD with momentum", "SGD", [
              (EMA_MOMENTUM, ["ema"]), (SHARED_SGD, ["shared"]), (ALIASED_BUFFER, ["buffer_aliases_grad"]),
          ]))
def sgd_momentum(lab, **inputs):
    """SGD with momentum (constant lr): buf = g at the first step, then buf = m*buf + g."""
    return run_trajectory(lab, "SGD", inputs)


@LAB.case(points=6, **variants(sgd_hp(momentum=0.9), [sgd_hp(lr=0.02, momentum=0.8), sgd_hp(lr=0.1, momentum=0.5)],
                               lr_changes=LR_CHANGES),
          checks=trajectory_checks("SGD with momentum, lr changed after steps 12 and 22", "SGD", [
              (VELOCITY, ["velocity"]), (EMA_MOMENTUM, ["ema"]), (ALIASED_BUFFER, ["buffer_aliases_grad"]),
          ]))
def sgd_momentum_lr_change(lab, **inputs):
    """SGD with momentum while lr changes mid-run: separates lr-outside (PyTorch) from v = m*v - lr*g."""
    return run_trajectory(lab, "SGD", inputs)


@LAB.case(points=3, **variants(sgd_hp(momentum=0.9, dampening=0.3),
                               [sgd_hp(lr=0.03, momentum=0.6, dampening=0.5),
                                sgd_hp(lr=0.1, momentum=0.9, dampening=0.1)]),
          checks=trajectory_checks("SGD with momentum and dampening", "SGD", [
              (DAMP_FIRST, ["damp_first"]), (EMA_MOMENTUM, ["ema"]), (ALIASED_BUFFER, ["buffer_aliases_grad"]),
              (NO_DAMPENING, ["velocity"]),
          ]))
def sgd_dampening(lab, **inputs):
    """SGD with dampening: buf = g first, then buf = m*buf + (1 - dampening)*g.

    Dampening is part of the buffer's rule: a momentum rule that leaves it out (an average, or the
    v = m*v - lr*g form, which at constant lr shows only as dampening ignored) is named here.
    """
    return run_trajectory(lab, "SGD", inputs)


@LAB.case(points=5, **variants(sgd_hp(momentum=0.9, nesterov=True),
                               [sgd_hp(lr=0.02, momentum=0.7, nesterov=True),
                                sgd_hp(lr=0.1, momentum=0.95, nesterov=True)],
                               lr_changes=LR_CHANGES),
          checks=trajectory_checks("SGD with Nesterov momentum", "SGD", [
              (NO_NESTEROV, ["no_nesterov"]), (NESTEROV_OLD, ["nesterov_old"]),
              (ALIASED_BUFFER, ["buffer_aliases_grad"]),
          ]),
          given=Given("SGD momentum (the same run with nesterov=False)",
                      tuple(f"momentum_p{k}" for k in range(N_PARAMS)), "given.nesterov"))
def sgd_nesterov(lab, **inputs):
    """SGD with Nesterov momentum: p -= lr * (g + m*buf), buf updated first; lr changes mid-run.

    What it charges: the look-ahead itself. The same run with nesterov=False gives the student's own
    momentum buffer at every step (buf_t = (p_{t-1} - p_t) / lr_t); when that run differs from the
    reference (a wrong momentum rule: sgd_momentum and sgd_momentum_lr_change charge it), this case is
    judged against p_t = p_{t-1} - lr_t * (g_t + momentum * buf_t) with the student's own buffers
    (``Given``). A buffer that aliases p.grad is still named (it changes the look-ahead's g too).
    """
    out = run_trajectory(lab, "SGD", inputs)
    plain = run_trajectory(lab, "SGD", {**inputs, "nesterov": np.array(False)})
    out.update({f"momentum_p{k}": plain[f"p{k}"] for k in range(N_PARAMS)})
    return out


@LAB.case(points=5, **variants(sgd_hp(momentum=0.9, weight_decay=0.05),
                               [sgd_hp(lr=0.02, momentum=0.8, weight_decay=0.1),
                                sgd_hp(lr=0.1, momentum=0.5, weight_decay=0.02)]),
          checks=trajectory_checks("SGD with momentum and weight decay", "SGD", [
              (SGD_DECOUPLED, ["decoupled_wd"]), (SGD_WD_AFTER, ["wd_after_momentum"]),
              (EMA_MOMENTUM, ["ema"]),  # the momentum rule the decayed gradient goes through
          ], grads_unchanged=True))
def sgd_weight_decay(lab, **inputs):
    """SGD weight decay: g = g + wd*p before momentum; p.grad itself stays unchanged.

    The decayed gradient enters the momentum buffer, so a wrong momentum rule shows here too: it is named
    (momentum as an average), not judged away.
    """
    return run_trajectory(lab, "SGD", inputs)


# ----------------------------------------------------------------------------- Adagrad, RMSprop


@LAB.case(points=4, **variants({"lr": 0.05, "eps": 1e-10, "weight_decay": 0.0},
                               [{"lr": 0.2, "eps": 1e-6, "weight_decay": 0.0},
                                {"lr": 0.01, "eps": 1e-8, "weight_decay": 0.0}]),
          checks=trajectory_checks("Adagrad", "Adagrad", [
              (EPS_INSIDE, ["eps_inside"]),
          ]))
def adagrad(lab, **inputs):
    """Adagrad: sum += g**2; p -= lr * g / (sqrt(sum) + eps)."""
    return run_trajectory(lab, "Adagrad", inputs)


@LAB.case(points=2, **variants({"lr": 0.05, "eps": 1e-10, "weight_decay": 0.03},
                               [{"lr": 0.2, "eps": 1e-6, "weight_decay": 0.05},
                                {"lr": 0.01, "eps": 1e-8, "weight_decay": 0.01}]),
          checks=trajectory_checks("Adagrad with weight decay", "Adagrad", [
              ("the squared gradient accumulated WITHOUT the weight-decay term: decay g first, then sum += g**2",
               ["sum_without_wd"]), (EPS_INSIDE, ["eps_inside"]),
          ], grads_unchanged=True))
def adagrad_weight_decay(lab, **inputs):
    """Adagrad with weight decay: g = g + wd*p, then sum += g**2; p.grad itself stays unchanged."""
    return run_trajectory(lab, "Adagrad", inputs)


def rms_hp(**kw: float) -> dict[str, float]:
    return {"lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0, **kw}


@LAB.case(points=5, **variants(rms_hp(), [rms_hp(lr=0.003, alpha=0.9, eps=1e-6),
                                          rms_hp(lr=0.02, alpha=0.95)]),
          checks=trajectory_checks("RMSprop", "RMSprop", [
              (EPS_INSIDE, ["eps_inside"]),
              ("alpha on the wrong term: v = (1 - alpha)*v + alpha*g**2; PyTorch keeps alpha*v", ["alpha_swapped"]),
          ]))
def rmsprop(lab, **inputs):
    """RMSprop (not centered): v = alpha*v + (1 - alpha)*g**2; p -= lr * g / (sqrt(v) + eps)."""
    return run_trajectory(lab, "RMSprop", inputs)


DEFAULT_ALPHA = ("alpha ignored: the default 0.99 was used instead of the alpha passed to the constructor",
                 ["default_alpha"])


@LAB.case(points=4, **variants(rms_hp(momentum=0.9, weight_decay=0.01, alpha=0.9),
                               [rms_hp(lr=0.003, momentum=0.5, alpha=0.9, weight_decay=0.02),
                                rms_hp(lr=0.02, momentum=0.8, eps=1e-6, weight_decay=0.05)]),
          checks=trajectory_checks("RMSprop with momentum and weight decay", "RMSprop", [
              ("momentum on the raw gradient (buf = m*buf + g; p -= lr*buf/(sqrt(v)+eps)): PyTorch's buffer "
               "accumulates the normalised step g/(sqrt(v)+eps)", ["momentum_before_division"]),
              (EPS_INSIDE, ["eps_inside"]), DEFAULT_ALPHA,
          ]))
def rmsprop_momentum(lab, **inputs):
    """RMSprop with momentum and weight decay: g = g + wd*p; buf = m*buf + g/(sqrt(v) + eps); p -= lr * buf.

    alpha is not the default here (0.9): a hidden variant of rmsprop uses another alpha, so the public
    cases must show an alpha that the constructor ignores (this case charges it).
    """
    return run_trajectory(lab, "RMSprop", inputs)


# ----------------------------------------------------------------------------- Adam, AdamW


def adam_hp(**kw: float) -> dict[str, float]:
    return {"lr": 0.01, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0, **kw}


ADAM_MISTAKES = [(NO_BIAS, ["no_bias_correction"]), (EPS_INSIDE, ["eps_inside"]),
                 (EPS_BEFORE, ["eps_before_correction"]), (STEP_AHEAD, ["step_ahead"]), (GLOBAL_STEP, ["global_step"])]
DEFAULT_BETAS = ("betas ignored: the defaults (0.9, 0.999) were used instead of the betas passed to the constructor",
                 ["default_betas"])
DEFAULT_EPS = ("eps ignored: the default 1e-8 was used instead of the eps passed to the constructor", ["default_eps"])


@LAB.case(points=9, **variants(adam_hp(), [adam_hp(lr=0.003, beta1=0.8, beta2=0.99, eps=1e-6),
                                           adam_hp(lr=0.03, beta1=0.95, beta2=0.9999)], lr_changes=LR_CHANGES),
          checks=trajectory_checks("Adam", "Adam", [*ADAM_MISTAKES, *pairs(ADAM_MISTAKES)]))
def adam(lab, **inputs):
    """Adam with bias correction, a per-parameter step counter, and lr changed mid-run.

    What it charges: Adam's rule (bias correction, eps, the step counter: one counted per step() call
    rather than per update shows on p1, which has no gradient on some steps; state_per_parameter does not
    see it), alone and two mistakes at once.
    """
    return run_trajectory(lab, "Adam", inputs)


ADAM_WD_MISTAKES = [(ADAM_DECOUPLED, ["decoupled_in_adam"]), *ADAM_MISTAKES[:2], ADAM_MISTAKES[4]]


@LAB.case(points=4, **variants(adam_hp(weight_decay=0.05, beta1=0.85, beta2=0.99, eps=1e-6),
                               [adam_hp(lr=0.003, weight_decay=0.2, eps=1e-6),
                                adam_hp(lr=0.03, weight_decay=0.01, beta1=0.8)]),
          checks=trajectory_checks("Adam with weight decay (L2)", "Adam", [
              *ADAM_WD_MISTAKES, *pairs(ADAM_WD_MISTAKES), DEFAULT_BETAS, DEFAULT_EPS], grads_unchanged=True))
def adam_weight_decay(lab, **inputs):
    """Adam's weight_decay is L2: g = g + wd*p before m and v; p.grad stays unchanged.

    Its betas and eps are not the defaults (hidden variants of adam use others): constructor arguments
    that are ignored are charged here. Adam's own rules (bias correction, eps, the step counter) are
    named here too, alone and in pairs: this case runs them.
    """
    return run_trajectory(lab, "Adam", inputs)


ADAMW_CORE = [*ADAM_MISTAKES[:3], ADAM_MISTAKES[4]]


@LAB.case(points=6, **variants(adam_hp(lr=0.02, weight_decay=0.1, beta2=0.99, eps=1e-6),
                               [adam_hp(lr=0.005, weight_decay=0.3, eps=1e-6),
                                adam_hp(lr=0.05, weight_decay=0.05, beta2=0.99)],
                               lr_changes=LR_CHANGES),
          checks=trajectory_checks("AdamW", "AdamW", [
              (ADAMW_L2, ["l2"]), (ADAMW_NO_LR, ["decay_without_lr"]), (ADAMW_AFTER, ["decay_after_update"]),
              *ADAMW_CORE, *pairs(ADAMW_CORE), DEFAULT_BETAS, DEFAULT_EPS], grads_unchanged=True),
          given=Given("Adam (the same run with Adam and weight_decay=0)",
                      tuple(f"adam_p{k}" for k in range(N_PARAMS)), "given.adamw"))
def adamw(lab, **inputs):
    """AdamW: p *= 1 - lr*wd, then Adam's update without L2; lr changed mid-run.

    What it charges: the decoupled decay, and AdamW's own constructor (beta2 and eps are not the
    defaults: it must pass them on). The gradients are fixed, so Adam's update u_t does not depend on p:
    the same run with Adam and weight_decay=0 gives the student's own u_t = q_{t-1} - q_t, and when that
    run differs from the reference (a wrong Adam rule: adam and adam_weight_decay charge it), this case is
    judged against p_t = p_{t-1} * (1 - lr_t * wd) - u_t (``Given``). Adam's rules are still listed (alone
    and in pairs) for a student whose AdamW does not go through Adam.step.
    """
    out = run_trajectory(lab, "AdamW", inputs)
    plain = run_trajectory(lab, "Adam", {**inputs, "weight_decay": np.array(0.0)})
    out.update({f"adam_p{k}": plain[f"p{k}"] for k in range(N_PARAMS)})
    return out


# ----------------------------------------------------------------------------- state


def same_shape_inputs(shape: tuple[int, ...], steps: int) -> Callable[[np.random.Generator], Arrays]:
    """Two parameters of the SAME shape (a shared buffer would not crash), different gradients."""
    base = trajectory_inputs((shape, shape, shape), steps, {"lr": 0.05}, no_grad=(3, 7), scales=(1.0, 0.1, 3.0))

    def make(rng: np.random.Generator) -> Arrays:
        out = base(rng)
        out.update(momentum=np.array(0.9), lr_adam=np.array(0.01))
        return out

    return make


def _as_cls(inputs: Arrays, cls: str) -> Arrays:
    """The inputs of state_per_parameter as one optimizer's (its own lr, its hyperparameters)."""
    inp = {k: v for k, v in inputs.items() if k not in ("momentum", "lr_adam", "lr")}
    if cls == "SGD":
        inp["momentum"] = inputs["momentum"]
        inp["lr"] = inputs["lr"]
    else:
        inp["lr"] = inputs["lr_adam"]
        inp["lrs"] = np.full_like(inputs["lrs"], float(inputs["lr_adam"]))
    return inp


def _state_checks() -> list[Close]:
    checks = []
    for cls, what, desc in (("SGD", "SGD(momentum=0.9)", SHARED_SGD), ("Adam", "Adam", SHARED_ADAM)):
        for k in range(N_PARAMS):
            name = f"{cls.lower()}_p{k}"
            checks.append(Close(name, f"{what} on three parameters of the same shape: parameter {k} after each step",
                                explain="Each parameter has its own state: optimizer.state[i] for params[i].",
                                mistakes=(Mistake(desc, instructor(f"state.{cls}.p{k}")),), rows="step"))
    return checks


def _alone(inputs: Arrays, k: int) -> Arrays:
    """The inputs of parameter ``k`` alone (as parameter 0), with the same gradients, lrs and hyperparameters."""
    inp = {name: v for name, v in inputs.items() if name[0] not in "xgh" or name == "lrs"}
    inp.update(x0=inputs[f"x{k}"], g0=inputs[f"g{k}"], has0=inputs[f"has{k}"])
    return inp


STATE_OUTPUTS = tuple(f"{cls}_p{k}" for cls in ("sgd", "adam") for k in range(N_PARAMS))


@LAB.case(points=5, inputs=same_shape_inputs((4, 3), 32), hidden_inputs=(same_shape_inputs((2, 5), 30),
                                                                         same_shape_inputs((6,), 36)),
          checks=_state_checks(),
          given=Given("step()", tuple(f"{n}_alone" for n in STATE_OUTPUTS), "given.state"))
def state_per_parameter(lab, **inputs):
    """SGD momentum and Adam keep one state per parameter (three parameters of the same shape).

    What it charges: state that one parameter's step reads or writes in another's (a buffer, m or v
    shared between parameters). Each parameter is also stepped alone, by an optimizer of its own over the
    same steps (step() called on every step, grad None where it has none), and the three stepped together
    must follow those trajectories: when the student's step() on one parameter alone differs from the
    reference (a wrong update rule: the trajectory cases charge it), this case is judged against the
    student's own alone trajectories (``Given``), so a wrong rule costs no points here. A step counter
    counted per step() call rather than per update is the same alone and together: the ``adam`` case
    charges it (p1 has no gradient on some steps there).
    """
    out = {}
    for cls in ("SGD", "Adam"):
        inp = _as_cls(inputs, cls)
        res = run_trajectory(lab, cls, inp)
        out.update({f"{cls.lower()}_p{k}": res[f"p{k}"] for k in range(N_PARAMS)})
        for k in range(N_PARAMS):
            out[f"{cls.lower()}_p{k}_alone"] = run_trajectory(lab, cls, _alone(inp, k))["p0"]
    return out


SAVE_AT, LR_CHANGE_AT = 16, 6


def roundtrip_inputs(shapes: Sequence[tuple[int, ...]], steps: int, hp: dict[str, float]):
    """A trajectory whose lr changes once, at step LR_CHANGE_AT, before the checkpoint."""
    return trajectory_inputs(shapes, steps, hp, lr_changes=((LR_CHANGE_AT, 0.5),))


def run_roundtrip(lab: ModuleType, cls: str, inputs: Arrays) -> Arrays:
    """A runs SAVE_AT steps (lr changed before), saves, continues; B loads the checkpoint and continues.

    B is built with the constructor's lr: the changed lr must come from the checkpoint. Returns B's
    trajectory (``resumed_p<k>``) and A's over the same steps (``uninterrupted_p<k>``), the student's own
    uninterrupted run. Gradients are handed in as new arrays (``_set_grads``: aliasing p.grad is charged
    in the trajectory cases, and a checkpoint's copy cannot keep an alias).
    """
    n = sum(1 for k in inputs if k.startswith("x"))
    kwargs = optimizer_kwargs(inputs)
    params = make_params(lab, [inputs[f"x{k}"] for k in range(n)])
    opt = getattr(lab, cls)(params, **kwargs)
    run_steps(opt, cls, params, inputs, 0, SAVE_AT, kwargs["lr"], fresh=True)
    checkpoint = opt.state_dict()
    snapshot = _numbers(copy.deepcopy(checkpoint))
    saved = [np.array(p.data, copy=True) for p in params]
    steps = len(inputs["lrs"])
    # A goes on: the checkpoint must not change
    on = run_steps(opt, cls, params, inputs, SAVE_AT, steps, None, fresh=True)
    after = _numbers(checkpoint)
    unchanged = len(after) == len(snapshot) and all(a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
                                                    for a, b in zip(after, snapshot, strict=True))
    resumed = make_params(lab, saved)
    opt2 = getattr(lab, cls)(resumed, **kwargs)
    opt2.load_state_dict(checkpoint)
    lr_loaded = float(opt2.lr)
    traj = run_steps(opt2, cls, resumed, inputs, SAVE_AT, steps, None, fresh=True)
    return {**{f"resumed_p{k}": np.stack(traj[k]) for k in range(n)},
            **{f"uninterrupted_p{k}": np.stack(on[k]) for k in range(n)},
            "checkpoint_changed": np.array([float(not unchanged)]), "lr_loaded": np.array([lr_loaded])}


def _numbers(obj: Any) -> list[np.ndarray]:
    """Every number and array in a state dict, in a fixed order (dict keys sorted by their text)."""
    if isinstance(obj, dict):
        return [a for key in sorted(obj, key=str) for a in _numbers(obj[key])]
    if isinstance(obj, (list, tuple)):
        return [a for item in obj for a in _numbers(item)]
    try:
        arr = np.array(obj)
    except Exception:  # noqa: BLE001 - anything that is not a number is not compared
        return []
    return [arr] if arr.dtype.kind in "biuf" else []


ROUNDTRIP_MISTAKES = {
    "aliased": "state_dict() shares arrays with the optimizer's live state (no deep copy): continuing training "
               "changed the checkpoint (copy.deepcopy the state)",
    "aliased_arrays": "state_dict() copied the dicts but not the arrays inside them: continuing training (in "
                      "place) changed the checkpoint's buffers (copy.deepcopy the state)",
    "lr": "load_state_dict did not restore lr (the resumed optimizer kept its constructor's lr, but lr had been "
          "changed before the checkpoint)",
    "fresh": "load_state_dict restored nothing: the resumed optimizer started from empty state",
    "step": "the step counter was not restored (bias correction restarted at t = 1)",
}


ROUNDTRIP_EXPLAIN = (f"Row r is the parameter after step {SAVE_AT + 1} + r. Resuming must continue exactly the "
                     "trajectory an uninterrupted run follows (lr included: it changed before the checkpoint).")


def _roundtrip_checks(cls: str, hows: Sequence[str]) -> list[Close]:
    return [Close(f"resumed_p{k}", f"{cls} resumed from state_dict() taken after step {SAVE_AT}: parameter {k} "
                                   "after each later step", explain=ROUNDTRIP_EXPLAIN,
                  mistakes=tuple(Mistake(ROUNDTRIP_MISTAKES[h], instructor(f"roundtrip.{cls}.{h}.p{k}")) for h in hows),
                  rows="row")
            for k in range(N_PARAMS)] + [
        Close("checkpoint_changed", f"{cls}: 1 when the state_dict() taken after step {SAVE_AT} changed once "
                                    "training went on (it must stay as it was: 0)", exact=True,
              explain="state_dict() shares arrays with the optimizer's live state: continuing training changed the "
                      "checkpoint. Return a copy (copy.deepcopy the state)."),
        Close("lr_loaded", f"{cls}: optimizer.lr right after load_state_dict() (the lr saved in the checkpoint, "
                           f"changed after step {LR_CHANGE_AT})",
              explain="load_state_dict did not restore lr: the resumed optimizer kept its constructor's lr."),
    ]


def _roundtrip_given(cls: str) -> Given:
    """Judged against the student's own uninterrupted run when that run differs from the reference's."""
    return Given(f"{cls}.step", tuple(f"uninterrupted_p{k}" for k in range(N_PARAMS)), f"given.roundtrip.{cls}")


@LAB.case(points=4, inputs=roundtrip_inputs(PUBLIC_SHAPES, 30, adam_hp()),
          hidden_inputs=(roundtrip_inputs(HIDDEN_SHAPES[0], 34, adam_hp(lr=0.003, beta1=0.8)),
                         roundtrip_inputs(HIDDEN_SHAPES[1], 32, adam_hp(lr=0.03, eps=1e-6))),
          checks=_roundtrip_checks("Adam", ("aliased", "aliased_arrays", "lr", "fresh", "step")),
          given=_roundtrip_given("Adam"))
def state_dict_adam(lab, **inputs):
    """Adam: state_dict() after step 16, load_state_dict() into a new optimizer, continue identically.

    What it charges: a checkpoint that changes when training goes on (no deep copy), and a restore that
    loses lr, the step counter or the state. The resumed run must equal the student's OWN uninterrupted
    run: when that differs from the reference (a wrong update rule, or a None gradient treated as zeros:
    the trajectory cases charge them), the case is judged against it (``Given``), so a wrong rule costs
    no points here. A crash in step() (1 - beta**0 = 0) fails every case that steps Adam.
    """
    return run_roundtrip(lab, "Adam", inputs)


@LAB.case(points=3, inputs=roundtrip_inputs(PUBLIC_SHAPES, 30, sgd_hp(momentum=0.9, nesterov=True)),
          hidden_inputs=(roundtrip_inputs(HIDDEN_SHAPES[0], 34, sgd_hp(lr=0.02, momentum=0.7)),
                         roundtrip_inputs(HIDDEN_SHAPES[1], 32, sgd_hp(lr=0.1, momentum=0.9, dampening=0.2))),
          checks=_roundtrip_checks("SGD", ("aliased", "lr", "fresh")), given=_roundtrip_given("SGD"))
def state_dict_sgd(lab, **inputs):
    """SGD with momentum: state_dict() after step 16, load_state_dict(), continue identically.

    Charges what state_dict_adam charges, for SGD's momentum buffer; a wrong momentum or Nesterov rule
    is judged against the student's own uninterrupted run (``Given``) and costs no points here.
    """
    return run_roundtrip(lab, "SGD", inputs)


def zero_grad_inputs(shapes: Sequence[tuple[int, ...]]):
    def make(rng: np.random.Generator) -> Arrays:
        return {**{f"x{k}": rng.standard_normal(s) for k, s in enumerate(shapes)},
                **{f"g{k}": rng.standard_normal(s) for k, s in enumerate(shapes)}}
    return make


@LAB.case(points=2, inputs=zero_grad_inputs(PUBLIC_SHAPES), hidden_inputs=(zero_grad_inputs(HIDDEN_SHAPES[0]),),
          checks=[Close("grads", "zero_grad(): the gradients afterwards (all exactly 0)", exact=True),
                  Close("same_arrays", "zero_grad(): 1 where p.grad is still the same array (set in place)",
                        exact=True, explain="Set gradients to zero in place (p.grad[...] = 0): Lab 1's "
                                            "layers add into the array they find in p.grad."),
                  Close("none_kept", "zero_grad(): 1 where a None gradient stayed None", exact=True),
                  Close("data", "zero_grad(): the parameters' data afterwards (unchanged)", exact=True)])
def zero_grad(lab, **inputs):
    """zero_grad() zeroes every existing gradient in place; None stays None; data is untouched."""
    params = make_params(lab, [inputs[f"x{k}"] for k in range(N_PARAMS)])
    for k, p in enumerate(params):
        p.grad = inputs[f"g{k}"].copy() if k != 1 else None
    before = [p.grad for p in params]
    lab.Adam(params, lr=0.01).zero_grad()
    kept = [p for k, p in enumerate(params) if k != 1]
    return {"grads": np.concatenate([np.asarray(p.grad, dtype=np.float64).ravel() for p in kept]),
            "same_arrays": np.array([float(p.grad is before[k]) for k, p in enumerate(params) if k != 1]),
            "none_kept": np.array([float(params[1].grad is None)]),
            "data": np.concatenate([p.data.ravel() for p in params])}


# ----------------------------------------------------------------------------- schedules

SCHEDULE_STEPS = 100
SCHEDULE_EXPLAIN = ("Entry k is optimizer.lr after k calls of scheduler.step() (entry 0: right after the "
                    "scheduler is created), as PyTorch's schedulers step.")


def schedule_inputs(**hp: float):
    def make(rng: np.random.Generator) -> Arrays:
        return {"base_lr": np.array(float(np.round(rng.uniform(0.05, 0.5), 4))),
                **{k: np.array(v) for k, v in hp.items()}}
    return described(", ".join(f"{k}={v:g}" for k, v in hp.items()), make)


def record_lrs(lab: ModuleType, make_scheduler: Callable[[Any], Any], base_lr: float) -> Arrays:
    """optimizer.lr after 0..SCHEDULE_STEPS scheduler steps (the optimizer itself never steps)."""
    opt = lab.SGD([lab.Parameter(np.zeros(3))], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = [opt.lr]
    for _ in range(SCHEDULE_STEPS):
        scheduler.step()
        lrs.append(opt.lr)
    return {"lrs": np.array(lrs, dtype=np.float64)}


def schedule_check(title: str, named: Sequence[tuple[str, str]], terms: Terms | None = None) -> list[Close]:
    """The lrs check; ``named`` = ((description, instructor key), ...): the schedule's closed form with a
    known bug is the solution's math, so the instructor module predicts it. ``terms``: the closed form as a
    sum of terms, to name an error no known mistake matches."""
    return [Close("lrs", f"{title}: optimizer.lr after k = 0..{SCHEDULE_STEPS} scheduler steps", rtol=1e-9,
                  atol=1e-12, explain=SCHEDULE_EXPLAIN,
                  mistakes=tuple(Mistake(d, instructor(key)) for d, key in named), rows="k", terms=terms)]


# The cosine as a sum of two terms (its own formula regrouped): a wrong sign, a missing half, a cosine
# without pi or over a half period are then named by the term they touch (grader/judging/terms.py).
COSINE_TERMS = Terms("lr(k) = (base_lr + eta_min)/2 + (base_lr - eta_min)/2 * cos(pi k / T_max)", (
    Term("the constant part (base_lr + eta_min)/2", short="constant part"),
    Term("the cosine term (base_lr - eta_min)/2 * cos(pi k / T_max)",
         ("cos(k / T_max), without pi", "cos(pi k / (2 T_max)), a half period"), short="cosine term"),
), instructor("terms.cosine"))


@LAB.case(points=3, inputs=schedule_inputs(step_size=7, gamma=0.5),
          hidden_inputs=(schedule_inputs(step_size=1, gamma=0.97), schedule_inputs(step_size=30, gamma=0.1)),
          checks=schedule_check("StepLR", [
              ("the decay comes one step late (floor((k - 1) / step_size))", "lr.step.late"),
              ("the decay comes one step early (floor((k + 1) / step_size))", "lr.step.early"),
              ("a smooth decay gamma**(k / step_size) without the floor", "lr.step.no_floor"),
          ]))
def step_lr(lab, base_lr, step_size, gamma):
    """StepLR: lr(k) = base_lr * gamma**floor(k / step_size), 100 steps."""
    return record_lrs(lab, lambda opt: lab.StepLR(opt, step_size=int(step_size), gamma=float(gamma)), float(base_lr))


@LAB.case(points=4, inputs=schedule_inputs(T_max=40, eta_min=0.001),
          hidden_inputs=(schedule_inputs(T_max=100, eta_min=0.0), schedule_inputs(T_max=17, eta_min=0.01)),
          checks=schedule_check("CosineAnnealingLR", [
              ("held at eta_min after T_max steps: PyTorch's cosine goes on (the lr rises again, period 2*T_max)",
               "lr.cosine.held"),
              ("off by one: the cosine at k + 1", "lr.cosine.ahead"),
              ("eta_min left out: base_lr * (1 + cos(pi k / T_max)) / 2",
               "lr.cosine.no_eta_min"),
          ], COSINE_TERMS))
def cosine_lr(lab, base_lr, T_max, eta_min):
    """CosineAnnealingLR: eta_min + (base_lr - eta_min)(1 + cos(pi k / T_max))/2, 100 steps (past T_max)."""
    return record_lrs(lab, lambda opt: lab.CosineAnnealingLR(opt, T_max=int(T_max), eta_min=float(eta_min)),
                      float(base_lr))


@LAB.case(points=3, inputs=schedule_inputs(start_factor=0.1, end_factor=0.9, total_iters=20),
          hidden_inputs=(schedule_inputs(start_factor=0.5, end_factor=0.8, total_iters=1),
                         schedule_inputs(start_factor=0.25, end_factor=1.0, total_iters=60)),
          checks=schedule_check("LinearLR", [
              ("not clamped after total_iters: the factor stays at end_factor from then on",
               "lr.linear.unclamped"),
              ("off by one: the factor at k + 1", "lr.linear.ahead"),
              ("start and end factors swapped", "lr.linear.swapped"),
          ]))
def linear_lr(lab, base_lr, start_factor, end_factor, total_iters):
    """LinearLR warm-up: base_lr * (start + (end - start) * min(k, total_iters) / total_iters)."""
    return record_lrs(lab, lambda opt: lab.LinearLR(opt, start_factor=float(start_factor), end_factor=float(end_factor),
                                                     total_iters=int(total_iters)), float(base_lr))


# The warm-up is cut off by the milestone before it reaches 1.0 (warm_iters > milestone): at the milestone the
# lr jumps to the cosine's start, so switching one step early or late is visible (it is not when the warm-up
# ends at 1.0 exactly there).
@LAB.case(points=3, inputs=schedule_inputs(start_factor=0.1, milestone=10, warm_iters=15, eta_min=0.0),
          hidden_inputs=(schedule_inputs(start_factor=0.3, milestone=1, warm_iters=4, eta_min=0.001),
                         schedule_inputs(start_factor=0.05, milestone=37, warm_iters=45, eta_min=0.0)),
          checks=schedule_check("SequentialLR(LinearLR warm-up, CosineAnnealingLR)", [
              ("the cosine evaluated at the global step k instead of k - milestone (it restarts at the milestone)",
               "lr.warmup_cosine.global_k"),
              ("switching one step late (milestone < k instead of milestone <= k)",
               "lr.warmup_cosine.late"),
          ]),
          given=Given("LinearLR and CosineAnnealingLR", ("warm_alone", "cosine_alone"), "given.warmup_cosine"))
def warmup_cosine(lab, base_lr, start_factor, milestone, warm_iters, eta_min):
    """Warm-up then cosine: SequentialLR([LinearLR(total_iters=w > m), CosineAnnealingLR(T_max=100-m)], [m]).

    What it charges: SequentialLR's switching (when, and that the second schedule restarts at the
    milestone). The student's LinearLR and CosineAnnealingLR are also run alone with the same arguments;
    when they differ from the reference's (linear_lr and cosine_lr charge that), this case is judged
    against the sequence they give, switched at the milestone (``Given``).
    """
    m = int(milestone)

    def make(opt: Any) -> Any:
        warm = lab.LinearLR(opt, start_factor=float(start_factor), end_factor=1.0, total_iters=int(warm_iters))
        cos = lab.CosineAnnealingLR(opt, T_max=SCHEDULE_STEPS - m, eta_min=float(eta_min))
        return lab.SequentialLR(opt, [warm, cos], milestones=[m])

    out = record_lrs(lab, make, float(base_lr))
    out["warm_alone"] = record_lrs(lab, lambda opt: lab.LinearLR(opt, start_factor=float(start_factor), end_factor=1.0,
                                                                 total_iters=int(warm_iters)), float(base_lr))["lrs"]
    out["cosine_alone"] = record_lrs(lab, lambda opt: lab.CosineAnnealingLR(opt, T_max=SCHEDULE_STEPS - m,
                                                                            eta_min=float(eta_min)),
                                     float(base_lr))["lrs"]
    return out


# ----------------------------------------------------------------------------- MNIST


@LAB.case(points=10, inputs=mnist_inputs, private=["test_labels"], hidden=False, timeout=300, slow=True,
          checks=[Accuracy("predictions", "test_labels", ACCURACY_THRESHOLD,
                           "fit_mnist (your Adam + warm-up + cosine) + predict on the held-out split",
                           reference=REFERENCE_ACCURACY)])
def mnist_accuracy(lab, train_images, train_labels, test_images):
    """Train Lab 1's MLP with your Adam and schedule (fit_mnist); predict the held-out digits."""
    model = lab.fit_mnist(train_images, train_labels, seed=0)
    return {"predictions": lab.predict(model, test_images)}
