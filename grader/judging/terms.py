"""Explaining a wrong array in its formula's own terms (residual analysis).

A lab declares a formula once as a sum of terms (``case.Terms``), e.g. BatchNorm's

    dx = gamma/std * dy  -  gamma/std * mean_n(dy)  -  gamma/std * x_hat * mean_n(dy * x_hat)

When no known mistake matches a student's array, it is fitted as a combination of those terms,
``got ~ sum_k c_k * T_k`` (least squares), and the fit is believed only when it reproduces the
array within the check's own tolerance, with the terms linearly independent and more entries
than coefficients (two spare at least): a random error never fits, so whatever is said is what
the numbers show. Then every coefficient that is not 1 is a finding: 0 is a missing term, -1 a
term with the wrong sign, a named factor (N, ...) or any other number a wrong coefficient.
Further fits, in this order, each only when the previous ones fail:

* one term replaced by one of its declared variants (a mean over the wrong axis, ...);
* coefficients per group along ``group_axis`` (per feature or channel): the same factor on every
  term of a group is a wrong per-group prefactor;
* the transposed array (square outputs only; other shapes are caught by the shape check).

A fit whose coefficients are all equal says only "a constant factor", which compare.py's factor
hint already says in plainer words, so it is left to that hint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .case import Terms

_COEF = 1e-6  # a coefficient this close to 0, 1 or -1 is that value (exact structures fit to ~1e-12)
_CONDITION = 1e-8  # smallest / largest singular value of the terms: below it the fit is ambiguous
_MAX_GROUPS = 2  # groups listed one by one, the furthest from 1 first


def _fit(columns: Sequence[np.ndarray], target: np.ndarray, rtol: float, atol: float) -> np.ndarray | None:
    """The coefficients c with sum_k c_k * columns[k] == target within the tolerance, or None."""
    a = np.stack([np.ravel(c) for c in columns], axis=1)
    b = np.ravel(target)
    if a.shape[0] < a.shape[1] + 2 or not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    singular = np.linalg.svd(a, compute_uv=False)
    if singular[0] == 0 or singular[-1] < _CONDITION * singular[0]:
        return None
    coef = np.linalg.lstsq(a, b, rcond=None)[0]
    fitted = a @ coef
    bound = atol + rtol * np.abs(b)
    return coef if np.all(np.abs(fitted - b) <= bound) else None


def _word(c: float, factors: Mapping[str, float]) -> str | None:
    """What coefficient ``c`` (instead of 1) says about its term; None when it is 1."""
    if abs(c - 1.0) <= _COEF:
        return None
    if abs(c) <= _COEF:
        return "is missing"
    if abs(c + 1.0) <= _COEF:
        return "has the wrong sign"
    for name, value in factors.items():
        if value in (0, 1, -1):
            continue
        for sign, s in ((1.0, ""), (-1.0, "the wrong sign and ")):
            if np.isclose(c, sign * value, rtol=1e-6):
                return f"has {s}an extra factor {name}"
            if np.isclose(c, sign / value, rtol=1e-6):
                return f"has {s}a division by {name} that does not belong"
    return f"is multiplied by {c:.6g}"


def _clauses(names: Sequence[str], coef: np.ndarray, factors: Mapping[str, float]) -> list[str] | None:
    """One clause per term whose coefficient is not 1; None when all are equal (a constant factor)."""
    if len(coef) > 1 and np.allclose(coef, coef[0], rtol=0, atol=_COEF):
        return None
    out = []
    for name, c in zip(names, coef, strict=True):
        word = _word(float(c), factors)
        if word:
            out.append(f"{name}, which {word}")
    return out or None


def _sentence(output: str, clauses: Sequence[str], formula: str) -> str:
    return f"fitted term by term to {formula}: {output} is right except " + "; and except ".join(clauses)


def _group(arr: np.ndarray, axis: int, g: int) -> np.ndarray:
    return np.take(arr, g, axis=axis)


def _name_per_group(per: np.ndarray, quantities: Mapping[str, np.ndarray]) -> str:
    """' = 1/std ...' when the per-group factors equal a declared per-group quantity (or a power of it)."""
    for name, q in quantities.items():
        for power, says in ((1, f"an extra factor {name}"), (-1, f"a division by {name} too many"),
                            (2, f"an extra factor ({name})**2"), (-2, f"a division by ({name})**2 too many")):
            with np.errstate(all="ignore"):
                value = q ** power
            if np.all(np.isfinite(value)) and np.allclose(per, value, rtol=1e-6, atol=0):
                return f": {says}"
    return ""


def _per_group(got: np.ndarray, base: np.ndarray, terms: Terms, output: str, rtol: float, atol: float,
               factors: Mapping[str, float], quantities: Mapping[str, np.ndarray]) -> str | None:
    axis = terms.group_axis
    assert axis is not None
    if got.ndim <= axis or got.shape[axis] < 2:
        return None
    coefs = []
    for g in range(got.shape[axis]):
        c = _fit([_group(t, axis, g) for t in base], _group(got, axis, g), rtol, atol)
        if c is None:
            return None
        coefs.append(c)
    table = np.array(coefs).T  # (terms, groups)
    if np.allclose(table, table[:1], rtol=0, atol=_COEF):  # the same factor on every term of each group
        per = table[0]
        if np.allclose(per, per[0], rtol=0, atol=_COEF):
            return None  # a constant factor: the factor hint says it
        values = ", ".join(f"{v:.4g}" for v in per)
        return (f"fitted term by term to {terms.formula}, one {terms.group} at a time: every term is right up to a "
                f"factor that differs per {terms.group} ({values}): the common prefactor is wrong"
                + _name_per_group(per, quantities))
    shorts = [t.short or t.name for t in terms.terms]
    deviation = np.abs(table - 1.0).max(axis=0)
    off = sorted((g for g in range(table.shape[1]) if deviation[g] > _COEF), key=lambda g: -deviation[g])
    parts = []
    for g in off[:_MAX_GROUPS]:
        col = table[:, g]
        if np.allclose(col, col[0], rtol=0, atol=_COEF):
            parts.append(f"{terms.group} {g}: every term x{col[0]:.6g} (its prefactor)")
        else:
            parts.append(f"{terms.group} {g}: " + ", ".join(f"{n} x{c:.6g}" for n, c in zip(shorts, col, strict=True)
                                                              if abs(c - 1.0) > _COEF))
    more = f"; {len(off) - _MAX_GROUPS} more, closer to 1" if len(off) > _MAX_GROUPS else ""
    return (f"fitted term by term to {terms.formula}, one {terms.group} at a time: {output} is right except in "
            f"{len(off)} of {table.shape[1]} {terms.group}s, where terms are multiplied (the largest first): "
            + "; ".join(parts) + more)


def explain(got: np.ndarray, ref: np.ndarray, stack: np.ndarray, terms: Terms, output: str, *,
            rtol: float, atol: float, factors: Mapping[str, float]) -> str | None:
    """A sentence naming what is wrong with ``got`` in the terms of ``terms``' formula, or None."""
    k = len(terms.terms)
    if stack.shape[1:] != got.shape or got.shape != ref.shape or got.size == 0:
        return None
    got64, ref64 = got.astype(np.float64), ref.astype(np.float64)
    base = list(stack[:k])
    # The declaration must describe this expected value, or nothing it says can be trusted.
    if not np.all(np.abs(sum(base) - ref64) <= 1e-9 + 1e-7 * np.abs(ref64)):
        return None
    names = [t.name for t in terms.terms]
    coef = _fit(base, got64, rtol, atol)
    if coef is not None:
        clauses = _clauses(names, coef, factors)
        return _sentence(output, clauses, terms.formula) if clauses else None
    position = k
    for j, term in enumerate(terms.terms):
        for variant in term.variants:
            columns = [*base[:j], stack[position], *base[j + 1:]]
            position += 1
            coef = _fit(columns, got64, rtol, atol)
            if coef is None or abs(coef[j]) <= _COEF:  # the variant must be there to be named
                continue
            word = _word(float(coef[j]), factors)
            head = f"{term.name}, which is {variant}" + (f" and {word}" if word else "")
            rest = [f"{n}, which {w}" for i, (n, c) in enumerate(zip(names, coef, strict=True))
                    if i != j and (w := _word(float(c), factors))]
            return _sentence(output, [head, *rest], terms.formula)
    if terms.group_axis is not None:
        axis = terms.group_axis
        quantities = {name: np.array([float(np.mean(_group(q, axis, g))) for g in range(got.shape[axis])])
                      for name, q in zip(terms.group_factors, stack[len(stack) - len(terms.group_factors):],
                                         strict=True)} if got.ndim > axis else {}
        found = _per_group(got64, np.array(base), terms, output, rtol, atol, factors, quantities)
        if found:
            return found
    if got.ndim == 2 and got.shape[0] == got.shape[1] and not np.allclose(ref64, ref64.T):
        coef = _fit(base, got64.T, rtol, atol)
        if coef is not None:
            clauses = _clauses(names, coef, factors) or []
            return (f"{output} is the TRANSPOSE of the right array" if not clauses
                    else _sentence(f"{output} transposed", clauses, terms.formula) + f" ({output} is transposed)")
    return None
