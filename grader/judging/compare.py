"""Judging returned arrays, with messages a stuck student can act on.

Every failure message says which check failed, how large the error is and where, shows
expected and got around that index, and adds hints when the error has a recognisable shape:
transposed, off by a constant factor (the batch size N, -1, 2, ...), all zeros, equal to
another array of the case (the wrong variable returned), float32, or a known mistake the case
names; where NaN/inf appear first and what the inputs are there. An output whose rows are ordered in
time (``Close.rows``: a trajectory, a schedule) also says, once, which row is the first that differs.

A hint must discriminate: a known mistake is named only when its prediction differs from the
expected value by more than the check's own tolerance and the student's array equals the
prediction within that same tolerance; when no single mistake matches, pairs of mistakes are
tried (their errors added), then the formula's declared terms (grader/judging/terms.py). A cause
is stated only where the numbers show it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .case import (
    Accuracy,
    Arrays,
    Case,
    Check,
    Close,
    GradCheck,
    Metric,
    MetricPackage,
    Mistake,
    Terms,
    split_predictions,
)
from .terms import explain as explain_terms

_MAX_LIST = 8  # indices listed in "differences only in rows ..."


@dataclass(frozen=True)
class Mismatch:
    """Where and how much ``got`` differs from ``ref`` (arrays of the same shape)."""

    n_bad: int
    size: int
    index: tuple[int, ...]
    abs_err: float
    rel_err: float
    n_nonfinite: int


def find_mismatch(got: np.ndarray, ref: np.ndarray, rtol: float, atol: float,
                  exact: bool = False) -> Mismatch | None:
    """None if ``|got - ref| <= atol + rtol*|ref|`` everywhere (or equal, when ``exact``).

    NaN or inf in ``got`` where ``ref`` is finite always counts as a difference.
    """
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got64 - ref64)
        # Where the reference is inf, the tolerance would be inf too: demand the same inf instead.
        bound = np.zeros_like(ref64) if exact else np.where(np.isinf(ref64), 0.0, atol + rtol * np.abs(ref64))
        bad = ~(diff <= bound)  # catches NaN
        same_inf = np.isinf(got64) & (got64 == ref64)
        bad &= ~same_inf
    if not bad.any():
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(bad, np.nan_to_num(diff / np.maximum(bound, 1e-300), nan=np.inf), -1.0)
    flat = int(np.argmax(score))
    index = tuple(int(i) for i in np.unravel_index(flat, got.shape)) if got.ndim else ()
    abs_err = float(diff.reshape(-1)[flat]) if diff.size else 0.0
    ref_at = abs(float(ref64.reshape(-1)[flat])) if ref64.size else 0.0
    rel_err = abs_err / ref_at if ref_at > 0 else float("inf")
    return Mismatch(int(bad.sum()), int(bad.size), index, abs_err, rel_err,
                    int((~np.isfinite(got64)).sum()))


def _fmt_index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, index)) + ")" if index else "()"


def _window(arr: np.ndarray, index: tuple[int, ...], width: int = 3) -> tuple[str, str]:
    """The slice along the last axis around ``index``: (label like '[2, 0:5]', values)."""
    if arr.ndim == 0:
        return "", np.array2string(arr, precision=6)
    j = index[-1]
    lo, hi = max(0, j - width), min(arr.shape[-1], j + width + 1)
    label = "[" + ", ".join([*map(str, index[:-1]), f"{lo}:{hi}"]) + "]"
    values = np.array2string(arr[index[:-1]][lo:hi], precision=6, suppress_small=False,
                             max_line_width=200, floatmode="maxprec")
    return label, values


def _factor_hint(got: np.ndarray, ref: np.ndarray, factors: Mapping[str, float],
                 ref_label: str = "expected") -> str | None:
    """'got = expected x c' when got is a constant multiple of ref, naming c if we can."""
    g, r = got.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    rr = float(r @ r)
    if rr == 0 or not np.all(np.isfinite(g)):
        return None
    c = float(g @ r) / rr
    if abs(c - 1.0) < 1e-6 or np.linalg.norm(g - c * r) > 1e-6 * max(np.linalg.norm(g), 1e-300):
        return None
    text = f"got = {ref_label} x {c:.6g}" + ("" if got.size == 1 else " everywhere")
    for name, value in factors.items():
        if value not in (0, 1, -1) and np.isclose(c, value, rtol=1e-6):
            return f"{text} (= {name}): an extra factor of {name}, or a missing division by it"
        if value not in (0, 1, -1) and np.isclose(c, 1.0 / value, rtol=1e-6):
            return f"{text} (= 1/{name}): divided by {name} where no division belongs (or twice)"
    if np.isclose(c, -1.0, rtol=1e-6):
        return f"{text}: the sign is flipped"
    if c == 0 or abs(c) < 1e-12 or got.size == 1:  # any two scalars are multiples: say nothing
        return None
    return f"{text}: off by a constant factor"


@dataclass(frozen=True)
class Tolerance:
    """A check's own tolerance, which also decides whether a known mistake's prediction applies."""

    rtol: float
    atol: float

    def same(self, a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and find_mismatch(a, b, self.rtol, self.atol) is None


# An exact check (e.g. "y must equal x") still matches a mistake's prediction within this: the
# prediction may compute the same wrong value in another order of operations.
_EXACT_MATCH = Tolerance(1e-7, 1e-10)


def _predictions(got: np.ndarray, ref: np.ndarray, mistakes: tuple[Mistake, ...], inputs: Arrays,
                 expected: Arrays, outputs: Mapping[str, object], stored: Mapping[str, np.ndarray] | None,
                 tol: Tolerance) -> list[tuple[Mistake, np.ndarray]]:
    """The mistakes whose prediction can be told from the right answer here: a numeric array of
    ``got``'s shape that differs from the expected ``ref`` by more than the check's tolerance (a
    mistake that makes no difference on these inputs, e.g. a weight-decay term with decay 0, can
    never be what went wrong)."""
    usable = []
    for m in mistakes:
        try:
            with np.errstate(all="ignore"):
                predicted = m.prediction(inputs, expected, outputs, stored)
        except Exception:  # noqa: BLE001 - a hint must never break grading
            continue
        if predicted is None or predicted.shape != got.shape or predicted.dtype.kind not in "biuf":
            continue
        if tol.same(predicted, ref):
            continue
        usable.append((m, predicted.astype(np.float64)))
    return usable


def _mistake_hints(got: np.ndarray, ref: np.ndarray, mistakes: tuple[Mistake, ...], inputs: Arrays,
                   expected: Arrays, outputs: Mapping[str, object], stored: Mapping[str, np.ndarray] | None = None,
                   tol: Tolerance = _EXACT_MATCH) -> list[str]:
    """'matches a known mistake: ...' for every prediction the student's array equals within the
    check's own tolerance (``stored``: the instructor predictions by key, from the fixtures or
    computed live); predictions equal to the right answer are never offered.

    When no single mistake matches, pairs are tried: two mistakes in different parts of a formula
    add their errors (prediction_a - expected) + (prediction_b - expected), which is exact whenever
    the two parts enter the result linearly (e.g. two swapped factors on two paths of a backward).
    An array equal to that sum within the tolerance is evidence of both mistakes at once.
    """
    usable = _predictions(got, ref, mistakes, inputs, expected, outputs, stored, tol)
    hints = [f"matches a known mistake: {m.description}" for m, p in usable if tol.same(got, p)]
    if hints or ref.shape != got.shape:
        return hints
    ref64 = ref.astype(np.float64)
    for a in range(len(usable)):
        for b in range(a + 1, len(usable)):
            (ma, pa), (mb, pb) = usable[a], usable[b]
            if ma.description == mb.description:
                continue
            with np.errstate(all="ignore"):
                both = pa + pb - ref64
            if not (tol.same(both, pa) or tol.same(both, pb) or tol.same(both, ref64)) and tol.same(got, both):
                hints.append(f"matches two known mistakes at once: {ma.description}; AND {mb.description}")
    return hints if len(hints) <= 1 else []  # two different pairs fit: no evidence for either


def nonfinite_hint(got: np.ndarray, ref: np.ndarray, inputs: Arrays, own_name: str,
                   outputs: Mapping[str, object] | None = None) -> str:
    """Where NaN/inf first appear and what the inputs are there; a cause only with evidence.

    "First" is in index order, which for an output laid out step by step (a trajectory, an
    accumulation over batches) is the earliest step. The inputs of the same shape are shown at
    that index; the only cause named is one the values prove: an input beyond exp()'s float64
    range (|x| > 709.78) where the output went non-finite. Other outputs of the case that are
    non-finite too are listed in the order the case returned them.
    """
    got64 = got.astype(np.float64)
    bad = ~np.isfinite(got64)
    n_nan, n_inf = int(np.isnan(got64).sum()), int(np.isinf(got64).sum())
    index = tuple(int(i) for i in np.argwhere(bad)[0]) if got.ndim else ()
    where = f"'{own_name}'{list(index) if index else ''}"
    kinds = " and ".join(f"{k} {word}" for k, word in ((n_nan, "NaN"), (n_inf, "inf")) if k)
    text = f"{kinds} entries; the first (in index order) is {where} = {got64[index]}"
    if ref.shape == got.shape:
        text += f" where {float(ref.astype(np.float64)[index]):.6g} is expected"
    there = {k: float(np.asarray(v)[index]) for k, v in inputs.items()
             if np.shape(v) == got.shape and np.asarray(v).dtype.kind in "biuf" and got.ndim}
    if there:
        text += "; the inputs there: " + ", ".join(f"{k} = {v:.6g}" for k, v in there.items())
    overflow = [k for k, v in there.items() if abs(v) > 709.78]
    if overflow:
        text += (f" ({overflow[0]} is beyond exp()'s float64 range there: exp(x) or exp(-x) overflows for "
                 "|x| > 709.78; shift by the max, or use a form that never exponentiates a large positive number)")
    others = []
    for name, value in (outputs or {}).items():
        if name == own_name:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.size and not np.all(np.isfinite(arr)):
            others.append(f"'{name}'")
    if others:
        text += f"; also non-finite: {', '.join(others)}"
    return text


def _terms_hint(got: np.ndarray, ref: np.ndarray, terms: Terms, *, inputs: Arrays, expected: Arrays,
                stored: Mapping[str, np.ndarray] | None, own_name: str, tol: Tolerance,
                factors: Mapping[str, float]) -> str | None:
    """The error in the formula's own terms (grader/judging/terms.py), or None."""
    try:
        with np.errstate(all="ignore"):
            stack = terms.stack(inputs, expected, stored)
            if stack is None:
                return None
            return explain_terms(got, ref, stack, terms, own_name, rtol=tol.rtol, atol=tol.atol, factors=factors)
    except Exception:  # noqa: BLE001 - a hint must never break grading
        return None


