"""The ``gradelab`` command.

    gradelab test LAB [--impl DIR] [--isolated] [--json FILE] [--case NAME]...
    gradelab grade LAB SUBMISSION... [--out DIR]
    gradelab stubs [--check]
    gradelab fixtures [LAB...] [--check]
    gradelab list LAB
    gradelab release LAB... --out DIR | --check DIR;  gradelab gradescope LAB --out ZIP
    gradelab nbgrader import --course-dir DIR --assignment LAB

Exit codes: 0 all cases passed (``grade``: every submission was graded, whatever its score),
1 some case failed or a check found problems, 2 bad usage or a missing lab/folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import fixtures, paths, report, stubs
from .case import Lab
from .loading import LoadError, load_cases
from .runner import GradingError, LabResult, grade, reference, zero_result


class UsageError(Exception):
    """Bad arguments or a missing folder: exit 2 with the message."""


def _lab(name: str) -> Lab:
    try:
        return load_cases(name, paths.tests_dir())
    except LoadError as exc:
        raise UsageError(str(exc)) from exc


def cmd_test(args: argparse.Namespace) -> int:
    lab = _lab(args.lab)
    impl = Path(args.impl) if args.impl else paths.labs_dir()
    if not impl.is_dir():
        raise UsageError(f"--impl {impl}: no such folder")
    result = grade(lab, impl, isolated=args.isolated, only=args.case or None,
                   timeout_scale=args.timeout_scale, require_sandbox=args.require_sandbox)
    print(report.table(result, details=not args.quiet))
    if args.json:
        report.write_json(result, Path(args.json))
    return 0 if result.score == result.max_score else 1


def cmd_grade(args: argparse.Namespace) -> int:
    """Every submission in its own sandbox; one broken submission never stops the others."""
    lab = _lab(args.lab)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, LabResult]] = []
    for sub in map(Path, args.submissions):
        name = sub.resolve().name
        if not sub.is_dir():
            result = zero_result(lab, sub, f"{sub} is not a folder; a submission is a folder laid out like labs/")
        else:
            result = _grade_one(lab, sub, args)
        report.write_json(result, out / name / "results.json")
        rows.append((name, result))
        print(report.table(result, details=args.details) + "\n")
    report.write_gradebook(rows, out / "gradebook.csv")
    print(f"gradebook: {out / 'gradebook.csv'} ({len(rows)} submissions)")
    for name, r in rows:
        print(f"  {name:<30} {r.score:>6g} / {r.max_score:g}")
    return 0


def _grade_one(lab: Lab, sub: Path, args: argparse.Namespace) -> LabResult:
    try:
        return grade(lab, sub, isolated=True, timeout_scale=args.timeout_scale,
                     require_sandbox=args.require_sandbox)
    except GradingError:
        raise  # the grader's own set-up (no reference, no sandbox): the same for every submission
    except Exception as exc:  # noqa: BLE001 - nothing one submission does may stop the others
        return zero_result(lab, sub, f"grading this submission failed ({type(exc).__name__}: {exc}); "
                                     "the instructor should look at it")


def cmd_stubs(args: argparse.Namespace) -> int:
    return stubs.run(paths.project_root(), check_only=args.check)


def cmd_fixtures(args: argparse.Namespace) -> int:
    labs = args.labs or sorted(p.name for p in paths.solutions_dir().iterdir()
                               if (paths.tests_dir() / p.name / "cases.py").is_file())
    status = 0
    for name in labs:
        lab, ref = _lab(name), reference(name)
        if args.check:
            problems = fixtures.check(lab, ref)
            for p in problems:
                print(f"{name}: {p}")
            verdict = f"are STALE: run `gradelab fixtures {name}`" if problems else "are up to date"
            print(f"{name}: fixtures {verdict}")
            status |= bool(problems)
        else:
            path = fixtures.save(name, fixtures.generate(lab, ref))
            print(f"{name}: wrote {path}")
    return status


def cmd_list(args: argparse.Namespace) -> int:
    lab = _lab(args.lab)
    print(f"{lab.title}: {len(lab.cases)} cases, {lab.max_score:g} points")
    for c in lab.cases:
        print(f"  {c.name:<32} {c.points:>4g}  {c.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradelab", description="Auto-graded deep-learning labs.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("test", help="run a lab's cases against an implementation and score them")
    t.add_argument("lab", help="e.g. lab1")
    t.add_argument("--impl", help="folder laid out like labs/ (default: labs/)")
    t.add_argument("--isolated", action="store_true",
                   help="run the implementation in a sandboxed child; expected values from the "
                        "reference, hidden cases included (instructors)")
    t.add_argument("--json", help="write Gradescope-style results.json here")
    t.add_argument("--case", action="append", help="run only this case (repeatable)")
    t.add_argument("--quiet", action="store_true", help="the score table only, no failure details")
    t.set_defaults(func=cmd_test)

    g = sub.add_parser("grade", help="grade many submission folders in isolation; write a gradebook")
    g.add_argument("lab")
    g.add_argument("submissions", nargs="+", help="folders laid out like labs/")
    g.add_argument("--out", default="out/grades", help="where results.json files and gradebook.csv go")
    g.add_argument("--details", action="store_true", help="print every failure message too")
    g.set_defaults(func=cmd_grade)

    for p in (t, g):
        p.add_argument("--timeout-scale", type=float, default=1.0, help="multiply every case's timeout")
        p.add_argument("--require-sandbox", action="store_true",
                       help="fail instead of falling back to a plain subprocess when bwrap is unusable")

    s = sub.add_parser("stubs", help="generate labs/ from solutions/ (or --check that they match)")
    s.add_argument("--check", action="store_true")
    s.set_defaults(func=cmd_stubs)

    f = sub.add_parser("fixtures", help="regenerate public expected values from the reference")
    f.add_argument("labs", nargs="*")
    f.add_argument("--check", action="store_true")
    f.set_defaults(func=cmd_fixtures)

    ls = sub.add_parser("list", help="a lab's cases and points")
    ls.add_argument("lab")
    ls.set_defaults(func=cmd_list)
    _add_course_commands(sub)
    return parser


def _add_course_commands(sub: argparse._SubParsersAction) -> None:
    """``release``, ``gradescope`` and ``nbgrader``: the bridges to how courses run (grader/release.py,
    grader/gradescope.py, grader/nbgrader_bridge.py)."""
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
    imp.set_defaults(func=cmd_nbgrader_import)
    src = nbsub.add_parser("source", help="write <course>/source/LAB/: the lab's notebook and its stubs")
    src.add_argument("--course-dir", required=True)
    src.add_argument("lab")
    src.set_defaults(func=lambda a: __import__("grader.nbgrader_bridge").nbgrader_bridge.main_source(
        Path(a.course_dir), a.lab))


def cmd_release(args: argparse.Namespace) -> int:
    from . import release

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
    from . import gradescope

    path = gradescope.build_zip(args.lab, Path(args.out))
    print(f"wrote {path}: upload it as the assignment's autograder (setup.sh + run_autograder)")
    return 0


def cmd_nbgrader_import(args: argparse.Namespace) -> int:
    from . import nbgrader_bridge

    return nbgrader_bridge.run_import(Path(args.course_dir), args.assignment, lab=args.lab or args.assignment,
                                      regrade=args.regrade)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, LoadError, GradingError) as exc:
        print(f"gradelab: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
