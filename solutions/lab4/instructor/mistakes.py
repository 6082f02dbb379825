"""Lab 4's known-mistake predictors: instructor-only (they hold every optimizer's update rule).

``tests/lab4/cases.py`` names these by key (``Mistake(description, instructor(key))``); each is a
plain function ``(inputs, expected) -> array`` giving the trajectory an optimizer with that bug
follows over the case's gradient sequence. ``simulate`` runs the rules written from the handout's
formulas, with bug switches; with no bug it must equal the reference (tests/engine/test_lab4_torch.py
checks it, and the reference against torch.optim). They run in the grading process only:
``gradelab fixtures lab4`` stores the predictions for the public seeds, isolated grading computes
them for hidden variants (grader/authoring/fixtures.py). This folder is never released.

Keys:
  ``traj.<cls>.<bug>.p<k>``           parameter k's trajectory (initial row included) under ``bug``
  ``state.<cls>.p<k>``                state_per_parameter: one state shared by every parameter
  ``roundtrip.<cls>.<how>.p<k>``      the resumed trajectory after a wrong state_dict round trip
  ``given.state``, ``given.roundtrip`` the state cases' expected values given the student's own runs
                                      (``Given`` in cases.py, grader/judging/given.py)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

Arrays = dict[str, np.ndarray]
Predictor = Callable[[Arrays, Arrays], np.ndarray | None]
N_PARAMS = 3
SAVE_AT = 16  # tests/lab4/cases.py: the step after which state_dict() is taken

# ----------------------------------------------------------------------------- the rules, and their variants


def _sgd(p: np.ndarray, g: np.ndarray, st: dict, lr: float, t: int, hp: dict, bugs: frozenset) -> None:
    wd, mom, damp, nesterov = hp["weight_decay"], hp["momentum"], hp["dampening"], hp["nesterov"]
    if wd and not bugs & {"decoupled_wd", "wd_after_momentum"}:
        g = g + wd * p
    if wd and "decoupled_wd" in bugs:
        p *= 1.0 - lr * wd
    upd = g
    if mom and "velocity" in bugs:  # v = m v - lr g; p = p + v (dampening left out)
        st["v"] = -lr * g if "v" not in st else mom * st["v"] - lr * g
        # Nesterov in this convention: p += m v - lr g (the look-ahead with the new velocity)
        p += mom * st["v"] - lr * g if nesterov and "no_nesterov" not in bugs else st["v"]
        return
    if mom:
        old = st.get("buf")
        if old is None:
            st["buf"] = (1.0 - damp) * g if "damp_first" in bugs else g.copy()
        elif "ema" in bugs:
            st["buf"] = mom * old + (1.0 - mom) * g
        else:
            st["buf"] = mom * old + (1.0 - damp) * g
        if nesterov and "no_nesterov" not in bugs:
            upd = g + mom * (old if "nesterov_old" in bugs and old is not None else st["buf"])
        else:
            upd = st["buf"]
    if wd and "wd_after_momentum" in bugs:
        upd = upd + wd * p
    p += lr * upd if "ascent" in bugs else -lr * upd


def _adagrad(p: np.ndarray, g: np.ndarray, st: dict, lr: float, t: int, hp: dict, bugs: frozenset) -> None:
    wd, eps = hp["weight_decay"], hp["eps"]
    raw = g
    if wd:
        g = g + wd * p
    st["sum"] = st.get("sum", 0.0) + (raw * raw if "sum_without_wd" in bugs else g * g)
    denom = np.sqrt(st["sum"] + eps) if "eps_inside" in bugs else np.sqrt(st["sum"]) + eps
    p -= lr * g / denom


def _rmsprop(p: np.ndarray, g: np.ndarray, st: dict, lr: float, t: int, hp: dict, bugs: frozenset) -> None:
    wd, eps, alpha, mom = hp["weight_decay"], hp["eps"], hp["alpha"], hp["momentum"]
    if wd:
        g = g + wd * p
    alpha = DEFAULTS["alpha"] if "default_alpha" in bugs else alpha  # the constructor's alpha ignored
    a = 1.0 - alpha if "alpha_swapped" in bugs else alpha
    st["sq"] = a * st.get("sq", 0.0) + (1.0 - a) * g * g
    denom = np.sqrt(st["sq"] + eps) if "eps_inside" in bugs else np.sqrt(st["sq"]) + eps
    if mom > 0:
        if "momentum_before_division" in bugs:
            st["buf"] = mom * st.get("buf", 0.0) + g
            p -= lr * st["buf"] / denom
        else:
            st["buf"] = mom * st.get("buf", 0.0) + g / denom
            p -= lr * st["buf"]
    else:
        p -= lr * g / denom


def _adam(p: np.ndarray, g: np.ndarray, st: dict, lr: float, t: int, hp: dict, bugs: frozenset) -> None:
    wd, eps, b1, b2 = hp["weight_decay"], hp["eps"], hp["beta1"], hp["beta2"]
    if "default_betas" in bugs:  # the constructor's betas ignored
        b1, b2 = DEFAULTS["beta1"], DEFAULTS["beta2"]
    if "default_eps" in bugs:
        eps = DEFAULTS["eps"]
    decoupled = hp.get("decoupled", False) != ("l2" in bugs or "decoupled_in_adam" in bugs)
    if wd and decoupled:
        if "decay_without_lr" in bugs:
            p *= 1.0 - wd
        elif "decay_after_update" not in bugs:
            p *= 1.0 - lr * wd
    elif wd:
        g = g + wd * p
    st["step"] = st.get("step", 0) + 1
    step = t if "global_step" in bugs else st["step"]
    step += 1 if "step_ahead" in bugs else 0
    st["m"] = b1 * st.get("m", 0.0) + (1.0 - b1) * g
    st["v"] = b2 * st.get("v", 0.0) + (1.0 - b2) * g * g
    bc1, bc2 = (1.0, 1.0) if "no_bias_correction" in bugs else (1.0 - b1**step, 1.0 - b2**step)
    if "eps_before_correction" in bugs:
        update = (lr * math.sqrt(bc2) / bc1) * st["m"] / (np.sqrt(st["v"]) + eps)
    elif "eps_inside" in bugs:
        update = lr * (st["m"] / bc1) / np.sqrt(st["v"] / bc2 + eps)
    else:
        update = lr * (st["m"] / bc1) / (np.sqrt(st["v"] / bc2) + eps)
    p -= update
    if wd and decoupled and "decay_after_update" in bugs:
        p *= 1.0 - lr * wd


RULES: dict[str, Callable[..., None]] = {"SGD": _sgd, "Adagrad": _adagrad, "RMSprop": _rmsprop,
                                         "Adam": _adam, "AdamW": _adam}
DEFAULTS: dict[str, float] = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0,
                              "eps": 1e-8, "alpha": 0.99, "beta1": 0.9, "beta2": 0.999}


def simulate(cls: str, inputs: Arrays, bugs: Sequence[str] = (), *, start: int = 0, stop: int | None = None,
             values: list[np.ndarray] | None = None, states: list[dict] | None = None,
             lr: float | None = None) -> tuple[list[np.ndarray], list[dict], float]:
    """The rule ``cls`` (with ``bugs``) over steps start..stop-1 of the gradient sequence.

    Returns (each parameter's trajectory over those steps, the final states, the final lr).
    ``values``/``states``/``lr`` resume from a given point (for the state_dict cases).
    """
    hp = {**DEFAULTS, **{k: inputs[k].item() for k in DEFAULTS if k in inputs}, "decoupled": cls == "AdamW"}
    if cls == "Adagrad" and "eps" not in inputs:
        hp["eps"] = 1e-10
    if cls == "AdamW" and "weight_decay" not in inputs:
        hp["weight_decay"] = 1e-2
    bug_set = frozenset(bugs)
    n = sum(1 for k in inputs if k.startswith("x"))
    ps = [np.array(v, dtype=np.float64, copy=True) for v in (values or [inputs[f"x{k}"] for k in range(n)])]
    shared: dict = {} if states is None else states[0]
    sts = states if states is not None else [shared if "shared" in bug_set else {} for _ in range(n)]
    stop = len(inputs["lrs"]) if stop is None else stop
    lr = float(inputs["lrs"][start]) if lr is None else lr
    traj: list[list[np.ndarray]] = [[] for _ in range(n)]
    for t in range(start, stop):
        if "lr_fixed" not in bug_set:
            lr = float(inputs["lrs"][t])
        for k in range(n):
            if inputs[f"has{k}"][t]:
                RULES[cls](ps[k], inputs[f"g{k}"][t], sts[k], lr, t + 1, hp, bug_set)
            elif "none_as_zero" in bug_set:
                RULES[cls](ps[k], np.zeros_like(ps[k]), sts[k], lr, t + 1, hp, bug_set)
            traj[k].append(ps[k].copy())
    return [np.stack(tr) if tr else np.zeros((0,)) for tr in traj], sts, lr


# ----------------------------------------------------------------------------- the predictors

# Each rule's bug switches (a bug name may hold several switches joined by "-").
BUGS: dict[str, tuple[str, ...]] = {
    "SGD": ("ascent", "ema", "shared", "velocity", "damp_first", "no_nesterov", "nesterov_old", "decoupled_wd",
            "wd_after_momentum", "none_as_zero"),
    "Adagrad": ("eps_inside", "sum_without_wd", "none_as_zero"),
    "RMSprop": ("eps_inside", "alpha_swapped", "momentum_before_division", "default_alpha", "none_as_zero"),
    "Adam": ("no_bias_correction", "eps_inside", "eps_before_correction", "step_ahead", "global_step",
             "decoupled_in_adam", "default_betas", "default_eps", "none_as_zero"),
    "AdamW": ("no_bias_correction", "eps_inside", "eps_before_correction", "step_ahead", "global_step", "l2",
              "decay_without_lr", "decay_after_update", "default_betas", "default_eps", "none_as_zero"),
}

PREDICTORS: dict[str, Predictor] = {}


def _trajectory(cls: str, k: int, bugs: Sequence[str]) -> Predictor:
    """Parameter ``k``'s trajectory (initial row included) under the rule ``cls`` with ``bugs``."""
    def predict(inputs: Arrays, expected: Arrays) -> np.ndarray | None:
        shapes = {inputs[f"x{j}"].shape for j in range(N_PARAMS)}
        if "shared" in bugs and len(shapes) > 1:  # one buffer for parameters of other shapes: it crashes
            return None
        traj, _, _ = simulate(cls, inputs, bugs)
        both = np.concatenate([inputs[f"x{k}"][None], traj[k]])
        for one in (bugs if len(bugs) > 1 else ()):  # a pair applies only where each of its bugs changes it
            alone = predict_one(cls, k, [one], inputs)
            if alone is not None and _same(both, alone):
                return None
        return both
    return predict


def predict_one(cls: str, k: int, bugs: Sequence[str], inputs: Arrays) -> np.ndarray | None:
    """``_trajectory(cls, k, bugs)``'s prediction."""
    return _trajectory(cls, k, bugs)(inputs, {})


def _as_cls(inputs: Arrays, cls: str) -> Arrays:
    """The inputs of state_per_parameter as one optimizer's (as tests/lab4/cases.py: _as_cls)."""
    inp = {k: v for k, v in inputs.items() if k not in ("momentum", "lr_adam", "lr")}
    if cls == "SGD":
        inp["momentum"] = inputs["momentum"]
        inp["lr"] = inputs["lr"]
    else:
        inp["lr"] = inputs["lr_adam"]
        inp["lrs"] = np.full_like(inputs["lrs"], float(inputs["lr_adam"]))
    return inp


def _shared(cls: str, k: int, bugs: Sequence[str]) -> Predictor:
    def predict(inputs: Arrays, expected: Arrays) -> np.ndarray:
        inp = _as_cls(inputs, cls)
        traj, _, _ = simulate(cls, inp, bugs)
        return np.concatenate([inp[f"x{k}"][None], traj[k]])
    return predict


def _roundtrip(cls: str, k: int, how: str) -> Predictor:
    """B's trajectory when the checkpoint taken after SAVE_AT steps is restored wrongly (``how``)."""

    def predict(inputs: Arrays, expected: Arrays) -> np.ndarray:
        before, states, lr = simulate(cls, inputs, stop=SAVE_AT)
        saved = [b[-1] for b in before]
        if how.startswith("aliased"):  # the checkpoint held A's live state: A's later steps changed it
            counters = [st.get("step") for st in states]
            _, states, lr = simulate(cls, inputs, start=SAVE_AT, values=saved, states=states, lr=lr)
            for st, count in zip(states, counters, strict=True):
                if count is not None and how == "aliased_arrays":  # dicts copied: ints by value, arrays shared
                    st["step"] = count
        elif how == "lr":
            lr = float(inputs["lr"])
        elif how == "fresh":
            states, lr = [{} for _ in saved], float(inputs["lr"])
        elif how == "step":
            for st in states:
                st.pop("step", None)
        traj, _, _ = simulate(cls, inputs, ["lr_fixed"], start=SAVE_AT, values=saved, states=states, lr=lr)
        return traj[k]

    return predict


ROUNDTRIP_HOWS = ("aliased", "aliased_arrays", "lr", "fresh", "step")


def _sgd_buffer_aliases_grad(inputs: Arrays) -> list[np.ndarray]:
    """SGD whose momentum buffer starts AS p.grad (no copy), run with gradients handed in as the cases do
    (tests/lab4/cases.py, _set_grads): zeroed in place and accumulated into the same array each step, so
    the buffer is wiped and rescaled with it. Each parameter's trajectory, initial row included."""
    hp = {**DEFAULTS, **{k: inputs[k].item() for k in DEFAULTS if k in inputs}}
    m, d, wd = float(hp["momentum"]), float(hp["dampening"]), float(hp["weight_decay"])
    n = sum(1 for k in inputs if k.startswith("x"))
    ps = [np.array(inputs[f"x{k}"], dtype=np.float64, copy=True) for k in range(n)]
    grads: list[np.ndarray | None] = [None] * n
    bufs: list[np.ndarray | None] = [None] * n
    traj = [[p.copy()] for p in ps]
    for t in range(len(inputs["lrs"])):
        for k in range(n):
            if not inputs[f"has{k}"][t]:
                grads[k] = None
            elif grads[k] is None:
                grads[k] = inputs[f"g{k}"][t].copy()
            else:
                grads[k][...] = 0.0
                grads[k] += inputs[f"g{k}"][t]
        for k in range(n):
            if grads[k] is None:
                continue
            g = grads[k] + wd * ps[k] if wd else grads[k]
            if m:
                if bufs[k] is None:
                    bufs[k] = g  # the bug: no copy
                else:
                    bufs[k] *= m
                    bufs[k] += (1.0 - d) * g
                g = g + m * bufs[k] if hp["nesterov"] else bufs[k]
            ps[k] -= float(inputs["lrs"][t]) * g
        for k in range(n):
            traj[k].append(ps[k].copy())
    return [np.stack(tr) for tr in traj]


for _k in range(N_PARAMS):
    PREDICTORS[f"traj.SGD.buffer_aliases_grad.p{_k}"] = (lambda k: lambda i, e: _sgd_buffer_aliases_grad(i)[k])(_k)
    for _cls, _bugs in BUGS.items():
        for _bug in _bugs:
            PREDICTORS[f"traj.{_cls}.{_bug}.p{_k}"] = _trajectory(_cls, _k, [_bug])
        for _a, _b in itertools.permutations(_bugs, 2):  # two mistakes at once: "traj.<cls>.<a>-<b>.p<k>"
            PREDICTORS[f"traj.{_cls}.{_a}-{_b}.p{_k}"] = _trajectory(_cls, _k, [_a, _b])
    PREDICTORS[f"state.SGD.p{_k}"] = _shared("SGD", _k, ["shared"])
    PREDICTORS[f"state.Adam.p{_k}"] = _shared("Adam", _k, ["shared", "global_step"])
    for _cls in ("Adam", "SGD"):
        for _how in ROUNDTRIP_HOWS:
            PREDICTORS[f"roundtrip.{_cls}.{_how}.p{_k}"] = _roundtrip(_cls, _k, _how)


# ----------------------------------------------------------------------------- given the student's own runs
# ``Given(..., key)`` in cases.py: when the student's update rule differs from the reference's, the state cases
# are judged against the student's own runs, ``(inputs, got) -> {output: expected}``: three parameters stepped
# together must follow each one stepped alone; a resumed run must follow the uninterrupted one.

MISTAKE_PREFIX = "__mistake__/"  # grader/judging/case.py: predictions travel with the expected values


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as the cases' Close checks judge it (rtol 1e-7, atol 1e-10)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= 1e-10 + 1e-7 * np.abs(b)))


def _given_state(i: Arrays, g: Arrays) -> Arrays:
    """Together must follow alone. Where the student's rule on one parameter alone equals the reference's for
    every parameter of an optimizer, the shared-state predictions (made with the reference's rule) still
    apply to it, and travel with the expected values so that a shared state is still named."""
    out: Arrays = {}
    for cls in ("SGD", "Adam"):
        c = cls.lower()
        out.update({f"{c}_p{k}": g[f"{c}_p{k}_alone"] for k in range(N_PARAMS)})
        inp = _as_cls(i, cls)
        traj, _, _ = simulate(cls, inp)
        if all(_same(g[f"{c}_p{k}_alone"], np.concatenate([inp[f"x{k}"][None], traj[k]])) for k in range(N_PARAMS)):
            out.update({f"{MISTAKE_PREFIX}state.{cls}.p{k}": PREDICTORS[f"state.{cls}.p{k}"](i, {})
                        for k in range(N_PARAMS)})
    return out


def _given_roundtrip(cls: str) -> Predictor:
    """Resumed must follow uninterrupted. For each parameter whose uninterrupted run equals the reference's,
    the wrong-restore predictions (made with the reference's rule) still apply, and travel along."""
    def given(i: Arrays, g: Arrays) -> Arrays:
        out: Arrays = {f"resumed_p{k}": g[f"uninterrupted_p{k}"] for k in range(N_PARAMS)}
        traj, _, _ = simulate(cls, i)
        for k in range(N_PARAMS):
            if _same(g[f"uninterrupted_p{k}"], traj[k][SAVE_AT:]):
                out.update({f"{MISTAKE_PREFIX}roundtrip.{cls}.{how}.p{k}": _roundtrip(cls, k, how)(i, {})
                            for how in ROUNDTRIP_HOWS})
        return out
    return given


def _given_nesterov(i: Arrays, g: Arrays) -> Arrays:
    """sgd_nesterov given the student's own momentum run (nesterov=False): its buffer at step t is
    (p_{t-1} - p_t) / lr_t, and Nesterov's step is p_t = p_{t-1} - lr_t * (g_t + momentum * buf_t). The
    predictions of SGD's known wrong rules are exact programs: they travel along, so that one the student's
    trajectory equals is still named."""
    m, out = float(i["momentum"]), {}
    for k in range(N_PARAMS):
        plain, p = np.asarray(g[f"momentum_p{k}"], dtype=np.float64), np.array(i[f"x{k}"], dtype=np.float64)
        traj = [p.copy()]
        for t in range(len(i["lrs"])):
            if i[f"has{k}"][t]:
                lr = float(i["lrs"][t])
                p = p - lr * (i[f"g{k}"][t] + m * (plain[t] - plain[t + 1]) / lr)
            traj.append(p.copy())
        out[f"p{k}"] = np.stack(traj)
        for bug in (*BUGS["SGD"], "buffer_aliases_grad"):
            value = PREDICTORS[f"traj.SGD.{bug}.p{k}"](i, {})
            if value is not None:
                out[f"{MISTAKE_PREFIX}traj.SGD.{bug}.p{k}"] = value
    return out


def _given_adamw(i: Arrays, g: Arrays) -> Arrays:
    """adamw given the student's own Adam run with weight_decay=0 (q): with fixed gradients Adam's update does
    not depend on p, so AdamW's step is p_t = p_{t-1} * (1 - lr_t * wd) - (q_{t-1} - q_t). AdamW's known wrong
    rules travel along (exact programs), as for sgd_nesterov."""
    wd, out = float(i["weight_decay"]), {}
    for k in range(N_PARAMS):
        plain, p = np.asarray(g[f"adam_p{k}"], dtype=np.float64), np.array(i[f"x{k}"], dtype=np.float64)
        traj = [p.copy()]
        for t in range(len(i["lrs"])):
            if i[f"has{k}"][t]:
                p = p * (1.0 - float(i["lrs"][t]) * wd) - (plain[t] - plain[t + 1])
            traj.append(p.copy())
        out[f"p{k}"] = np.stack(traj)
        for bug in BUGS["AdamW"]:
            value = PREDICTORS[f"traj.AdamW.{bug}.p{k}"](i, {})
            if value is not None:
                out[f"{MISTAKE_PREFIX}traj.AdamW.{bug}.p{k}"] = value
    return out


PREDICTORS["given.nesterov"] = _given_nesterov
PREDICTORS["given.adamw"] = _given_adamw
PREDICTORS["given.state"] = _given_state
PREDICTORS["given.roundtrip.SGD"] = _given_roundtrip("SGD")
PREDICTORS["given.roundtrip.Adam"] = _given_roundtrip("Adam")


# ----------------------------------------------------------------------------- schedules

SCHEDULE_STEPS = 100  # tests/lab4/cases.py: scheduler steps recorded per schedule case


def _k() -> np.ndarray:
    return np.arange(SCHEDULE_STEPS + 1, dtype=np.float64)


def _steplr(i: Arrays, k: np.ndarray) -> np.ndarray:
    return float(i["base_lr"]) * float(i["gamma"]) ** np.floor(np.maximum(k, 0) / float(i["step_size"]))


def _cosine(i: Arrays, k: np.ndarray) -> np.ndarray:
    eta, base, t_max = float(i["eta_min"]), float(i["base_lr"]), float(i["T_max"])
    return eta + (base - eta) * (1 + np.cos(np.pi * k / t_max)) / 2


def _linear(i: Arrays, k: np.ndarray, clamp: bool = True) -> np.ndarray:
    s, e, n = float(i["start_factor"]), float(i["end_factor"]), float(i["total_iters"])
    progress = np.minimum(k, n) / n if clamp else k / n
    return float(i["base_lr"]) * (s + (e - s) * progress)


def _warmup_cosine(i: Arrays, shift: float = 1.0, late: bool = False) -> np.ndarray:
    k, m = _k(), float(i["milestone"])
    warm = _linear({**i, "end_factor": np.array(1.0), "total_iters": i.get("warm_iters", i["milestone"])}, k)
    cos = _cosine({**i, "T_max": np.array(SCHEDULE_STEPS - m)}, k - m * shift)
    return np.where(k > m if late else k >= m, cos, warm)


def _cosine_terms(i: Arrays, e: Arrays) -> np.ndarray:
    """tests/lab4/cases.py COSINE_TERMS: the constant part, the cosine term, then the cosine term's variants."""
    eta, base, t_max, k = float(i["eta_min"]), float(i["base_lr"]), float(i["T_max"]), _k()
    half = (base - eta) / 2
    return np.stack([np.full_like(k, (base + eta) / 2), half * np.cos(np.pi * k / t_max),
                     half * np.cos(k / t_max), half * np.cos(np.pi * k / (2 * t_max))])


def _given_warmup_cosine(i: Arrays, g: Arrays) -> Arrays:
    """SequentialLR's answer given the student's own LinearLR and CosineAnnealingLR (each run alone)."""
    k, m = _k().astype(int), int(i["milestone"])
    return {"lrs": np.where(k < m, g["warm_alone"], g["cosine_alone"][np.maximum(k - m, 0)])}


PREDICTORS["terms.cosine"] = _cosine_terms
PREDICTORS["given.warmup_cosine"] = _given_warmup_cosine

PREDICTORS.update({
    "lr.step.late": lambda i, e: _steplr(i, _k() - 1),
    "lr.step.early": lambda i, e: _steplr(i, _k() + 1),
    "lr.step.no_floor": lambda i, e: float(i["base_lr"]) * float(i["gamma"]) ** (_k() / float(i["step_size"])),
    "lr.cosine.held": lambda i, e: np.where(_k() > float(i["T_max"]), float(i["eta_min"]), _cosine(i, _k())),
    "lr.cosine.ahead": lambda i, e: _cosine(i, _k() + 1),
    "lr.cosine.no_eta_min": lambda i, e: float(i["base_lr"]) * (1 + np.cos(np.pi * _k() / float(i["T_max"]))) / 2,
    "lr.linear.unclamped": lambda i, e: _linear(i, _k(), clamp=False),
    "lr.linear.ahead": lambda i, e: _linear(i, _k() + 1),
    "lr.linear.swapped": lambda i, e: _linear({**i, "start_factor": i["end_factor"], "end_factor": i["start_factor"]},
                                              _k()),
    "lr.warmup_cosine.global_k": lambda i, e: _warmup_cosine(i, shift=0.0),
    "lr.warmup_cosine.late": lambda i, e: _warmup_cosine(i, late=True),
})
