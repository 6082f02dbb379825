"""The ``gradelab`` commands that bridge to how courses run: ``release``, ``gradescope``, ``nbgrader``,
and ``similarity`` (pairs of submissions whose code is alike).

Like grader/cli.py (which registers these through ``add_commands``), this module only parses
arguments and prints; the work is in grader/course/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(Exception):
    """Bad arguments: exit 2 with the message (grader/cli.py's ``main`` reports it)."""


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``release``, ``gradescope`` and ``nbgrader``: the bridges to how courses run (grader/course/release.py,
    grader/course/gradescope.py, grader/course/nbgrader_bridge.py)."""
    r = sub.add_parser("release", help="build the student repository of some labs (or --check one)")
    r.add_argument("labs", nargs="*", help="e.g. lab1 (a lab that provides another is released after it)")
    r.add_argument("--out", help="a new folder for the release")
    r.add_argument("--check", metavar="DIR", help="scan every file of a release for solution code; build nothing")
    r.add_argument("--classroom", action="store_true", help="add GitHub Classroom's autograding reporter to CI")
    r.add_argument("--no-git", action="store_true", help="do not make the release a git repository")
    r.set_defaults(func=cmd_release)
    gs = sub.add_parser("gradescope", help="build a Gradescope autograder zip for a lab")
    gs.add_argument("lab")
    gs.add_argument("--out", default="autograder.zip")
    gs.set_defaults(func=cmd_gradescope)
    nb = sub.add_parser("nbgrader", help="nbgrader integration (needs the nbgrader extra)")
    nbsub = nb.add_subparsers(dest="nbgrader_command", required=True)
    imp = nbsub.add_parser("import", help="grade each submitted/<student>/<assignment>/ in the sandbox "
                                          "and write the scores into nbgrader's gradebook")
    imp.add_argument("--course-dir", required=True)
    imp.add_argument("--assignment", required=True, help="the nbgrader assignment, named like the lab (lab1)")
    imp.add_argument("--lab", help="the lab, if the assignment has another name")
    imp.add_argument("--regrade", action="store_true", help="grade students whose scores are already imported")
    imp.add_argument("--allow-unsandboxed", action="store_true",
                     help="grade in a plain child process when bubblewrap is unusable (not a grade to trust)")
    imp.set_defaults(func=cmd_nbgrader_import)
    src = nbsub.add_parser("source", help="write <course>/source/LAB/: the lab's notebook and its stubs")
    src.add_argument("--course-dir", required=True)
    src.add_argument("lab")
    src.set_defaults(func=lambda a: __import__("grader.course.nbgrader_bridge").nbgrader_bridge.main_source(
        Path(a.course_dir), a.lab))
    sim = sub.add_parser("similarity", help="pairs of submissions whose own code is alike (copydetect's "
                                            "winnowing; the stubs are left out); an HTML report side by side")
    sim.add_argument("lab")
    sim.add_argument("submissions", nargs="+", help="folders laid out like labs/")
    sim.add_argument("--out", default="out/similarity", help="where similarity.html goes")
    sim.add_argument("--threshold", type=float, default=None, help="flag pairs at or above this similarity "
                                                                    "(default: grader/course/similarity.THRESHOLD)")
    sim.add_argument("--top", type=int, default=10, help="how many pairs to print (the report has them all)")
    sim.add_argument("--root", help="ids are paths relative to this folder (default: the submissions' common parent)")
    sim.set_defaults(func=cmd_similarity)
    c = sub.add_parser("course", help="apply deadlines and late policies; write the course gradebook and LMS exports")
    c.add_argument("course_file", metavar="COURSE.toml")
    c.add_argument("--out", default="out/course", help="course.csv, course.md, canvas.csv, grades.csv")
    c.set_defaults(func=cmd_course)
    o = sub.add_parser("override", help="set an instructor's score for one submission (kept across regrades)")
    o.add_argument("course_file", metavar="COURSE.toml")
    o.add_argument("lab")
    o.add_argument("submission", help="the submission's id in the lab's gradebook (e.g. sec1/alice)")
    o.add_argument("score", nargs="?", type=float, help="the score that counts (omit with --clear)")
    o.add_argument("--reason", default="", help="why (required with a score; kept with it)")
    o.add_argument("--clear", action="store_true", help="remove the override")
    o.set_defaults(func=cmd_override)


def cmd_release(args: argparse.Namespace) -> int:
    from grader.course import release

    try:
        if args.check:
            return release.main_check(Path(args.check))
        if not args.labs or not args.out:
            raise UsageError("gradelab release LAB [LAB...] --out DIR, or gradelab release --check DIR")
        release.build(args.labs, Path(args.out), classroom=args.classroom, git=not args.no_git)
    except release.ReleaseError as exc:
        print(f"gradelab release: {exc}", file=sys.stderr)
        return 1
    print(f"released {', '.join(args.labs)} into {args.out}: checked, no solution code "
          f"(students: bash scripts/setup.sh, then .venv/bin/python -m pytest tests/{args.labs[0]})")
    return 0


def cmd_gradescope(args: argparse.Namespace) -> int:
    from grader import paths
    from grader.course import gradescope

    known = sorted(p.parent.name for p in paths.tests_dir().glob("*/cases.py")
                   if (paths.solutions_dir() / p.parent.name).is_dir())
    if args.lab not in known:
        raise UsageError(f"unknown lab {args.lab!r}; the labs are: {', '.join(known) or 'none'}")
    try:
        path = gradescope.build_zip(args.lab, Path(args.out))
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from exc
    print(f"wrote {path}: upload it as the assignment's autograder (setup.sh + run_autograder)")
    return 0


def cmd_nbgrader_import(args: argparse.Namespace) -> int:
    from grader.course import nbgrader_bridge

    return nbgrader_bridge.run_import(Path(args.course_dir), args.assignment, lab=args.lab or args.assignment,
                                      regrade=args.regrade, allow_unsandboxed=args.allow_unsandboxed)


def cmd_similarity(args: argparse.Namespace) -> int:
    from grader.course import similarity

    threshold = similarity.THRESHOLD if args.threshold is None else args.threshold
    try:
        result, page = similarity.run(args.lab, [Path(s) for s in args.submissions], Path(args.out),
                                      threshold=threshold, root=Path(args.root) if args.root else None)
    except similarity.SimilarityError as exc:
        raise UsageError(str(exc)) from exc
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc})") from exc
    flagged = sum(p.similarity >= threshold for p in result.pairs)
    print(f"{result.lab}: {len(result.ids)} submissions, {len(result.pairs)} pairs; {flagged} at or above "
          f"{threshold:.2f} (the share of a student's own code, outside the stubs, found in the other's)")
    for p in result.pairs[:max(0, args.top)]:
        mark = "  IDENTICAL FILES" if p.identical else "  <- look" if p.similarity >= threshold else ""
        print(f"  {p.similarity:5.2f}  {p.a}  {p.b}{mark}")
    print(f"report: {page}")
    return 0


def cmd_course(args: argparse.Namespace) -> int:
    from grader.course import coursebook

    try:
        written = coursebook.run(Path(args.course_file), Path(args.out))
    except coursebook.CourseError as exc:
        raise UsageError(str(exc)) from exc
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def cmd_override(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from grader.course import coursebook

    if (args.score is None) != args.clear:
        raise UsageError("give a SCORE with --reason, or --clear")
    try:
        print(coursebook.override(Path(args.course_file), args.lab, args.submission, args.score, args.reason,
                                  datetime.now(UTC).isoformat(timespec="seconds")))
    except coursebook.CourseError as exc:
        raise UsageError(str(exc)) from exc
    return 0