def _hints(got: np.ndarray, ref: np.ndarray, mismatch: Mismatch | None, *, inputs: Arrays,
           expected: Arrays, own_name: str, mistakes: tuple[Mistake, ...],
           factors: Mapping[str, float], ref_label: str, outputs: Mapping[str, object],
           stored: Mapping[str, np.ndarray] | None = None, tol: Tolerance = _EXACT_MATCH,
           terms: Terms | None = None) -> list[str]:
    hints: list[str] = _mistake_hints(got, ref, mistakes, inputs, expected, outputs, stored, tol)
    if got.dtype.kind in "iub" and ref.dtype.kind == "f":
        hints.append(f"got an integer/boolean array ({got.dtype}) where real numbers are expected")
    if mismatch and mismatch.n_nonfinite:
        hints.append(nonfinite_hint(got, ref, inputs, own_name, outputs))
    if got.size and not np.any(got) and np.any(ref):
        hints.append("got is all zeros")
    if not hints and terms is not None and mismatch:
        found = _terms_hint(got, ref, terms, inputs=inputs, expected=expected, stored=stored, own_name=own_name,
                            tol=tol, factors=factors)
        if found:
            hints.append(found)
    if hints:  # a named mistake says more than the generic hints below
        return hints
    named = {**{f"the expected '{k}'": v for k, v in expected.items() if k != own_name},
             **{f"the input '{k}'": v for k, v in inputs.items()}}
    for label, arr in named.items():
        arr = np.asarray(arr)
        if arr.shape == got.shape and arr.dtype.kind == "f" and np.any(arr) \
                and find_mismatch(got, arr, 1e-9, 1e-12) is None:
            hints.append(f"got equals {label}: is the wrong variable returned?")
    if mismatch and not mismatch.n_nonfinite:
        factor = _factor_hint(got, ref, factors, ref_label)
        if factor:
            hints.append(factor)
    if got.ndim == 2 and mismatch and 0 < mismatch.n_bad < got.size:
        bad = ~np.isclose(got.astype(np.float64), ref.astype(np.float64), rtol=1e-7, atol=1e-10)
        for axis, word in ((1, "rows"), (0, "columns")):
            lines = np.flatnonzero(bad.any(axis=axis))
            if 0 < len(lines) < bad.shape[1 - axis] and len(lines) <= _MAX_LIST:
                hints.append(f"the differences are only in {word} {lines.tolist()}")
                break
    return hints


