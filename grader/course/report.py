"""Results as Gradescope's results.json, a score table, a student's feedback Markdown, and the
instructor's view of a class (``summary.md`` and a self-contained ``summary.html``): the most common
named mistakes and who made them, a table of students with links to their feedback, per-section
figures, each case's pass rate and the points lost on it, identical submissions. The gradebook is
grader.course.gradebook."""

from __future__ import annotations

import html
import json
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

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


_STAGE_PATH = re.compile(r"""[^\s'"]*gradelab-stage-[^/\s'"]*/(?:submission/)?""")


def _no_stage_paths(text: str) -> str:
    """Removes the grader's temporary stage folders from a message: the student never saw them, and
    they no longer exist when the feedback is read (``/tmp/gradelab-stage-123-x/submission/lab1/a.py``
    -> ``lab1/a.py``)."""
    return _STAGE_PATH.sub("", text)


def feedback_markdown(result: LabResult, sub_id: str) -> str:
    """A file to send to the student: the score table, then each failed case's message. A package that
    could not be imported is one message: the cases it stopped are "not run" in the table, not repeated."""
    lines = [f"# {result.title}: {sub_id}", "",
             f"**Score: {result.score:g} / {result.max_score:g}**", "",
             "| case | points | status |", "| --- | ---: | --- |"]
    lines += [f"| `{c.name}` | {c.score:g} / {c.max_score:g} | "
              f"{'passed' if c.passed else 'not run' if c.import_error else 'FAILED'} |" for c in result.cases]
    lines += [""] + [f"> note: {n}" for n in result.notes]
    if result.import_error:  # once, on top: every case failed because of it
        lines += ["", "## Your package could not be imported, so every case scores 0", "", "```",
                  _no_stage_paths(result.import_error).replace("```", "` ` `"), "```"]
    failed = [c for c in result.cases if not c.passed and not c.import_error]
    if failed:
        lines += ["", "## What went wrong", ""]
        for c in failed:
            body = _no_stage_paths(c.output).replace("```", "` ` `")  # a fence in a message must not end ours
            lines += [f"### `{c.name}` ({c.score:g} / {c.max_score:g})", "", "```", body, "```", ""]
    elif not result.import_error:
        lines += ["", "Every case passed."]
    lines += ["", f"_Graded in: {result.isolation}._", ""]
    return "\n".join(lines)


def write_submission(result: LabResult, folder: Path, sub_id: str) -> None:
    """``results.json`` (Gradescope's format) and ``feedback.md`` in the submission's own folder."""
    atomic_write_text(Path(folder) / "results.json", json.dumps(to_gradescope(result), indent=2) + "\n")
    atomic_write_text(Path(folder) / "feedback.md", feedback_markdown(result, sub_id))



# ------------------------------------------------------------------ the class, for the instructor

KNOWN = "known mistake"
DIAGNOSIS = "diagnosis"
_KNOWN_PREFIX = "matches a known mistake: "
_PRINTED = "\n--- what your code printed ---"  # run_case appends the student's output after this
_FACTOR = re.compile(r"^got = (\w+) x \S+")
_INDEX_LIST = re.compile(r"\[\d+(, \d+)*\]")
_COUNT = re.compile(r"^\d+ entries")
NOT_GRADED = "none"  # the isolation of a submission that could not be graded at all (runner.zero_result)


def findings(message: str) -> list[tuple[str, str]]:
    """The named mistakes and diagnoses in one case's failure message, as (kind, text), once each.

    ``hint: matches a known mistake: X`` is the known mistake X (a prediction of the student's
    array from a lab's ``Mistake`` came true); any other hint, and a lab's ConventionError (an
    unstable softmax), is a diagnosis. Figures that differ between students (the factor's value,
    the rows listed, a count) become words, so one diagnosis is one entry across the class. What
    the student's code printed is not read: a print cannot add a mistake to the class's view.
    """
    found: list[tuple[str, str]] = []
    for line in message.split(_PRINTED, 1)[0].splitlines():
        line = line.strip()
        if line.startswith("hint: ") and line[6:].startswith(_KNOWN_PREFIX):
            item = (KNOWN, line[6 + len(_KNOWN_PREFIX):])
        elif line.startswith("hint: "):
            hint = _FACTOR.sub(r"got = \1 x a constant", line[6:])
            item = (DIAGNOSIS, _COUNT.sub("some entries", _INDEX_LIST.sub("[...]", hint)))
        elif line.startswith("ConventionError: "):
            item = (DIAGNOSIS, re.split(r": |\. ", line[len("ConventionError: "):], maxsplit=1)[0])
        else:
            continue
        if item not in found:
            found.append(item)
    return found


