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
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from . import guard

Arrays = dict[str, np.ndarray]
MakeInputs = Callable[[np.random.Generator], Arrays]
RunFn = Callable[..., Mapping[str, Any]]


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: if the student's array matches ``predict``, say ``description``.

    ``predict(inputs, expected)`` gets the case inputs and the reference's outputs and returns
    what the mistaken implementation would have produced for the checked output. It may also
    take a third argument, the student's outputs (all of them), e.g. to fit a slope or to
    require that another output looks right; returning None means "does not apply".
    """

    description: str
    predict: Callable[..., np.ndarray | None]

    def prediction(self, inputs: Arrays, expected: Arrays, got: Mapping[str, Any]) -> np.ndarray | None:
        """What the mistake would give here, or None when it does not apply (or cannot be computed)."""
        try:
            n_args = len(inspect.signature(self.predict).parameters)
        except (TypeError, ValueError):
            n_args = 2
        value = self.predict(inputs, expected, got) if n_args >= 3 else self.predict(inputs, expected)
        return None if value is None else np.asarray(value)


@dataclass(frozen=True)
class Close:
    """The output must match the reference's output for the same inputs.

    Passes where ``|got - expected| <= atol + rtol * |expected|`` for every entry.
    ``explain`` is added to the message on failure (what this check is about);
    ``mistakes`` are tested against the student's array to name a known bug.
    """

    output: str
    what: str
    rtol: float = 1e-7
    atol: float = 1e-10
    explain: str = ""
    mistakes: tuple[Mistake, ...] = ()
    exact: bool = False  # e.g. "the input was not modified": any difference fails

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
    """

    output: str
    score: Callable[[Arrays, Mapping[str, np.ndarray]], float]
    threshold: float
    what: str
    reference: str = ""
    describe: Callable[[Arrays, Mapping[str, np.ndarray]], str] | None = None

    @property
    def needs_reference(self) -> bool:
        return False


Check = Close | GradCheck | Accuracy | Metric


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
    lab: str = ""  # the lab's name (set by Lab.case): where the measured timings are found

    def inputs_maker(self, variant: int | None) -> MakeInputs:
        """How the inputs of the public run (``variant`` None) or of hidden variant ``variant`` are made."""
        if variant is None or not self.hidden_inputs:
            return self.make_inputs
        return self.hidden_inputs[variant % len(self.hidden_inputs)]

    @property
    def needs_reference(self) -> bool:
        return any(c.needs_reference for c in self.checks)

    def public_inputs(self, inputs: Arrays) -> Arrays:
        """The inputs the implementation may see: all but the private ones."""
        return {k: v for k, v in inputs.items() if k not in self.private}

    def call(self, lab: ModuleType, inputs: Arrays) -> Mapping[str, Any]:
        """Runs the case against an implementation on a private copy of the inputs.

        ``run`` receives only the inputs its signature names (plus all of them if it takes
        ``**kwargs``), never the private ones, and the package through ``grader.guard``: every
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
             hidden_inputs: Sequence[MakeInputs] = ()) -> Callable[[RunFn], RunFn]:
        """Decorator registering ``run`` as a case named after the function.

        ``inputs`` makes the public inputs; ``hidden_inputs`` (optional) make those of the hidden
        variants, which should differ in shapes and hyperparameters, not only in random values.
        """

        def register(run: RunFn) -> RunFn:
            if any(c.name == run.__name__ for c in self.cases):
                raise ValueError(f"duplicate case name {run.__name__!r} in {self.name}")
            doc = (run.__doc__ or "").strip()
            self.cases.append(Case(
                name=run.__name__, points=points, description=doc.splitlines()[0] if doc else "",
                make_inputs=inputs, run=run, checks=tuple(checks), private=frozenset(private),
                seeds=tuple(seeds), hidden=hidden, timeout=timeout, slow=slow, factors=factors,
                hidden_inputs=tuple(hidden_inputs), lab=self.name,
            ))
            return run

        return register