def _shape_problem(got: np.ndarray, ref: np.ndarray) -> str | None:
    if got.shape == ref.shape:
        return None
    text = f"shape: expected {ref.shape}, got {got.shape}"
    if got.ndim == 2 and got.shape == ref.shape[::-1]:
        if find_mismatch(got.T, ref, 1e-7, 1e-10) is None:
            return text + ": your array is the transpose of the expected one"
        return text + ": looks transposed (check which axis is the batch, and the weight layout)"
    if got.size == ref.size:
        return text + ": same number of entries in a different shape (a reshape or a missing keepdims?)"
    if got.size == 1 or ref.size == 1:
        return text + ": a scalar where an array is expected, or the other way round"
    return text


def first_row(got: np.ndarray, ref: np.ndarray, rtol: float, atol: float, exact: bool = False) -> int | None:
    """The first index along axis 0 where ``got`` differs from ``ref`` (as ``find_mismatch`` judges), or None."""
    if got.ndim == 0 or got.shape != ref.shape or not len(got):
        return None
    for t in range(len(got)):
        if find_mismatch(got[t:t + 1], ref[t:t + 1], rtol, atol, exact) is not None:
            return t
    return None


def _where_rows(rows: str, t: int) -> str:
    """The one location phrase of an output whose rows are ordered in time (``Close.rows``)."""
    if t == 0:
        return f"the first {rows} that differs is 0: the very first"
    return f"the first {rows} that differs is {t}; every {rows} before it matches"


