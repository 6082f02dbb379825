"""How a lab declares what is graded: cases, their checks, and the lab that holds them.

A *case* is two functions and a list of checks:

* ``make_inputs(rng) -> {name: array}`` builds the inputs from a seeded RNG. It runs in the
  grading process. Inputs named in ``private`` (held-out labels) are never given to the
  implementation.
* ``run(lab, **inputs) -> {name: array}`` calls the implementation under test (``lab`` is
  the imported lab package) and returns named arrays. It is the only part that runs student
  code, so in isolated grading it runs in a sandboxed child and only arrays come back.
* ``checks`` judge the returned arrays, always in the grading process:
  ``Close`` against the reference's array for the same inputs, ``GradCheck`` an analytic
  gradient against a numerical one, ``Accuracy`` predictions against private labels.

A case passes when every check passes on every seed it is run with (its public seed; in
isolated grading also the lab's hidden seeds); it then earns all of its points.

Declaring one::

    @LAB.case(points=4, inputs=linear_inputs(n=4, d=5, m=3),
              checks=[Close("y", "Linear.forward output y")])
    def linear_forward(lab, x, weight, bias):
        \"\"\"Linear.forward on a non-square batch.\"\"\"
        return {"y": make_linear(lab, weight, bias)(x)}

Known mistakes and solution code
--------------------------------
``cases.py`` is shipped to students, so a ``Mistake`` whose prediction needs the solution's math
(a staged backward with a bug switch, an optimizer rule with a wrong term) must not compute it
there. It names an instructor-only predictor instead: ``Mistake("...", instructor("keras_mean"))``.
The predictor is a plain function ``(inputs, expected) -> array | None`` in
``solutions/<lab>/instructor/mistakes.py`` (never released; loaded by path in the grading process
only, never in the sandbox), found as ``PREDICTORS[key]`` or as the module's function ``key``.
Predictions travel like expected values: ``gradelab fixtures`` stores them for every public case
and seed (``<case>/<seed>/__mistake__/<key>``, checked by ``fixtures --check``); isolated grading
computes them live. Where there is no prediction (no instructor module, a key the fixtures lack),
the mistake simply gives no hint. Callable predictors stay for predictions that
reveal nothing (``e["dweight"] / len(i["x"])``) and for those that need the student's outputs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import guard

Arrays = dict[str, np.ndarray]
MakeInputs = Callable[[np.random.Generator], Arrays]
RunFn = Callable[..., Mapping[str, Any]]


# Expected values may carry instructor predictions under this prefix (see ``Instructor``).
MISTAKE_PREFIX = "__mistake__/"
_KEY = re.compile(r"[A-Za-z0-9_.-]+")  # a key is part of an npz member name


@dataclass(frozen=True)
class Instructor:
    """A prediction computed by the instructor-only ``solutions/<lab>/instructor/mistakes.py``.

    ``key`` names the predictor there (``PREDICTORS[key]`` or the function ``key``); it is also
    the name of the stored prediction, ``<case>/<seed>/__mistake__/<key>`` in the fixtures.
    """

    key: str

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"instructor predictor key {self.key!r}: use letters, digits, '_', '.', '-' only")


def instructor(key: str) -> Instructor:
    """``Mistake(description, instructor(key))``: the prediction comes from the instructor module."""
    return Instructor(key)


Predictor = Callable[..., np.ndarray | None]


def split_predictions(expected: Mapping[str, Any]) -> tuple[Arrays, Arrays]:
    """(the reference's outputs, the instructor predictions by key) of an expected-values dict."""
    outputs = {k: v for k, v in expected.items() if not k.startswith(MISTAKE_PREFIX)}
    stored = {k[len(MISTAKE_PREFIX):]: v for k, v in expected.items() if k.startswith(MISTAKE_PREFIX)}
    return outputs, stored


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: if the student's array matches ``predict``, say ``description``.

    ``predict(inputs, expected)`` gets the case inputs and the reference's outputs and returns
    what the mistaken implementation would have produced for the checked output. It may also
    take a third argument, the student's outputs (all of them), e.g. to fit a slope or to
    require that another output looks right; returning None means "does not apply".
    ``predict`` may instead be ``instructor(key)``: a prediction that needs the solution's math,
    computed by the instructor-only module (see the module docstring); ``Close`` checks only.
    """

    description: str
    predict: Predictor | Instructor

    @property
    def instructor_key(self) -> str | None:
        """The instructor predictor's key, or None for a callable prediction."""
        return self.predict.key if isinstance(self.predict, Instructor) else None

    def prediction(self, inputs: Arrays, expected: Arrays, got: Mapping[str, Any],
                   stored: Mapping[str, np.ndarray] | None = None) -> np.ndarray | None:
        """What the mistake would give here, or None when it does not apply (or cannot be computed).

        An instructor prediction is looked up in ``stored`` (by key): from the fixtures, or computed
        live in isolated grading; when it is not there the mistake gives no hint.
        """
        if isinstance(self.predict, Instructor):
            value = (stored or {}).get(self.predict.key)
            return None if value is None else np.asarray(value)
        try:
            n_args = len(inspect.signature(self.predict).parameters)
        except (TypeError, ValueError):
            n_args = 2
        value = self.predict(inputs, expected, got) if n_args >= 3 else self.predict(inputs, expected)
        return None if value is None else np.asarray(value)


@dataclass(frozen=True)
class Term:
    """One term of a formula that a lab declares as a sum of terms (see ``Terms``).

    ``name`` is how a message names it ("the mean term -gamma/std * mean_n(dy)"); ``variants``
    describe wrong forms of the term that the lab's ``compute`` also returns (e.g. "taken over
    axis 1 instead of over the batch"), in that order.
    """

    name: str
    variants: tuple[str, ...] = ()
    short: str = ""  # a short name for lists ("mean term"); ``name`` when empty


@dataclass(frozen=True)
class Terms:
    """A formula as a sum of terms, so that a wrong array can be explained in the formula's own terms.

    ``compute(inputs, expected)`` returns one array stacking, along a new first axis, each term of
    ``terms`` in order (they must add up to the expected value) and then each term's variants in
    order. It may be ``instructor(key)``: terms usually need the solution's math, so they are
    computed by the instructor module and stored in the fixtures like a mistake's prediction.

    When no known mistake matches, grader/judging/terms.py fits the student's array as a
    combination of the terms (least squares) and, only when the fit reproduces the array within
    the check's tolerance, says which term's coefficient is off, missing or of the wrong sign, which
    term has the form of one of its variants (a wrong axis), or that the array is transposed.
    ``group_axis`` lets coefficients differ along that axis (per feature or channel: a wrong
    per-feature prefactor), named ``group`` in messages; ``group_factors`` name per-group
    quantities (e.g. "std = sqrt(var + eps)"), which ``compute`` returns last, each as an array of
    the output's shape, so that a wrong per-group prefactor can be named by them.
    """

    formula: str
    terms: tuple[Term, ...]
    compute: Predictor | Instructor
    group_axis: int | None = None
    group: str = "feature"
    group_factors: tuple[str, ...] = ()

    @property
    def instructor_key(self) -> str | None:
        return self.compute.key if isinstance(self.compute, Instructor) else None

    def stack(self, inputs: Arrays, expected: Arrays,
              stored: Mapping[str, np.ndarray] | None = None) -> np.ndarray | None:
        """The stacked terms and variants, or None when they cannot be computed here."""
        if isinstance(self.compute, Instructor):
            value = (stored or {}).get(self.compute.key)
        else:
            value = self.compute(inputs, expected)
        if value is None:
            return None
        value = np.asarray(value, dtype=np.float64)
        n_variants = sum(len(t.variants) for t in self.terms)
        expected_len = len(self.terms) + n_variants + len(self.group_factors)
        return value if value.ndim >= 1 and len(value) == expected_len else None


@dataclass(frozen=True)
class Close:
    """The output must match the reference's output for the same inputs.

    Passes where ``|got - expected| <= atol + rtol * |expected|`` for every entry.
    ``explain`` is added to the message on failure (what this check is about);
    ``mistakes`` are tested against the student's array to name a known bug (a mistake applies
    only where its prediction differs from the expected value by more than this tolerance, and the
    student's array matches the prediction within it; pairs of mistakes are tried too);
    ``terms`` (optional) declare the formula's terms, to explain an error no mistake matches.
    ``rows`` (optional) says that the output's first axis is ordered in time and what a row is called
    ("step": row t is a trajectory after t steps); the message then says, once, which row is the first
    that differs (every row before it matches): where to start debugging.
    """

    output: str
    what: str
    rtol: float = 1e-7
    atol: float = 1e-10
    explain: str = ""
    mistakes: tuple[Mistake, ...] = ()
    exact: bool = False  # e.g. "the input was not modified": any difference fails
    terms: Terms | None = None  # the formula's terms, to explain an error no known mistake matches
    rows: str | None = None  # what a row of the output is ("step"), when rows are ordered in time

    @property
    def needs_reference(self) -> bool:
        return True


@dataclass(frozen=True)
class GradCheck:
    """An analytic gradient must match the central-difference gradient of the same code.

    Both arrays come from the implementation under test (its backward, and a numerical
    derivative of its forward), so this check tells a student whether backward agrees with
    their own forward, even when the forward is wrong.
    """

    analytic: str
    numeric: str
    what: str
    rtol: float = 1e-5
    atol: float = 1e-7
    # Predictions get the numerical gradient as ``expected[analytic]``.
    mistakes: tuple[Mistake, ...] = ()

    def __post_init__(self) -> None:
        if any(m.instructor_key for m in self.mistakes):  # stored predictions are made from the reference
            raise ValueError(f"GradCheck {self.what!r}: instructor predictions are for Close checks only")

    @property
    def output(self) -> str:
        return self.analytic

    @property
    def needs_reference(self) -> bool:
        return False


@dataclass(frozen=True)
class Accuracy:
    """The fraction of ``predictions`` equal to the private input ``labels`` must reach ``threshold``."""

    predictions: str
    labels: str
    threshold: float
    what: str
    reference: str = ""  # how the reference does, for the message

    @property
    def output(self) -> str:
        return self.predictions

    @property
    def needs_reference(self) -> bool:
        return False


@dataclass(frozen=True)
class Metric:
    """A score computed here, in the grading process, must reach ``threshold`` (e.g. a detector's mAP).

    ``score(inputs, outputs) -> float`` gets every input (private ones too: held-out boxes) and
    the implementation's outputs as arrays; ``output`` is the output it needs first (a missing
    one fails with the usual message). ``describe(inputs, outputs) -> str`` may add detail.

    ``scored_by`` names the lab's own functions that compute the score when the metric is itself
    a task of the lab (e.g. ``"mean_average_precision"``), so that cases.py holds no copy of it:
    ``score`` and ``describe`` then take a ``MetricPackage``'s module first,
    ``score(module, inputs, outputs)``. The grading process passes the reference package (the
    grader's metric, one source of truth); only a local in-process run without solutions/ (a
    student's release) passes the student's own package, and the report says so.
    """

    output: str
    score: Callable[..., float]
    threshold: float
    what: str
    reference: str = ""
    describe: Callable[..., str] | None = None
    scored_by: str = ""

    @property
    def needs_reference(self) -> bool:
        return False


@dataclass(frozen=True)
class MetricPackage:
    """The package whose functions score ``Metric(scored_by=...)`` checks, and whose it is."""

    module: ModuleType
    own: bool  # the student's own package: a local run in a release, which has no reference

    def note(self, check: Metric) -> str:
        """What the report says about how ``check`` was scored ("" for the grader's metric)."""
        return (f"scored with your own {check.scored_by}; the grade uses the grader's metric"
                if self.own and check.scored_by else "")


Check = Close | GradCheck | Accuracy | Metric


@dataclass(frozen=True)
class Given:
    """Judge a function given the student's own results of an earlier one it calls.

    ``nms`` calls ``box_iou``; with a wrong ``box_iou`` the reference's keep list is out of reach
    of a correct ``nms``, and one IoU bug would cost the points of every case built on it. So the
    run also returns the earlier function's results on the case's inputs (``outputs``, e.g. the
    student's IoU matrix; the reference's are stored like any expected value), and when they differ
    from the reference's, the case's checks are judged a second time against the reference's
    later function applied to the student's results: ``key`` names the instructor-only function
    ``(inputs, got) -> {output: expected}``, ``got`` the student's numeric outputs (the earlier
    function's among them) (solutions/<lab>/instructor/mistakes.py, as for
    ``instructor(key)``; cases.py is released and holds no solution code). The case passes when
    either judgement passes (code that does not call the earlier function keeps full marks).
    Without an instructor module (a student's release) the failure says to fix ``earlier`` first.

    Several earlier functions (Conv2d's dL/dx goes through im2col in forward and col2im in
    backward): ``functions`` names the one behind each output, in call order, and messages name only
    those whose results differ (the first of them as the one to fix first: a later one, such as the
    forward that calls im2col, may differ only through it). When the key's function also returns a
    GradCheck's numerical-gradient output, that GradCheck is left out of the second judgement: the
    student's forward differs from the reference (charged in its own cases), so agreeing with its
    numerical gradient is no longer what the case asks. A case that passes only this way says so
    (given.describe_given_pass), not "matches the reference".
    """

    earlier: str  # the earlier function, as the student knows it: "box_iou"
    outputs: tuple[str, ...]  # the run's outputs holding its results on this case's inputs
    key: str
    functions: tuple[str, ...] = ()  # the earlier function behind each output (default: ``earlier`` for all)

    def __post_init__(self) -> None:
        if not _KEY.fullmatch(self.key):
            raise ValueError(f"Given key {self.key!r}: use letters, digits, '_', '.', '-' only")
        if self.functions and len(self.functions) != len(self.outputs):
            raise ValueError(f"Given {self.key!r}: one function per output, got {self.functions} for {self.outputs}")

    def function_of(self, output: str) -> str:
        """The earlier function whose results ``output`` holds."""
        return self.functions[self.outputs.index(output)] if self.functions else self.earlier


def described(description: str, make: MakeInputs) -> MakeInputs:
    """A hidden variant's input maker that says what kind of input it makes ("stride 2, no padding").

    A failing hidden variant's message quotes it, so a student knows which regime broke without
    seeing the inputs; a public case should cover every regime a hidden variant exercises.
    """
    def maker(rng: np.random.Generator) -> Arrays:
        return make(rng)
    maker.description = description  # type: ignore[attr-defined]
    return maker


def variant_description(make: MakeInputs) -> str:
    """What ``described`` said about an input maker ("" for an undescribed one)."""
    return str(getattr(make, "description", ""))


@dataclass(frozen=True)
class Case:
    """One graded unit: inputs, the call into the implementation, the checks, the points."""

    name: str
    points: float
    description: str
    make_inputs: MakeInputs
    run: RunFn
    checks: tuple[Check, ...]
    private: frozenset[str] = frozenset()
    seeds: tuple[int, ...] = (0,)
    hidden: bool = True  # also run with the lab's hidden seeds when grading
    # The most a run may take; the limit applied is ``fixtures.case_timeout``: 10x the reference's
    # measured time (tests/<lab>/fixtures/timing.json) + 2 s, capped here; slow cases keep this.
    timeout: float = 60.0
    slow: bool = False
    factors: Callable[[Arrays], dict[str, float]] | None = None  # named constants for hints
    # Hidden variant i builds its inputs with hidden_inputs[i % len] (other shapes, other
    # hyperparameters), so code that special-cases the public inputs loses those points.
    hidden_inputs: tuple[MakeInputs, ...] = ()
    given: Given | None = None  # judged given the student's own results of an earlier function
    # At most this many of the lab's hidden seeds (None: all). For cases whose every run is costly
    # (a training run): one hidden variant already makes answers looked up for the public inputs fail.
    max_hidden: int | None = None
    lab: str = ""  # the lab's name (set by Lab.case): where the measured timings are found

    def inputs_maker(self, variant: int | None) -> MakeInputs:
        """How the inputs of the public run (``variant`` None) or of hidden variant ``variant`` are made."""
        if variant is None or not self.hidden_inputs:
            return self.make_inputs
        return self.hidden_inputs[variant % len(self.hidden_inputs)]

    def variant_description(self, variant: int) -> str:
        """What kind of input hidden variant ``variant`` uses ("" when its maker does not say)."""
        return variant_description(self.inputs_maker(variant)) if self.hidden_inputs else ""

    def hidden_seeds(self, seeds: Sequence[int]) -> tuple[int, ...]:
        """The lab's hidden ``seeds`` this case runs with in grading: none when ``hidden`` is False,
        at most ``max_hidden`` of them."""
        if not self.hidden:
            return ()
        return tuple(seeds) if self.max_hidden is None else tuple(seeds)[:self.max_hidden]

    @property
    def needs_reference(self) -> bool:
        return any(c.needs_reference for c in self.checks)

    @property
    def instructor_keys(self) -> tuple[str, ...]:
        """The keys of every instructor prediction the case's Close checks name, each once."""
        keys = [m.instructor_key for c in self.checks if isinstance(c, Close) for m in c.mistakes]
        keys += [c.terms.instructor_key for c in self.checks if isinstance(c, Close) and c.terms]
        return tuple(dict.fromkeys(k for k in keys if k))

    def public_inputs(self, inputs: Arrays) -> Arrays:
        """The inputs the implementation may see: all but the private ones."""
        return {k: v for k, v in inputs.items() if k not in self.private}

    def call(self, lab: ModuleType, inputs: Arrays) -> Mapping[str, Any]:
        """Runs the case against an implementation on a private copy of the inputs.

        ``run`` receives only the inputs its signature names (plus all of them if it takes
        ``**kwargs``), never the private ones, and the package through ``grader.judging.guard``: every
        call into it is checked (arguments not modified in place, gradient shapes), for every
        case of every lab; a problem raises ``guard.Feedback``.
        """
        params = inspect.signature(self.run).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        public = self.public_inputs(inputs)
        guard.reset()
        return self.run(guard.guarded(lab), **{k: np.array(v, copy=True) for k, v in public.items()
                                               if takes_all or k in params})


@dataclass
class Lab:
    """A lab's cases, in the order they are reported."""

    name: str
    title: str
    cases: list[Case] = field(default_factory=list)

    @property
    def max_score(self) -> float:
        return sum(c.points for c in self.cases)

    def get(self, name: str) -> Case:
        for c in self.cases:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no case {name!r}; cases: {', '.join(c.name for c in self.cases)}")

    def case(self, *, points: float, inputs: MakeInputs, checks: Sequence[Check],
             private: Sequence[str] = (), seeds: Sequence[int] = (0,), hidden: bool = True,
             timeout: float = 60.0, slow: bool = False,
             factors: Callable[[Arrays], dict[str, float]] | None = None,
             hidden_inputs: Sequence[MakeInputs] = (), given: Given | None = None,
             max_hidden: int | None = None) -> Callable[[RunFn], RunFn]:
        """Decorator registering ``run`` as a case named after the function.

        ``inputs`` makes the public inputs; ``hidden_inputs`` (optional) make those of the hidden
        variants, which should differ in shapes and hyperparameters, not only in random values
        (``described(text, maker)`` names what kind of input a variant makes, for its messages);
        ``given`` judges the case given the student's own results of an earlier function (``Given``);
        ``max_hidden`` caps how many of the lab's hidden seeds the case runs with (see ``Case``).
        """

        def register(run: RunFn) -> RunFn:
            if any(c.name == run.__name__ for c in self.cases):
                raise ValueError(f"duplicate case name {run.__name__!r} in {self.name}")
            doc = (run.__doc__ or "").strip()
            self.cases.append(Case(
                name=run.__name__, points=points, description=doc.splitlines()[0] if doc else "",
                make_inputs=inputs, run=run, checks=tuple(checks), private=frozenset(private),
                seeds=tuple(seeds), hidden=hidden, timeout=timeout, slow=slow, factors=factors,
                hidden_inputs=tuple(hidden_inputs), given=given, max_hidden=max_hidden, lab=self.name,
            ))
            return run

        return register
