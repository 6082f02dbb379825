"""Lab 4's grader against realistic optimizer and schedule bugs: each fails exactly its cases, naming the rule.

Every bug is a patch of the Lab 4 reference (``patched_reference`` with ``lab="lab4"``), graded
in-process on every case but MNIST training. For each we declare the exact set of cases that
must fail and, per failing case, substrings of the message that name the bug (and, for
trajectories, the first step that differs). Correct alternative implementations (PyTorch's own
algebra, rebinding instead of in-place updates, recursive schedules) must keep full marks.
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.judging.expected import ReferenceExpected
from grader.runner import InProcess, LabResult, grade, hidden_seeds, reference, run_lab

LAB = load_cases("lab4", paths.tests_dir())
POINTS = {c.name: c.points for c in LAB.cases}
MNIST = "mnist_accuracy"
FAST = [c.name for c in LAB.cases if c.name != MNIST]
FAST_MAX = 100 - POINTS[MNIST]

# Reference lines the patches replace (each must occur exactly once in its file).
SGD_BUF_INIT = 'buf = state["momentum_buffer"] = np.array(g, copy=True)'
SGD_BUF_UPDATE = "buf += (1.0 - self.dampening) * g"
SGD_NESTEROV = "g = g + self.momentum * buf if self.nesterov else buf"
SGD_STATE = "state = self.state.setdefault(i, {})"
SGD_DECAY = "g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad\n            if self.momentum:"
SGD_UPDATE = "p.data -= self.lr * g\n"
ADAGRAD_UPDATE = 'p.data -= self.lr * g / (np.sqrt(state["sum"]) + self.eps)'
RMS_DENOM = 'denom = np.sqrt(state["square_avg"]) + self.eps'
RMS_MOMENTUM = "buf += g / denom\n                p.data -= self.lr * buf"
ADAM_STEP = 'state["step"] += 1\n            t = state["step"]'
ADAM_CORRECTION = "m_hat = m / (1.0 - beta1**t)\n            v_hat = v / (1.0 - beta2**t)"
ADAM_UPDATE = "p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)"
ADAM_LOOP = "beta1, beta2 = self.betas\n"
ADAMW_DECAY = "p.data *= 1.0 - self.lr * self.weight_decay\n        return g"
STATE_DICT = 'return {"lr": self.lr, "state": copy.deepcopy(self.state)}'
LOAD_LR = 'self.lr = float(state_dict["lr"])\n'
ZERO_GRAD = "p.grad[...] = 0.0"
STEPLR = "return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)"
COSINE = "cosine = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0"
LINEAR = "progress = min(self.last_epoch, self.total_iters) / self.total_iters"
ALIASED = "your momentum buffer IS p.grad (buf = g without a copy)"
SEQUENTIAL = "active.last_epoch = k - (self.milestones[j - 1] if j else 0)"

RAISED = "your code raised an error"
FIRST = "every step before it matches"
EMA = "momentum as an average buf = m*buf + (1-m)*g"
VELOCITY = "v = m*v - lr*g convention (lr inside the buffer): equal to PyTorch's only while lr is constant"
SHARED_SGD = "your momentum buffer is shared between parameters"
SHARED_STATE = "your optimizer's state is shared between parameters"
STEP_FIRST = "increment the step counter before using it"
EPS_INSIDE = "eps inside the square root"
NO_BIAS = "Adam without bias correction"
GLOBAL_STEP = "one step counter for all parameters"
NONE_AS_ZERO = "a None gradient treated as zeros"
PAIR = "matches a known mistake: two mistakes at once: "
NOT_COPIED = "1 when the state_dict() taken after step 16 changed once training went on"
TERMS = "fitted term by term to lr(k) = (base_lr + eta_min)/2 + (base_lr - eta_min)/2 * cos(pi k / T_max)"
ADAMW_L2 = "weight decay added to the gradient (L2, Adam) where AdamW decouples it"


def bug(bug_id: str, patches: dict[str, list[tuple[str, str]]], fails: dict[str, list[str]]):
    """One bug: its patches, and {case expected to fail: substrings its message must contain}."""
    return pytest.param(patches, fails, id=bug_id)


BUGS = [
    # ---------------------------------------------------------------- SGD
    bug("sgd-momentum-as-average", {"optim.py": [(SGD_BUF_UPDATE, "buf += (1.0 - self.momentum) * g")]}, {
        "sgd_momentum": [EMA, "SGD with momentum: p0", FIRST],
        "sgd_momentum_lr_change": [EMA],
        "sgd_dampening": [EMA],
        # the decayed gradient goes through the same buffer: named there too; sgd_nesterov is judged given the
        # student's own momentum run (nesterov=False): not charged
        "sgd_weight_decay": [EMA],
        # state_per_parameter and state_dict_sgd are judged given the student's own runs: not charged
    }),
    bug("sgd-velocity-with-lr-inside", {"optim.py": [
        (SGD_BUF_INIT, 'buf = state["momentum_buffer"] = -self.lr * g'),
        (SGD_BUF_UPDATE, "buf -= self.lr * g"),
        (SGD_NESTEROV, "g = -(g * -self.lr + self.momentum * buf) / self.lr if self.nesterov else -buf / self.lr"),
    ]}, {
        "sgd_momentum_lr_change": [VELOCITY, "the first step that differs is 13;"],
        "sgd_dampening": ["dampening ignored"],  # the patch also drops dampening (constant lr: that is what shows)
        # sgd_nesterov: judged given the student's own momentum run, whose buffer is -v/lr: not charged
    }),
    bug("sgd-dampening-at-first-step", {"optim.py": [
        (SGD_BUF_INIT, 'buf = state["momentum_buffer"] = (1.0 - self.dampening) * g')]}, {
        "sgd_dampening": ["dampening applied at the first step (a buffer started at zero)",
                          "the first step that differs is 1;"],
    }),
    bug("sgd-nesterov-ignored", {"optim.py": [(SGD_NESTEROV, "g = buf")]}, {
        "sgd_nesterov": ["nesterov=True ignored", "the first step that differs is 1;"],
    }),
    bug("sgd-weight-decay-decoupled", {"optim.py": [
        (SGD_DECAY, "g = p.grad\n            p.data *= 1.0 - self.lr * self.weight_decay\n"
                    "            if self.momentum:")]}, {
        "sgd_weight_decay": ["weight decay decoupled (p *= 1 - lr*wd) where SGD adds wd*p to the gradient"],
    }),
    bug("sgd-weight-decay-into-grad-in-place", {"optim.py": [
        (SGD_DECAY, "g = p.grad\n            if self.weight_decay:\n                g += self.weight_decay * p.data\n"
                    "            if self.momentum:")]}, {
        "sgd_weight_decay": ["p.grad after the last step", "never p.grad += ..."],
    }),
    bug("sgd-shared-momentum-buffer", {"optim.py": [(SGD_STATE, "state = self.state.setdefault(0, {})")]}, {
        "state_per_parameter": [SHARED_SGD, "the first step that differs is 1;"],
        # different shapes: the shared buffer cannot even be added to; there is no trajectory to judge, and the
        # broadcasting error between two parameters' shapes is the evidence each of these cases names
        **{case: [RAISED, SHARED_STATE, "could not be broadcast"] for case in (
            "sgd_momentum", "sgd_momentum_lr_change", "sgd_dampening", "sgd_nesterov", "sgd_weight_decay",
            "state_dict_sgd")},
    }),
    # ---------------------------------------------------------------- no gradient (grad is None)
    bug("none-gradient-treated-as-zeros", {"optim.py": [
        ("            g = self._decay(p, p.grad)\n",
         "            g = self._decay(p, p.grad if p.grad is not None else np.zeros_like(p.data))\n"),
        ("        for i, p in enumerate(self.params):\n            if p.grad is None:\n                continue\n"
         "            g = self._decay", "        for i, p in enumerate(self.params):\n            g = self._decay"),
    ]}, {
        "adam": [NONE_AS_ZERO, "Adam: p1 (small gradients; NO gradient on some steps)"],
        "adam_weight_decay": [NONE_AS_ZERO],
        "adamw": [NONE_AS_ZERO],
    }),
    bug("none-gradient-not-skipped", {"optim.py": [
        ("        for i, p in enumerate(self.params):\n            if p.grad is None:\n                continue\n"
         "            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad\n            state = "
         'self.state.setdefault(i, {"step": 0, "sum"',
         "        for i, p in enumerate(self.params):\n"
         "            g = p.grad + self.weight_decay * p.data if self.weight_decay else p.grad\n            state = "
         'self.state.setdefault(i, {"step": 0, "sum"')]}, {
        "adagrad": [RAISED, "grad is None (it got no gradient): skip that parameter entirely", "optimizer step 3"],
        "adagrad_weight_decay": [RAISED, "grad is None (it got no gradient): skip that parameter entirely"],
    }),
    # ---------------------------------------------------------------- Adagrad, RMSprop
    bug("adagrad-eps-inside-sqrt", {"optim.py": [
        (ADAGRAD_UPDATE, 'p.data -= self.lr * g / np.sqrt(state["sum"] + self.eps)')]}, {
        "adagrad": [EPS_INSIDE, "Adagrad: p1 (small gradients"],
        "adagrad_weight_decay": [EPS_INSIDE],
    }),
    bug("rmsprop-eps-inside-sqrt", {"optim.py": [(RMS_DENOM, 'denom = np.sqrt(state["square_avg"] + self.eps)')]}, {
        "rmsprop": [EPS_INSIDE],
        "rmsprop_momentum": [EPS_INSIDE],
    }),
    bug("rmsprop-momentum-on-raw-gradient", {"optim.py": [
        (RMS_MOMENTUM, "buf += g\n                p.data -= self.lr * buf / denom")]}, {
        "rmsprop_momentum": ["momentum on the raw gradient", "the first step that differs is 2;"],
    }),
    # ---------------------------------------------------------------- Adam, AdamW
    bug("adam-without-bias-correction", {"optim.py": [(ADAM_CORRECTION, "m_hat = m\n            v_hat = v")]}, {
        "adam": [NO_BIAS, "the first step that differs is 1;"],
        "adam_weight_decay": [NO_BIAS],
        # adamw: judged given the student's own Adam run (weight_decay=0): not charged
    }),
    bug("adam-eps-inside-sqrt", {"optim.py": [
        (ADAM_UPDATE, "p.data -= self.lr * m_hat / np.sqrt(v_hat + self.eps)")]}, {
        "adam": [EPS_INSIDE],
        "adam_weight_decay": [EPS_INSIDE],
        # adamw: judged given the student's own Adam run: not charged
    }),
    bug("adam-step-counter-incremented-after-use", {"optim.py": [
        (ADAM_STEP, 't = state["step"]\n            state["step"] += 1')]}, {
        # a crash at Adam's first step: no trajectory to judge, in every case that steps Adam
        "adam": [RAISED, STEP_FIRST, "optimizer step 1"],
        **{case: [RAISED, STEP_FIRST] for case in ("adam_weight_decay", "adamw", "state_per_parameter",
                                                   "state_dict_adam")},
    }),
    bug("adam-one-step-counter-for-all-parameters", {"optim.py": [
        (ADAM_LOOP, "beta1, beta2 = self.betas\n        self.t = getattr(self, 't', 0) + 1\n"),
        (ADAM_STEP, 'state["step"] += 1\n            t = self.t')]}, {
        "adam": [GLOBAL_STEP, "Adam: p1 (small gradients; NO gradient on some steps)",
                 "the first step that differs is 5;"],
        # per step() call is the same alone and together: state_per_parameter does not charge it
        "adam_weight_decay": [GLOBAL_STEP],  # (adamw: judged given the student's own Adam run)
        # self.t lives outside self.state: the checkpoint loses it (named for the parameters with a gradient
        # at every step, whose own uninterrupted run equals the reference's)
        "state_dict_adam": ["the step counter was not restored"],
    }),
    bug("adamw-coupled-l2", {"optim.py": [(ADAMW_DECAY, "return g + self.weight_decay * p.data")]}, {
        "adamw": [ADAMW_L2, "the first step that differs is 1;"],
    }),
    bug("adamw-decay-without-lr", {"optim.py": [
        (ADAMW_DECAY, "p.data *= 1.0 - self.weight_decay\n        return g")]}, {
        "adamw": ["AdamW decay without lr (p *= 1 - weight_decay)"],
    }),
    # ---------------------------------------------------------------- state
    bug("state-dict-not-copied", {"optim.py": [(STATE_DICT, 'return {"lr": self.lr, "state": self.state}')]}, {
        "state_dict_adam": ["state_dict() shares arrays with the optimizer's live state"],
        "state_dict_sgd": ["state_dict() shares arrays with the optimizer's live state"],
    }),
    bug("state-dict-shallow-copy", {"optim.py": [
        (STATE_DICT, 'return {"lr": self.lr, "state": {i: dict(s) for i, s in self.state.items()}}')]}, {
        "state_dict_adam": ["state_dict() copied the dicts but not the arrays"],
        "state_dict_sgd": ["state_dict() shares arrays with the optimizer's live state"],  # no counter in SGD
    }),
    bug("load-state-dict-ignores-lr", {"optim.py": [(LOAD_LR, "\n")]}, {
        "state_dict_adam": ["load_state_dict did not restore lr", "the first row that differs is 0:"],
        "state_dict_sgd": ["load_state_dict did not restore lr"],
    }),
    bug("zero-grad-new-arrays", {"optim.py": [(ZERO_GRAD, "p.grad = np.zeros_like(p.data)")]}, {
        "zero_grad": ["1 where p.grad is still the same array", "Lab 1's layers add into the array"],
    }),
    # ---------------------------------------------------------------- schedules
    bug("steplr-one-step-late", {"schedulers.py": [
        (STEPLR, "return self.base_lr * self.gamma ** (max(self.last_epoch - 1, 0) // self.step_size)")]}, {
        "step_lr": ["the decay comes one step late", "the first k that differs is 7;"],
    }),
    bug("cosine-held-at-eta-min", {"schedulers.py": [
        (COSINE, "cosine = (1.0 + math.cos(math.pi * min(self.last_epoch, self.T_max) / self.T_max)) / 2.0")]}, {
        "cosine_lr": ["held at eta_min after T_max steps", "the first k that differs is 41;"],
        "mnist_accuracy": [],  # not graded here (FAST), listed to document: the cosine ends at T_max
    }),
    bug("linearlr-not-clamped", {"schedulers.py": [(LINEAR, "progress = self.last_epoch / self.total_iters")]}, {
        "linear_lr": ["not clamped after total_iters", "the first k that differs is 21;"],
    }),
    bug("sequential-switches-one-step-late", {"schedulers.py": [
        ("j = sum(1 for m in self.milestones if m <= k)", "j = sum(1 for m in self.milestones if m < k)")]}, {
        # visible because the warm-up is cut off before it reaches 1.0 (warm_iters > milestone)
        "warmup_cosine": ["switching one step late", "the first k that differs is 10;"],
    }),
    bug("sgd-momentum-buffer-aliases-grad", {"optim.py": [
        (SGD_BUF_INIT, 'buf = state["momentum_buffer"] = g')]}, {
        # visible because the cases hand in gradients as a loop does: zeroed in place, accumulated into p.grad
        **{case: [ALIASED] for case in ("sgd_momentum", "sgd_momentum_lr_change", "sgd_dampening", "sgd_nesterov")},
        # state_per_parameter: the same alone and together; state_dict_sgd hands in new gradient arrays
    }),
    bug("sequential-global-step", {"schedulers.py": [(SEQUENTIAL, "active.last_epoch = k")]}, {
        "warmup_cosine": ["the cosine evaluated at the global step k instead of k - milestone",
                          "the first k that differs is 10;"],
    }),
    # ---------------------------------------------------------------- two known mistakes at once
    bug("adam-without-bias-correction-and-eps-inside-sqrt", {"optim.py": [
        (ADAM_CORRECTION, "m_hat = m\n            v_hat = v"),
        (ADAM_UPDATE, "p.data -= self.lr * m_hat / np.sqrt(v_hat + self.eps)")]}, {
        # the instructor module runs both wrong rules together (an optimizer's errors do not add)
        **{case: [PAIR, f"{NO_BIAS} (m and v used without dividing by 1 - beta**t); AND {EPS_INSIDE}"]
           for case in ("adam", "adam_weight_decay")},  # adamw: given the student's own Adam run
    }),
    # a wrong rule and a state bug: the rule costs the trajectory cases, the state bug the state cases, even
    # though state_dict_sgd is then judged against the student's own (wrong-rule) uninterrupted run
    bug("sgd-momentum-as-average-and-state-dict-not-copied", {"optim.py": [
        (SGD_BUF_UPDATE, "buf += (1.0 - self.momentum) * g"),
        (STATE_DICT, 'return {"lr": self.lr, "state": self.state}')]}, {
        **{case: [EMA] for case in ("sgd_momentum", "sgd_momentum_lr_change", "sgd_dampening", "sgd_weight_decay")},
        "state_dict_sgd": [NOT_COPIED, "judged given your own SGD.step's results"],
        "state_dict_adam": ["state_dict() shares arrays with the optimizer's live state"],
    }),
    # ---------------------------------------------------------------- errors no known mistake lists: the terms
    bug("cosine-with-one-minus-cos", {"schedulers.py": [
        (COSINE, "cosine = (1.0 - math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0")]}, {
        "cosine_lr": [TERMS, "the cosine term (base_lr - eta_min)/2 * cos(pi k / T_max), which has the wrong sign"],
        # warmup_cosine is judged given the student's own CosineAnnealingLR: the bug costs cosine_lr only
    }),
    bug("cosine-without-pi", {"schedulers.py": [
        (COSINE, "cosine = (1.0 + math.cos(self.last_epoch / self.T_max)) / 2.0")]}, {
        "cosine_lr": [TERMS, "which is cos(k / T_max), without pi"],
    }),
    # ---------------------------------------------------------------- regimes a hidden variant uses: public too
    bug("adam-betas-ignored", {"optim.py": [
        ("self.betas = (float(beta1), float(beta2))", "self.betas = (0.9, 0.999)")]}, {
        # adam_weight_decay passes betas that are not the defaults (adam's hidden variants do too); adamw does
        # too, but is judged given the student's own Adam run with the same betas: not charged there
        "adam_weight_decay": ["betas ignored: the defaults (0.9, 0.999) were used"],
    }),
    bug("adamw-constructor-drops-eps", {"optim.py": [
        ("super().__init__(params, lr, betas, eps, weight_decay)",
         "super().__init__(params, lr, betas, 1e-8, weight_decay)")]}, {
        "adamw": ["eps ignored: the default 1e-8 was used"],
    }),
    bug("rmsprop-alpha-ignored", {"optim.py": [
        ("self.alpha, self.eps = float(alpha), float(eps)", "self.alpha, self.eps = 0.99, float(eps)")]}, {
        "rmsprop_momentum": ["alpha ignored: the default 0.99 was used"],
    }),
]


def failed(result: LabResult) -> set[str]:
    return {c.name for c in result.cases if not c.passed}


def outputs(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def test_lab4_points() -> None:
    assert LAB.max_score == 100 and POINTS[MNIST] == 10


def test_unpatched_reference_passes_every_fast_case(grade_bug) -> None:
    grade_bug(LAB, "reference", {}, {}, FAST)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("patches", "fails"), BUGS)
def test_bug_fails_exactly_its_cases_with_a_message_naming_it(grade_bug, request, patches, fails) -> None:
    # A bug may name the MNIST case too (documentation: it still trains); only fast cases are graded here.
    grade_bug(LAB, request.node.callspec.id, patches, {c: n for c, n in fails.items() if c != MNIST}, FAST,
              every_case_named=False)


def with_hidden_variants(root) -> LabResult:
    """Public seed and both hidden variants (other shapes and hyperparameters), in-process, live reference."""
    return run_lab(LAB, InProcess(root, "lab4"), ReferenceExpected(reference("lab4")), impl=str(root),
                   hidden=hidden_seeds("lab4"), only=FAST)


def test_reference_passes_every_hidden_variant(patched_reference) -> None:
    assert len(hidden_seeds("lab4")) == 2
    result = with_hidden_variants(patched_reference("reference", {}, lab="lab4"))
    assert failed(result) == set(), outputs(result)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("patches", "fails"), BUGS)
def test_bug_still_fails_its_cases_with_hidden_variants(patched_reference, request, patches, fails) -> None:
    """Hidden variants change shapes and hyperparameters; no bug may slip through them (they can only add)."""
    result = with_hidden_variants(patched_reference(request.node.callspec.id, patches, lab="lab4"))
    assert set(fails) - {MNIST} <= failed(result), outputs(result)


def test_at_least_twelve_distinct_bugs_each_named() -> None:
    ids = [p.id for p in BUGS]
    assert len(ids) == len(set(ids)) >= 12
    named = [p for p in BUGS if any(needles for needles in p.values[1].values())]
    assert len(named) == len(BUGS)


ALTERNATIVES = {
    # PyTorch's own algebra: step size lr / bc1, denominator sqrt(v) / sqrt(bc2) + eps; m via lerp.
    "adam-torch-algebra": {"optim.py": [
        (ADAM_CORRECTION, "step_size = self.lr / (1.0 - beta1**t)\n"
                          "            denom = np.sqrt(v) / np.sqrt(1.0 - beta2**t) + self.eps"),
        (ADAM_UPDATE, "p.data -= step_size * m / denom"),
    ]},
    # Rebinding the state arrays instead of updating them in place.
    "sgd-rebinding-buffer": {"optim.py": [
        ("buf *= self.momentum\n                    buf += (1.0 - self.dampening) * g",
         'buf = state["momentum_buffer"] = self.momentum * buf + (1.0 - self.dampening) * g'),
    ]},
    # A checkpoint copied by hand (arrays copied, the counter an int), restored by hand: no deepcopy.
    "state-dict-copied-by-hand": {"optim.py": [
        (STATE_DICT, 'return {"lr": self.lr, "state": {i: {k: (v.copy() if isinstance(v, np.ndarray) else v)\n'
                     '            for k, v in s.items()} for i, s in self.state.items()}}'),
        ("self.state = {int(i): copy.deepcopy(s) for i, s in state_dict[\"state\"].items()}",
         "self.state = {int(i): {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}\n"
         "                      for i, s in state_dict[\"state\"].items()}"),
    ]},
    # A LinearLR that never reads min(): the factor clamped by an if, SequentialLR on top of it unchanged.
    "linearlr-clamped-by-if": {"schedulers.py": [
        (LINEAR, "progress = 1.0 if self.last_epoch >= self.total_iters else self.last_epoch / self.total_iters")]},
    # PyTorch's chainable StepLR: multiply the optimizer's current lr by gamma at each multiple of step_size.
    "steplr-chainable": {"schedulers.py": [
        (STEPLR, "k = self.last_epoch\n"
                 "        if k == 0:\n"
                 "            return self.base_lr\n"
                 "        return self.optimizer.lr * (self.gamma if k % self.step_size == 0 else 1.0)"),
    ]},
    # PyTorch's recursive (chainable) cosine: each lr from the previous one.
    "cosine-recursive": {"schedulers.py": [
        (COSINE, "k, n = self.last_epoch, self.T_max\n"
                 "        if k == 0 or not hasattr(self, '_lr'):\n"
                 "            cosine = (1.0 + math.cos(math.pi * k / n)) / 2.0\n"
                 "        elif (k - 1 - n) % (2 * n) == 0:\n"
                 "            self._lr += (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / n)) / 2\n"
                 "            return self._lr\n"
                 "        else:\n"
                 "            self._lr = self.eta_min + (self._lr - self.eta_min) * (\n"
                 "                1 + math.cos(math.pi * k / n)) / (1 + math.cos(math.pi * (k - 1) / n))\n"
                 "            return self._lr"),
        ("return self.eta_min + (self.base_lr - self.eta_min) * cosine",
         "self._lr = self.eta_min + (self.base_lr - self.eta_min) * cosine\n        return self._lr"),
    ]},
}


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_correct_alternatives_keep_full_marks(patched_reference, name) -> None:
    root = patched_reference(name, ALTERNATIVES[name], lab="lab4")
    result = grade(LAB, root, isolated=False, only=FAST)
    assert failed(result) == set(), outputs(result)
    assert failed(with_hidden_variants(root)) == set()  # other shapes and hyperparameters too


STUB_FUNCTION = {  # the first unimplemented function each case reaches (by case-name prefix)
    "sgd": "SGD.step", "adagrad": "Adagrad.step", "rmsprop": "RMSprop.step", "adam": "Adam.step",
    "state_per": "SGD.step", "state_dict_sgd": "SGD.step", "state_dict_adam": "Adam.step",
    "zero": "Optimizer.zero_grad", "step": "StepLR.get_lr", "cosine": "CosineAnnealingLR.get_lr",
    "linear": "LinearLR.get_lr", "warmup": "LinearLR.get_lr", "mnist": "LinearLR.get_lr",
}


def test_untouched_stubs_score_zero_and_every_case_names_the_missing_function() -> None:
    result = grade(LAB, paths.labs_dir(), isolated=False)  # every case, MNIST included
    assert [c.name for c in result.cases] == [c.name for c in LAB.cases]
    assert result.score == 0 and result.max_score == 100
    for case in result.cases:
        assert not case.passed
        assert RAISED in case.output, case.output
        function = next(f for prefix, f in STUB_FUNCTION.items() if case.name.startswith(prefix))
        assert f"NotImplementedError: {function}: not implemented yet" in case.output, case.output