def _compare(got: np.ndarray, ref: np.ndarray, *, rtol: float, atol: float, exact: bool,
             header: str, ref_label: str, inputs: Arrays, expected: Arrays, own_name: str,
             mistakes: tuple[Mistake, ...], factors: Mapping[str, float],
             outputs: Mapping[str, object] | None = None,
             stored: Mapping[str, np.ndarray] | None = None, terms: Terms | None = None,
             rows: str | None = None) -> str | None:
    outputs = outputs if outputs is not None else {}
    shape = _shape_problem(got, ref)
    if shape:
        named = _mistake_hints(got, ref, mistakes, inputs, expected, outputs, stored,
                               _EXACT_MATCH if exact else Tolerance(rtol, atol))
        return f"{header}\n  {shape}" + "".join(f"\n  hint: {h}" for h in named)
    if ref.dtype == np.float64 and got.dtype.kind == "f" and got.dtype.itemsize < 8:
        # A convention, not a tolerance question: float32 often lands within rtol by luck.
        return (f"{header}\n  dtype: expected float64, got {got.dtype}: the labs compute in float64 "
                f"({got.dtype} keeps only ~{np.finfo(got.dtype).precision} significant digits, and "
                "gradient checks need more); look for an astype or a float32 array")
    mismatch = find_mismatch(got, ref, rtol, atol, exact)
    if mismatch is None:
        return None
    tol = "exact equality" if exact else f"|got - {ref_label}| <= {atol:g} + {rtol:g} * |{ref_label}|"
    at = _fmt_index(mismatch.index)
    got_at = got.astype(np.float64).reshape(-1)[np.ravel_multi_index(mismatch.index, got.shape)] if got.ndim \
        else float(got)
    where = (f"got {got_at} there" if not np.isfinite(got_at)
             else f"abs {mismatch.abs_err:.3g}, relative {mismatch.rel_err:.3g}")
    first = first_row(got, ref, rtol, atol, exact) if rows else None
    # On the location line itself: it says where, not what (one phrase, not a hint per row).
    located = f" ({_where_rows(rows, first)})" if rows and first is not None else ""
    lines = [header,
             f"  {mismatch.n_bad} of {mismatch.size} entries differ{located}; the largest error is at index {at}: "
             f"{where} (tolerance: {tol})"]
    label, ref_vals = _window(ref, mismatch.index)
    _, got_vals = _window(got, mismatch.index)
    width = max(len(ref_label), 3)
    lines.append(f"  {ref_label:<{width}}{label} = {ref_vals}")
    lines.append(f"  {'got':<{width}}{label} = {got_vals}")
    lines += [f"  hint: {h}" for h in _hints(got, ref, mismatch, inputs=inputs, expected=expected,
                                             own_name=own_name, mistakes=mistakes, factors=factors,
                                             ref_label=ref_label, outputs=outputs, stored=stored,
                                             tol=_EXACT_MATCH if exact else Tolerance(rtol, atol), terms=terms)]
    return "\n".join(lines)


@dataclass(frozen=True)
class Invalid:
    """An output that was not a numeric array; ``description`` says what it was."""

    description: str


