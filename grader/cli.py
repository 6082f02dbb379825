"""The ``gradelab`` command.

    gradelab test LAB [--impl DIR] [--isolated] [--json FILE] [--case NAME]...
    gradelab grade LAB SUBMISSION... [--out DIR] [--jobs N | --scheduler ADDRESS] [--force] [--data DIR]
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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from grader import course_cli, paths
from grader.authoring import fixtures, stubs
from grader.course import report
from grader.isolation.loading import LoadError, load_cases
from grader.judging.case import Accuracy, Lab, Metric

from .runner import GradingError, grade

UsageError = course_cli.UsageError  # bad arguments or a missing folder: exit 2 with the message

def _lab(name: str) -> Lab:
    try:
        return load_cases(name, paths.tests_dir())
    except LoadError as exc:
        known = sorted(p.parent.name for p in paths.tests_dir().glob("*/cases.py"))
        if not (paths.tests_dir() / name / "cases.py").is_file():
            raise UsageError(f"unknown lab {name!r}; the labs are: {', '.join(known) or 'none'}") from exc
        raise UsageError(str(exc)) from exc


def cmd_test(args: argparse.Namespace) -> int:
    lab = _lab(args.lab)
    only = _cases(lab, args.case)
    impl = Path(args.impl) if args.impl else paths.labs_dir()
    if not impl.is_dir():
        raise UsageError(f"--impl {impl}: no such folder")
    if args.json:
        _writable_dir(Path(args.json).parent, "--json")
    if args.data:
        if not Path(args.data).is_dir():
            raise UsageError(f"--data {args.data}: no such folder")
        from grader.course.submission import use_data
        use_data(args.data)
    result = grade(lab, impl, isolated=args.isolated, only=only, timeout_scale=args.timeout_scale,
                   require_sandbox=args.require_sandbox, allow_unsandboxed=args.allow_unsandboxed)
    print(report.table(result, details=not args.quiet))
    if args.isolated:
        _bundled_data_note(lab, only, args.data)
    if args.json:
        report.write_json(result, Path(args.json))
    return 0 if result.score == result.max_score else 1


def _cases(lab: Lab, names: Sequence[str] | None) -> tuple[str, ...] | None:
    """The selected case names, or None for all; an unknown name is a usage error listing the cases."""
    if not names:
        return None
    known = [c.name for c in lab.cases]
    for n in names:
        if n not in known:
            raise UsageError(f"{lab.name} has no case {n!r}; its cases: {', '.join(known)}")
    return tuple(dict.fromkeys(names))


def _bundled_data_note(lab: Lab, only: Sequence[str] | None, data: str | None) -> None:
    # Accuracy (labs 1-4) and Metric (Lab 5's canvases are made from the same held-out digits).
    if data is None and any(isinstance(ch, Accuracy | Metric) for c in lab.cases for ch in c.checks
                            if only is None or c.name in only):
        print("note: accuracy is measured on the bundled MNIST split, whose labels are public; "
              "--data DIR grades on the course's own held-out set")


def _writable_dir(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gradelab-probe-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write there ({exc.strerror or exc})") from exc
    return path


def cmd_grade(args: argparse.Namespace) -> int:
    """Every submission in its own sandbox (grader/course/grading.py); prints where the results are."""
    from grader.course import batch, grading, report
    from grader.course.submission import Options

    batch.exit_on_sigterm()  # SIGTERM unwinds: workers remove their stages, the pool is waited for
    lab = _lab(args.lab)
    only = _cases(lab, args.case)
    if args.data and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    out = _writable_dir(Path(args.out), "--out")
    options = Options(args.lab, only, args.timeout_scale, args.allow_unsandboxed, args.data)
    _bundled_data_note(lab, only, args.data)
    try:
        run = grading.grade_class(
            lab, [Path(s) for s in args.submissions], out, options, root=Path(args.root) if args.root else None,
            force=args.force, jobs=args.jobs, scheduler=args.scheduler,
            progress=not args.no_progress and sys.stderr.isatty(),  # a bar only where it can redraw itself
            on_graded=(lambda result: print(report.table(result) + "\n")) if args.details else None)
    except grading.BatchError as exc:
        raise UsageError(str(exc)) from exc
    print(f"gradebook: {run.csv} ({len(run.rows)} submissions); feedback: {out / 'submissions'}/<id>/feedback.md; "
          f"class summary: {out / 'summary.md'}, {out / 'summary.html'}")
    mine = set(run.ids)
    for r in run.rows:
        if r.id in mine:
            why = f"  ({r.reason.splitlines()[0][:100]})" if r.reason else ""
            print(f"  {r.id:<30} {r.score:>6g} / {r.max_score:g}  [{r.isolation}]{why}")
    for group in report.identical_groups(run.rows):
        print(f"identical submissions (the same files, byte for byte): {', '.join(group)}")
    return 0


def cmd_stubs(args: argparse.Namespace) -> int:
    return stubs.run(paths.project_root(), check_only=args.check)


def cmd_fixtures(args: argparse.Namespace) -> int:
    return fixtures.main(args.labs, check_only=args.check)


def cmd_list(args: argparse.Namespace) -> int:
    lab = _lab(args.lab)
    print(f"{lab.title}: {len(lab.cases)} cases, {lab.max_score:g} points")
    for c in lab.cases:
        print(f"  {c.name:<32} {c.points:>4g}  {c.description}")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive, finite number")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


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
    g.add_argument("--out", default="out/grades",
                   help="gradebook.sqlite/.csv, summary.md/.html, submissions/<id>/results.json and feedback.md")
    g.add_argument("--details", action="store_true", help="print every failure message too")
    g.add_argument("--case", action="append", help="grade only this case (repeatable)")
    g.add_argument("--jobs", type=_positive_int, default=os.cpu_count() or 1,
                   help="submissions graded at once (default: the number of cores; one BLAS thread each)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on Dask distributed: a scheduler address, or 'local' for a LocalCluster of "
                        "--jobs workers (pip install 'gradelab[dask]')")
    g.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    g.add_argument("--root", help="ids are paths relative to this folder (default: recorded in the gradebook "
                                  "on first use, else the common parent of the submissions)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_grade)

    for p in (t, g):
        p.add_argument("--timeout-scale", type=_positive_float, default=1.0, help="multiply every case's timeout")
        p.add_argument("--require-sandbox", action="store_true",
                       help="fail when bwrap is unusable (the default for isolated grading; kept for scripts)")
        p.add_argument("--allow-unsandboxed", action="store_true",
                       help="without a working bwrap, grade in a plain subprocess (the report says so)")
        p.add_argument("--data", metavar="DIR",
                       help="the course's own held-out MNIST (IDX files) for the accuracy cases")

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
    course_cli.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # text from submissions may hold any bytes: never crash on them
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, LoadError, GradingError) as exc:
        print(f"gradelab: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `gradelab list lab1 | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