def read_outputs(out: Path, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """{id: {case: message}} from each submission's ``submissions/<id>/results.json`` under ``out``
    (written by ``write_submission``); a missing or unreadable file gives no messages."""
    outputs: dict[str, dict[str, str]] = {}
    for sub_id in ids:
        try:
            tests = json.loads((Path(out) / "submissions" / sub_id / "results.json").read_text("utf-8"))["tests"]
            outputs[sub_id] = {str(t["name"]): str(t.get("output", "")) for t in tests}
        except (OSError, ValueError, KeyError, TypeError):
            outputs[sub_id] = {}
    return outputs


def section_of(sub_id: str) -> str:
    """A submission's section: its id's first path component (``sec1/alice`` -> ``sec1``)."""
    return sub_id.split("/", 1)[0] if "/" in sub_id else "(no section)"


def _percent(row: Any) -> float:
    return 100.0 * row.score / row.max_score if row.max_score > 0 else float("nan")


def _status(row: Any) -> str:
    return "not graded" if row.isolation.startswith(NOT_GRADED) else "not imported" if row.reason else "graded"


def _stats(values: Sequence[float]) -> tuple[float, float]:
    return (statistics.mean(values), statistics.median(values)) if values else (float("nan"), float("nan"))


def class_summary(rows: Sequence[Any], case_points: dict[str, float],
                  outputs: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The class in figures, over gradebook rows (``grader.course.gradebook.Row``); ``case_points``
    maps each case to its full points, ``outputs`` each id to its cases' messages (``read_outputs``).

    Three kinds of rows: *not graded* (no package, the grading itself failed: ``reason`` set and
    isolation ``none``), *not imported* (graded 0 because the package did not import), and the
    rest. Scores (mean, median, distribution) are over the graded rows, the not-imported zeros
    included: they are real grades. Pass rates, points lost and mistakes are over the rows that
    ran, so a submission that never ran does not count as failing every case."""
    outputs = outputs or {}
    not_graded = [r for r in rows if r.isolation.startswith(NOT_GRADED)]
    graded = [r for r in rows if not r.isolation.startswith(NOT_GRADED) and r.max_score > 0]
    ran = [r for r in graded if not r.reason]
    pct = [_percent(r) for r in graded]
    bins = [0] * 10
    for p in pct:
        bins[min(int(p // 10), 9)] += 1
    rates: dict[str, float] = {}
    lost: dict[str, float] = {}
    for n, full in case_points.items():
        have = [r for r in ran if n in r.cases]
        if have:  # a case nobody ran (grade --case) has no rate
            rates[n] = sum(1 for r in have if r.cases[n] >= full) / len(have)
            lost[n] = sum(full - r.cases[n] for r in have)
    mistakes: dict[tuple[str, str], dict[str, set[str]]] = {}
    for r in ran:
        for case, message in outputs.get(r.id, {}).items():
            if r.cases.get(case, 0.0) >= case_points.get(case, float("inf")):
                continue  # a passed case's text is a pass message
            for item in findings(message):
                entry = mistakes.setdefault(item, {"students": set(), "cases": set()})
                entry["students"].add(r.id)
                entry["cases"].add(case)
    ordered = sorted(mistakes.items(), key=lambda kv: (kv[0][0] != KNOWN, -len(kv[1]["students"]), kv[0][1]))
    sections: dict[str, dict[str, Any]] = {}
    for name in sorted({section_of(r.id) for r in rows}):
        members = [r for r in rows if section_of(r.id) == name]
        scores = [_percent(r) for r in graded if section_of(r.id) == name]
        mean, median = _stats(scores)
        sections[name] = {"n": len(members), "graded": len(scores), "mean_percent": mean, "median_percent": median,
                          "not_graded": sum(1 for r in not_graded if section_of(r.id) == name)}
    mean, median = _stats(pct)
    return {
        "n": len(rows), "graded": len(graded), "mean_percent": mean, "median_percent": median, "bins": bins,
        "pass_rate": rates, "points_lost": lost, "ran": len(ran),
        "ungradable": len(not_graded), "not_imported": len(graded) - len(ran),
        "mistakes": [{"kind": kind, "text": text, "students": sorted(v["students"]), "cases": sorted(v["cases"])}
                     for (kind, text), v in ordered],
        "students": [{"id": r.id, "section": section_of(r.id), "score": r.score, "max_score": r.max_score,
                      "percent": _percent(r), "reason": r.reason,
                      "status": _status(r)}
                     for r in rows],
        "sections": sections,
        "duplicates": identical_groups(rows),
    }


def identical_groups(rows: Sequence[Any]) -> list[list[str]]:
    """Ids whose lab package has the same content hash (the same files, byte for byte), two or more
    per group; submissions without a package are not alike in any way that matters."""
    by_hash: dict[str, list[str]] = {}
    for r in rows:
        if r.content_hash and r.content_hash != "no-package":
            by_hash.setdefault(r.content_hash, []).append(r.id)
    return sorted(sorted(ids) for ids in by_hash.values() if len(ids) > 1)


def feedback_link(sub_id: str) -> str:
    """The relative link from the summary to a submission's feedback (ids are paths: keep the slashes)."""
    return f"submissions/{quote(sub_id, safe='/')}/feedback.md"


def _md(text: str) -> str:
    """Text in a Markdown table cell: no pipes or newlines to break the row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt(value: float, spec: str = ".1f") -> str:
    return "-" if value != value else format(value, spec)


def summary_markdown(summary: dict[str, Any], title: str) -> str:
    """The class summary as Markdown (``summary.md``): the same sections as the HTML page."""
    lines = [f"# {title}: class summary", "", _headline(summary), ""]
    lines += ["## Most common mistakes", ""]
    if summary["mistakes"]:
        lines += ["| mistake or diagnosis | kind | students | who | cases |", "| --- | --- | ---: | --- | --- |"]
        for m in summary["mistakes"]:
            who = ", ".join(f"[{_md(s)}]({feedback_link(s)})" for s in m["students"])
            lines.append(f"| {_md(m['text'])} | {m['kind']} | {len(m['students'])} | {who} | "
                         f"{', '.join(f'`{c}`' for c in m['cases'])} |")
    else:
        lines.append("No known mistake or diagnosis fired.")
    lines += ["", "## Students", "", "| student | section | score | % | feedback | note |",
              "| --- | --- | ---: | ---: | --- | --- |"]
    for s in summary["students"]:
        note = f"{s['status']}: {s['reason']}" if s["reason"] else ""
        lines.append(f"| {_md(s['id'])} | {_md(s['section'])} | {s['score']:g} / {s['max_score']:g} | "
                     f"{_fmt(s['percent'])} | [feedback.md]({feedback_link(s['id'])}) | {_md(note[:300])} |")
    lines += ["", "## Sections", "", "| section | submissions | graded | mean % | median % | not graded |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, sec in summary["sections"].items():
        lines.append(f"| {_md(name)} | {sec['n']} | {sec['graded']} | {_fmt(sec['mean_percent'])} | "
                     f"{_fmt(sec['median_percent'])} | {sec['not_graded']} |")
    lines += ["", f"## Cases (over the {summary['ran']} submissions that ran)", "",
              "| case | pass rate | points lost |", "| --- | ---: | ---: |"]
    for n, r in summary["pass_rate"].items():
        lines.append(f"| `{n}` | {'-' if r != r else format(r, '.0%')} | {summary['points_lost'][n]:g} |")
    lines += ["", "## Score distribution", "", "| score (%) | submissions |", "| --- | ---: |"]
    for i, count in enumerate(summary["bins"]):
        lines.append(f"| {10 * i}-{100 if i == 9 else 10 * i + 10} | {count} |")
    if summary["duplicates"]:
        lines += ["", "## Identical submissions (same files, byte for byte)", ""]
        lines += [f"- {', '.join(_md(i) for i in group)}" for group in summary["duplicates"]]
    return "\n".join(lines) + "\n"


def _headline(summary: dict[str, Any]) -> str:
    return (f"{summary['n']} submissions; mean {_fmt(summary['mean_percent'])}%, median "
            f"{_fmt(summary['median_percent'])}%; {summary['ungradable']} could not be graded (not counted), "
            f"{summary['not_imported']} did not import (0 points; not counted in the pass rates).")


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;
vertical-align:top}td.num{text-align:right;white-space:nowrap}.track{width:300px;height:14px;background:#e6e6e6;display:inline-block}
.bar{height:14px;background:#2f5fa0}.dist .bar{background:#5a8f3c}
.dist .track{background:#efe9dc}.kind{color:#666}.warn{color:#a02f2f}"""


def _bar(fraction: float) -> str:
    """A bar on a fixed 0-100% track: 77% draws 77% of the track, whatever the other bars are."""
    width = 0.0 if fraction != fraction else max(0.0, min(1.0, fraction)) * 100
    return f'<div class="track"><div class="bar" style="width:{width:.1f}%"></div></div>'


def summary_html(summary: dict[str, Any], title: str) -> str:
    """The class summary as one self-contained page (no scripts, no external files): mistakes, students,
    sections, cases with pass-rate bars on a 0-100% scale, score distribution, identical submissions."""
    e = html.escape
    t = e(title)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{t}: class summary</title>"
             f"<style>{_CSS}</style></head><body><h1>{t}: class summary</h1>"
             f"<p id='headline'>{e(_headline(summary))}</p>",
             "<h2>Most common mistakes</h2>"]
    if summary["mistakes"]:
        parts.append("<table id='mistakes'><tr><th>mistake or diagnosis</th><th>kind</th><th>students</th>"
                     "<th>who</th><th>cases</th></tr>")
        for m in summary["mistakes"]:
            who = ", ".join(f"<a href='{e(feedback_link(s))}'>{e(s)}</a>" for s in m["students"])
            parts.append(f"<tr class='mistake'><td class='text'>{e(m['text'])}</td><td class='kind'>{e(m['kind'])}</td>"
                         f"<td class='num count'>{len(m['students'])}</td><td class='who'>{who}</td>"
                         f"<td>{e(', '.join(m['cases']))}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p id='mistakes'>No known mistake or diagnosis fired.</p>")
    parts.append("<h2>Students</h2><table id='students'><tr><th>student</th><th>section</th><th>score</th>"
                 "<th>%</th><th>feedback</th><th>note</th></tr>")
    for s in summary["students"]:
        note = f"{s['status']}: {s['reason']}" if s["reason"] else ""
        parts.append(f"<tr class='{e(s['status'].replace(' ', '-'))}'><td>{e(s['id'])}</td><td>{e(s['section'])}</td>"
                     f"<td class='num'>{s['score']:g} / {s['max_score']:g}</td>"
                     f"<td class='num'>{_fmt(s['percent'])}</td>"
                     f"<td><a href='{e(feedback_link(s['id']))}'>feedback.md</a></td>"
                     f"<td class='{'warn' if note else ''}'>{e(note[:300])}</td></tr>")
    parts.append("</table><h2>Sections</h2><table id='sections'><tr><th>section</th><th>submissions</th>"
                 "<th>graded</th><th>mean %</th><th>median %</th><th>not graded</th></tr>")
    for name, sec in summary["sections"].items():
        parts.append(f"<tr><td>{e(name)}</td><td class='num'>{sec['n']}</td><td class='num'>{sec['graded']}</td>"
                     f"<td class='num'>{_fmt(sec['mean_percent'])}</td><td class='num'>{_fmt(sec['median_percent'])}"
                     f"</td><td class='num'>{sec['not_graded']}</td></tr>")
    parts.append(f"</table><h2>Cases</h2><p>Over the {summary['ran']} submissions that ran (bars: 0-100%).</p>"
                 "<table id='cases'><tr><th>case</th><th>pass rate</th><th></th><th>points lost</th></tr>")
    for n, r in summary["pass_rate"].items():
        parts.append(f"<tr class='case' data-case='{e(n)}'><td>{e(n)}</td><td class='num rate'>"
                     f"{'-' if r != r else format(r, '.0%')}</td><td>{_bar(r)}</td>"
                     f"<td class='num'>{summary['points_lost'][n]:g}</td></tr>")
    graded = max(summary["graded"], 1)
    parts.append("</table><h2>Score distribution</h2><p>Submissions per bin (bars: share of the graded "
                 "submissions).</p><table id='distribution' class='dist'>"
                 "<tr><th>score (%)</th><th>submissions</th><th></th></tr>")
    for i, count in enumerate(summary["bins"]):
        parts.append(f"<tr><td>{10 * i}-{100 if i == 9 else 10 * i + 10}</td><td class='num'>{count}</td>"
                     f"<td>{_bar(count / graded)}</td></tr>")
    parts.append("</table>")
    if summary["duplicates"]:
        parts.append("<h2>Identical submissions</h2><p>Same files, byte for byte:</p><ul id='duplicates'>")
        parts += [f"<li>{e(', '.join(group))}</li>" for group in summary["duplicates"]]
        parts.append("</ul>")
    return "".join(parts) + "</body></html>\n"


def write_summaries(out: Path, rows: Sequence[Any], case_points: dict[str, float], title: str) -> None:
    """``summary.md`` and ``summary.html`` in ``out``, from the gradebook's rows and each submission's
    ``results.json`` (for the mistakes)."""
    summary = class_summary(rows, case_points, read_outputs(out, [r.id for r in rows]))
    atomic_write_text(Path(out) / "summary.md", summary_markdown(summary, title))
    atomic_write_text(Path(out) / "summary.html", summary_html(summary, title))