def describe_non_numeric(value: object) -> str | None:
    """None if ``value`` converts to a numeric ndarray, else what it is (for the message)."""
    if isinstance(value, Invalid):
        return value.description
    if value is None:
        return "None (did the function forget to return?)"
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything unconvertible is described, not raised
        return f"a {type(value).__name__} that is not an array ({exc})"
    if arr.dtype.kind not in "biuf":
        return f"a {type(value).__name__} of dtype {arr.dtype}, not numbers"
    return None


def _as_numeric(value: object) -> np.ndarray | str:
    """The value as a numeric ndarray, or a description of why it is not one."""
    problem = describe_non_numeric(value)
    return problem if problem else np.asarray(value)


def check_one(check: Check, got: Mapping[str, object], *, inputs: Arrays, expected: Arrays,
              factors: Mapping[str, float], metric_package: MetricPackage | None = None) -> str | None:
    """The failure message of one check, or None when it passes.

    ``metric_package`` scores ``Metric(scored_by=...)`` checks (see ``Metric``).

    ``expected`` may carry instructor predictions (``case.MISTAKE_PREFIX`` keys): they name
    mistakes only, and are never compared or offered as "the expected 'k'".
    """
    expected, stored = split_predictions(expected)
    value = _as_numeric(got.get(check.output)) if check.output in got else "nothing: no such output"
    if isinstance(value, str):
        return f"{check.what}: expected an array, got {value}"
    if isinstance(check, Close):
        ref = np.asarray(expected[check.output])
        msg = _compare(value, ref, rtol=check.rtol, atol=check.atol, exact=check.exact,
                       header=f"{check.what}: does not match the reference", ref_label="expected",
                       inputs=inputs, expected=expected, own_name=check.output,
                       mistakes=check.mistakes, factors=factors, outputs=got, stored=stored, terms=check.terms,
                       rows=check.rows)
        return f"{msg}\n  {check.explain}" if msg and check.explain else msg
    if isinstance(check, GradCheck):
        numeric = _as_numeric(got.get(check.numeric))
        if isinstance(numeric, str):
            return f"{check.what}: the numerical gradient could not be computed: got {numeric}"
        return _compare(value, numeric, rtol=check.rtol, atol=check.atol, exact=False,
                        header=(f"{check.what}: your backward disagrees with the numerical gradient of "
                                "your own forward (central differences, h=1e-6, float64, random "
                                "upstream gradient)"),
                        ref_label="numeric", inputs=inputs, expected={check.analytic: numeric},
                        own_name=check.analytic, mistakes=check.mistakes, factors=factors, outputs=got)
    if isinstance(check, Accuracy):
        return _accuracy(check, value, np.asarray(inputs[check.labels]))
    if isinstance(check, Metric):
        return _metric(check, got, inputs, metric_package)
    raise TypeError(f"unknown check {check!r}")


def _metric(check: Metric, got: Mapping[str, object], inputs: Arrays,
            package: MetricPackage | None = None) -> str | None:
    arrays = {k: v for k, v in ((k, _as_numeric(v)) for k, v in got.items()) if not isinstance(v, str)}
    first: tuple[object, ...] = ()
    note = ""
    if check.scored_by:
        if package is None:  # the grader's configuration, never the student's code
            return (f"{check.what}: not scored: grader set-up error: this check is scored with the lab's "
                    f"{check.scored_by}, and the grading process was given no package to score with (the "
                    "reference in solutions/ is needed); this is not a problem in your code")
        first, note = (package.module,), package.note(check)
    try:
        value = float(check.score(*first, inputs, arrays))
        detail = check.describe(*first, inputs, arrays) if check.describe and value < check.threshold else ""
    except Exception as exc:  # noqa: BLE001 - malformed outputs fail this check, never the grader
        how = f" (with your own {check.scored_by}: it may be the problem)" if note else ""
        return f"{check.what}: your outputs could not be scored{how}: {type(exc).__name__}: {exc}"
    if value >= check.threshold:
        return None
    text = f"{check.what}: {value:.4f} is below the threshold {check.threshold:.4f}"
    text += f" ({note})" if note else ""
    text += f"\n  {detail}" if detail else ""
    return text + (f"\n  {check.reference}" if check.reference else "")


