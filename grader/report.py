"""Results as Gradescope's results.json, as a score table, and as a gradebook CSV."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runner import LabResult


def to_gradescope(result: LabResult) -> dict[str, Any]:
    """Gradescope's autograder results shape: score, max_score, execution_time, tests[...]."""
    return {
        "score": result.score,
        "max_score": result.max_score,
        "execution_time": round(result.seconds, 3),
        "output": f"{result.title}: {result.score:g}/{result.max_score:g} "
                  f"(implementation: {result.impl}; isolation: {result.isolation})"
                  + "".join(f"\nnote: {n}" for n in result.notes)
                  + (f"\n\nYOUR PACKAGE COULD NOT BE IMPORTED, so every case scores 0:\n{result.import_error}"
                     if result.import_error else ""),
        "visibility": "visible",
        "tests": [{"name": c.name, "score": c.score, "max_score": c.max_score, "status": c.status,
                   "output": c.output, "execution_time": round(c.seconds, 3)} for c in result.cases],
    }


def write_json(result: LabResult, path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(to_gradescope(result), indent=2) + "\n")


def table(result: LabResult, *, details: bool = True) -> str:
    """A score table, then (with ``details``) the message of every failed case."""
    width = max([len(c.name) for c in result.cases] + [4])
    lines = [f"{result.title} -- {result.impl} [{result.isolation}]"]
    if result.import_error:  # once, on top: every case below fails because of it
        lines += ["", "YOUR PACKAGE COULD NOT BE IMPORTED, so every case scores 0:", result.import_error, ""]
    lines += [f"  {'case':<{width}}  {'points':>11}  status   time"]
    for c in result.cases:
        lines.append(f"  {c.name:<{width}}  {c.score:>5g} / {c.max_score:<3g}  "
                     f"{'ok' if c.passed else 'FAIL':<6} {c.seconds:6.2f}s")
    lines.append(f"  {'total':<{width}}  {result.score:>5g} / {result.max_score:<3g}"
                 f"           {result.seconds:6.2f}s")
    lines += [f"  note: {n}" for n in result.notes]
    if details:
        for c in result.cases:
            if not c.passed:
                lines.append("")
                lines.append(c.output)
    return "\n".join(lines)


def write_gradebook(rows: Sequence[tuple[str, LabResult]], path: Path) -> None:
    """One row per submission: its name, total, and each case's score."""
    if not rows:
        return
    case_names = [c.name for c in rows[0][1].cases]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["submission", "score", "max_score", *case_names])
        for name, r in rows:
            by_case = {c.name: c.score for c in r.cases}
            w.writerow([name, f"{r.score:g}", f"{r.max_score:g}", *(f"{by_case.get(n, 0):g}" for n in case_names)])
