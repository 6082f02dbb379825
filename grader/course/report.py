"""Results as Gradescope's results.json, a score table, a student's feedback Markdown, and a
class summary (Markdown table and a self-contained HTML page). The gradebook is grader.course.gradebook."""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grader.runner import LabResult

from .gradebook import atomic_write_text


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
    atomic_write_text(Path(path), json.dumps(to_gradescope(result), indent=2) + "\n")


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


def feedback_markdown(result: LabResult, sub_id: str) -> str:
    """A file to send to the student: the score table, then each failed case's message."""
    lines = [f"# {result.title}: {sub_id}", "",
             f"**Score: {result.score:g} / {result.max_score:g}**", "",
             "| case | points | status |", "| --- | ---: | --- |"]
    lines += [f"| `{c.name}` | {c.score:g} / {c.max_score:g} | {'passed' if c.passed else 'FAILED'} |"
              for c in result.cases]
    lines += [""] + [f"> note: {n}" for n in result.notes]
    if result.import_error:  # once, on top: every case failed because of it
        lines += ["", "## Your package could not be imported, so every case scores 0", "", "```",
                  result.import_error.replace("```", "` ` `"), "```"]
    failed = [c for c in result.cases if not c.passed]
    if failed:
        lines += ["", "## What went wrong", ""]
        for c in failed:
            body = c.output.replace("```", "` ` `")  # a fence in a message must not end ours
            lines += [f"### `{c.name}` ({c.score:g} / {c.max_score:g})", "", "```", body, "```", ""]
    else:
        lines += ["", "Every case passed."]
    lines += ["", f"_Graded in: {result.isolation}._", ""]
    return "\n".join(lines)


def write_submission(result: LabResult, folder: Path, sub_id: str) -> None:
    """``results.json`` (Gradescope's format) and ``feedback.md`` in the submission's own folder."""
    atomic_write_text(Path(folder) / "results.json", json.dumps(to_gradescope(result), indent=2) + "\n")
    atomic_write_text(Path(folder) / "feedback.md", feedback_markdown(result, sub_id))


def class_summary(rows: Sequence[Any], case_points: dict[str, float]) -> dict[str, Any]:
    """Score distribution (10 bins of the percentage) and each case's pass rate, over gradebook rows
    (``grader.course.gradebook.Row``); ``case_points`` maps each case to its full points."""
    graded = [r for r in rows if r.max_score > 0]
    pct = [100.0 * r.score / r.max_score for r in graded]
    bins = [0] * 10
    for p in pct:
        bins[min(int(p // 10), 9)] += 1
    rates = {}
    for n, full in case_points.items():
        have = [r for r in graded if n in r.cases]
        rates[n] = sum(1 for r in have if r.cases[n] >= full) / len(have) if have else float("nan")
    mean = statistics.mean(pct) if pct else float("nan")
    median = statistics.median(pct) if pct else float("nan")
    return {"n": len(rows), "mean_percent": mean, "median_percent": median, "bins": bins, "pass_rate": rates,
            "ungradable": sum(1 for r in rows if r.reason)}


def summary_markdown(summary: dict[str, Any], title: str) -> str:
    lines = [f"# {title}: class summary", "",
             f"{summary['n']} submissions; mean {summary['mean_percent']:.1f}%, median "
             f"{summary['median_percent']:.1f}%; {summary['ungradable']} could not be graded.", "",
             "| score (%) | submissions |", "| --- | ---: |"]
    for i, count in enumerate(summary["bins"]):
        lines.append(f"| {10 * i}-{100 if i == 9 else 10 * i + 10} | {count} |")
    lines += ["", "| case | pass rate |", "| --- | ---: |"]
    lines += [f"| `{n}` | {r:.0%} |" for n, r in summary["pass_rate"].items()]
    return "\n".join(lines) + "\n"


def _bars_svg(labels: Sequence[str], values: Sequence[float], vmax: float, *, width: int = 640) -> str:
    """Horizontal bars as inline SVG: no plotting library, no external files."""
    row, label_w = 22, 230
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(labels) + 10}" '
             'font-family="sans-serif" font-size="12">']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        w = 0.0 if vmax <= 0 or v != v else (width - label_w - 60) * v / vmax
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{html.escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="#4a78b5"/>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{v:g}</text>')
    return "".join(parts) + "</svg>"


def summary_html(summary: dict[str, Any], title: str) -> str:
    """A self-contained page: the score distribution and each case's pass rate as bar charts."""
    bins = [f"{10 * i}-{100 if i == 9 else 10 * i + 10}%" for i in range(10)]
    rates = summary["pass_rate"]
    t = html.escape(title)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{t}</title></head><body>"
            f"<h1>{t}: class summary</h1>"
            f"<p>{summary['n']} submissions; mean {summary['mean_percent']:.1f}%, median "
            f"{summary['median_percent']:.1f}%; {summary['ungradable']} could not be graded.</p>"
            f"<h2>Score distribution (submissions per bin)</h2>{_bars_svg(bins, summary['bins'], max(summary['bins']))}"
            "<h2>Pass rate per case (%)</h2>"
            f"{_bars_svg(list(rates), [round(100 * r, 1) for r in rates.values()], 100)}</body></html>\n")