def _accuracy(check: Accuracy, pred: np.ndarray, labels: np.ndarray) -> str | None:
    if pred.shape != labels.shape:
        return f"{check.what}: expected predictions of shape {labels.shape}, got {pred.shape}"
    if pred.dtype.kind in "fc" and not np.all(np.isfinite(pred)):  # would crash int(); it scores this case 0
        bad = int(np.sum(~np.isfinite(pred)))
        first = int(np.flatnonzero(~np.isfinite(pred.reshape(-1)))[0])
        return (f"{check.what}: {bad} of {pred.size} predictions are NaN or inf (the first: prediction {first}); "
                "predictions must be class indices 0-9, and a non-finite one means the model's output is "
                "NaN or inf there: print the training loss in fit_mnist to see where it stops being finite "
                "(the handout's MNIST checklist)")
    acc = float(np.mean(pred == labels))
    if acc >= check.threshold:
        return None
    text = (f"{check.what}: accuracy {acc:.4f} on {len(labels)} held-out digits is below the "
            f"threshold {check.threshold:.4f}")
    if check.reference:
        text += f"\n  {check.reference}"
    n_classes = int(labels.max()) + 1
    if acc <= 1.5 / n_classes:
        text += ("\n  hint: this is chance level: the model did not learn anything (the handout's "
                 "MNIST section has a checklist for this)")
    if len(np.unique(pred)) == 1:
        only = int(pred.reshape(-1)[0])
        text += f"\n  hint: every prediction is class {only}"
        if only == 0:  # argmax of a row of NaNs is 0: evidence of a diverged training
            text += (", which is also what argmax gives for NaN logits: check whether the training loss "
                     "became NaN (print it in fit_mnist)")
    return text


def _which_side(check: GradCheck, got: Mapping[str, object], expected: Arrays) -> str:
    """When backward disagrees both with the numerical gradient of the student's forward and with the
    reference's gradient: is the forward right? The numerical gradient of the student's forward equals
    the reference's gradient (within the gradient check's tolerance) exactly when, around these inputs,
    the forward computes the reference's function; then the error is in backward alone. Otherwise the
    forward differs too, and it is the one to fix first."""
    numeric = got.get(check.numeric)
    reference = split_predictions(expected)[0].get(check.analytic)
    if isinstance(numeric, str) or numeric is None or reference is None:
        return ""
    numeric, reference = np.asarray(numeric), np.asarray(reference)
    if numeric.dtype.kind not in "biuf" or numeric.shape != reference.shape or not np.all(np.isfinite(numeric)):
        return ""
    if find_mismatch(numeric, reference, check.rtol, check.atol) is None:
        return ("\n  note: the numerical gradient of your forward equals the reference's gradient, so your forward "
                "is right here: the error is in backward")
    return ("\n  note: the numerical gradient of your forward differs from the reference's gradient too, so your "
            "FORWARD differs from the reference as well (see the forward's case): fix it first, then check backward")


def evaluate(case: Case, inputs: Arrays, got: Mapping[str, object], expected: Arrays,
             metric_package: MetricPackage | None = None) -> list[str]:
    """Failure messages of every check of ``case`` (empty when the case passes).

    ``metric_package`` scores the case's ``Metric(scored_by=...)`` checks: without one they fail
    as a grader set-up error.

    A GradCheck and a Close on the same gradient together say which side is wrong: backward
    equal to the reference's but not to the numerical gradient of the student's forward means
    the FORWARD is wrong (backward is not blamed, and its factor hints are dropped); the other
    way round, backward consistent with a forward that differs from the reference.
    """
    factors = case.factors(inputs) if case.factors else {}
    results = [(check, check_one(check, got, inputs=inputs, expected=expected, factors=factors,
                                 metric_package=metric_package))
               for check in case.checks]
    closes = {c.output: msg for c, msg in results if isinstance(c, Close)}
    grads = {c.analytic: msg for c, msg in results if isinstance(c, GradCheck)}
    messages = []
    for check, msg in results:
        if not msg:
            continue
        if isinstance(check, GradCheck) and closes.get(check.analytic):
            msg += _which_side(check, got, expected)
        if isinstance(check, GradCheck) and check.analytic in closes and closes[check.analytic] is None:
            lines = [line for line in msg.splitlines() if not line.startswith("  hint:")]
            lines[0] = (f"{check.what}: your backward equals the reference's, but not the numerical gradient "
                        "of your forward: your FORWARD computes something else (see its check); backward is "
                        "not the problem")
            msg = "\n".join(lines)
        elif isinstance(check, Close) and check.output in grads and grads[check.output] is None:
            msg += ("\n  note: your backward agrees with the numerical gradient of your own forward, so the "
                    "forward (or a convention) differs from the reference, and backward follows it")
        messages.append(msg)
    return messages
