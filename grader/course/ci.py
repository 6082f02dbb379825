"""What a student repository's CI publishes: the score table, the score line, GitHub Classroom's
autograding result and a score badge.

    python -m grader.course.ci lab1 [lab2 ...] [--out .gradelab] [--require-full]

``scripts/ci.sh`` in a release runs exactly this, locally and in GitHub Actions. It grades
``labs/`` in-process against the public cases and the committed fixtures (the same runner as
``pytest tests/<lab>``) and writes, under ``--out``:

    summary.md             the score table (Markdown); appended to ``$GITHUB_STEP_SUMMARY`` when set
    classroom.json         GitHub Classroom's autograding result (``version: 1``); also written,
                           base64-encoded, to ``$GITHUB_OUTPUT`` as ``result`` when that is set
    badges/<lab>.json      a shields-style endpoint badge (``schemaVersion: 1``)
    badges/<lab>.svg       the same badge as an SVG drawn here (no outside service)

and prints one line per lab, ``lab1: 78/100``. This is a student-side convenience, not a grade:
the student controls the repository and could change any of it. Grades come from
``gradelab grade`` (sandboxed, hidden variants, reference computed live).

Exit codes: 0 when every lab was graded (whatever the score; ``--require-full``: only at full
marks), 1 otherwise, 2 bad usage.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from grader import paths
from grader.isolation.loading import LoadError, load_cases
from grader.runner import LabResult, grade

__all__ = ["badge_color", "badge_json", "badge_svg", "classroom_json", "main", "score_line", "summary_markdown"]


def score_line(result: LabResult) -> str:
    """``lab1: 78/100``: the line a check run shows."""
    return f"{result.lab}: {result.score:g}/{result.max_score:g}"


def badge_color(score: float, max_score: float) -> str:
    """Red below half, yellow below full marks, green at full marks (hex, usable in SVG and shields)."""
    if max_score > 0 and score >= max_score:
        return "#4c1"
    if max_score > 0 and score >= max_score / 2:
        return "#dfb317"
    return "#e05d44"


def badge_json(result: LabResult) -> dict[str, object]:
    """A shields-style endpoint badge."""
    return {"schemaVersion": 1, "label": result.lab, "message": f"{result.score:g}/{result.max_score:g}",
            "color": badge_color(result.score, result.max_score).lstrip("#")}


def _text_width(text: str) -> int:
    """Approximate width in pixels of ``text`` in 11 px Verdana: enough to size a badge."""
    wide = set("mwMW%@")
    narrow = set("il1.,:;|!'/ ()[]")
    return sum(10 if c in wide else 4 if c in narrow else 7 for c in text) + 10


def badge_svg(label: str, message: str, color: str) -> str:
    """A flat two-part badge, ``label | message``, drawn without any outside service."""
    lw, mw = _text_width(label), _text_width(message)
    w = lw + mw
    lab, msg = html.escape(label), html.escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" '
        f'aria-label="{lab}: {msg}"><title>{lab}: {msg}</title>'
        f'<rect width="{lw}" height="20" fill="#555"/>'
        f'<rect x="{lw}" width="{mw}" height="20" fill="{color}"/>'
        f'<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{lw / 2:g}" y="14">{lab}</text>'
        f'<text x="{lw + mw / 2:g}" y="14">{msg}</text></g></svg>\n'
    )


def summary_markdown(results: Sequence[LabResult]) -> str:
    """The score table per lab, then each failure's message folded away."""
    out: list[str] = []
    for r in results:
        out += [f"### {r.title}: {r.score:g}/{r.max_score:g}", "",
                "| case | points | status |", "| --- | ---: | --- |"]
        out += [f"| `{c.name}` | {c.score:g} / {c.max_score:g} | {'ok' if c.passed else 'FAIL'} |" for c in r.cases]
        out.append(f"| **total** | **{r.score:g} / {r.max_score:g}** | |")
        for c in r.cases:
            if not c.passed:
                out += ["", f"<details><summary>{html.escape(c.name)}</summary>", "", "```",
                        c.output.replace("```", "'''"), "```", "", "</details>"]
        out.append("")
    out.append("Public cases only, run in the student's own repository: a self-check, not the grade.")
    return "\n".join(out) + "\n"


def classroom_json(results: Sequence[LabResult]) -> dict[str, object]:
    """GitHub Classroom's autograding result: ``{version: 1, status, max_score, tests: [...]}``."""
    tests = []
    for r in results:
        for c in r.cases:
            tests.append({"name": f"{r.lab}: {c.name}", "status": "pass" if c.passed else "fail",
                          "message": c.output, "test_code": f"gradelab test {r.lab} --case {c.name}",
                          "filename": f"tests/{r.lab}/cases.py", "line_no": 0,
                          "execution_time": f"{c.seconds:.2f}s", "score": c.score})
    total = sum(r.score for r in results)
    max_score = sum(r.max_score for r in results)
    return {"version": 1, "status": "pass" if total == max_score else "fail", "max_score": max_score,
            "tests": tests}


def publish(results: Sequence[LabResult], out: Path, env: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Writes every artefact listed in the module docstring, and GitHub's files when set in ``env``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_markdown(results)
    (out / "summary.md").write_text(summary)
    classroom = json.dumps(classroom_json(results), indent=2)
    (out / "classroom.json").write_text(classroom + "\n")
    (out / "badges").mkdir(exist_ok=True)
    for r in results:
        badge = badge_json(r)
        (out / "badges" / f"{r.lab}.json").write_text(json.dumps(badge) + "\n")
        (out / "badges" / f"{r.lab}.svg").write_text(
            badge_svg(r.lab, str(badge["message"]), badge_color(r.score, r.max_score)))
    if env.get("GITHUB_STEP_SUMMARY"):
        with open(env["GITHUB_STEP_SUMMARY"], "a") as f:
            f.write(summary)
    if env.get("GITHUB_OUTPUT"):
        with open(env["GITHUB_OUTPUT"], "a") as f:
            f.write(f"result={base64.b64encode(classroom.encode()).decode()}\n")
            f.write("score=" + ", ".join(score_line(r) for r in results) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grader.course.ci", description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="+")
    parser.add_argument("--out", default=".gradelab", help="where summary.md, classroom.json and badges/ go")
    parser.add_argument("--require-full", action="store_true", help="exit 1 unless every lab has full marks")
    args = parser.parse_args(argv)
    graded: list[LabResult] = []
    for name in args.labs:
        try:
            lab = load_cases(name, paths.tests_dir())
        except LoadError as exc:
            print(f"gradelab ci: {exc}", file=sys.stderr)
            return 2
        graded.append(grade(lab, paths.labs_dir(), isolated=False))
    publish(graded, Path(args.out))
    for r in graded:
        failed = [c.name for c in r.cases if not c.passed]
        print(score_line(r) + (f"  (failed: {', '.join(failed)})" if failed else ""))
    print(f"details: {Path(args.out) / 'summary.md'}; run `pytest tests/<lab>` for every failure message")
    if args.require_full and any(r.score < r.max_score for r in graded):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
