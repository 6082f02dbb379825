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
from datetime import UTC, datetime
from pathlib import Path

from grader import paths
from grader.authoring import fixtures, stubs
from grader.course import report
from grader.isolation.loading import LoadError, load_cases
from grader.judging.case import Accuracy, Lab, Metric

from .runner import GradingError, LabResult, grade, reference


class UsageError(Exception):
    """Bad arguments or a missing folder: exit 2 with the message."""


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
        from grader.course.batch import use_data
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
    """Every submission in its own sandbox; one broken submission never stops the others.

    Results go to a SQLite gradebook keyed by submission id (``grader.course.gradebook``), one
    transaction per submission, then ``gradebook.csv``, the class summary and, per submission,
    ``submissions/<id>/results.json`` and ``feedback.md``. Rerunning skips what is graded and
    unchanged (``--force`` regrades)."""
    from grader.course import batch, gradebook

    batch.exit_on_sigterm()  # SIGTERM unwinds: workers remove their stages, the pool is waited for
    lab = _lab(args.lab)
    only = _cases(lab, args.case)
    subs = [Path(s) for s in dict.fromkeys(args.submissions)]
    for s in subs:
        if not s.exists():
            raise UsageError(f"{s}: no such submission folder")
        if not s.is_dir():
            raise UsageError(f"{s}: not a folder; a submission is a folder laid out like labs/")
    if args.data and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder")
    out = _writable_dir(Path(args.out), "--out")
    book = gradebook.Gradebook(out)
    try:
        stored = book.meta("root")
        if args.root and stored and Path(os.path.abspath(args.root)) != Path(stored):
            raise UsageError(f"--root {args.root}: the gradebook in {out} has ids relative to {stored}; "
                             "use that root, or another --out")
        try:
            root, ids = gradebook.submission_ids(subs, Path(args.root) if args.root else
                                                 Path(stored) if stored else None)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if len(set(ids.values())) < len(ids):
            raise UsageError("two submissions have the same id; pass --root so their paths differ")
        if book.meta("lab") not in (None, args.lab):
            raise UsageError(f"--out {out} holds the gradebook of {book.meta('lab')}; grade {args.lab} into "
                             "another --out")
        if stored is None:
            book.set_meta("root", str(root))
            book.set_meta("lab", args.lab)
        options = batch.Options(args.lab, only, args.timeout_scale, args.allow_unsandboxed, args.data)
        key = gradebook.grading_key(args.lab, options.key())
        hashes = {p: gradebook.content_hash(p, args.lab) for p in ids}
        todo = [(ids[p], str(p)) for p in ids if args.force or not book.is_current(ids[p], hashes[p], key)]
        print(f"{len(ids)} submissions under {root}: {len(todo)} to grade, {len(ids) - len(todo)} already "
              f"graded and unchanged{'' if args.force else ' (--force regrades them)'}")
        _bundled_data_note(lab, only, args.data)
        by_path = {str(p): p for p in ids}
        case_names = [c.name for c in lab.cases]

        def on_result(sub_id: str, path: str, result: LabResult) -> None:
            folder = out / "submissions" / sub_id
            report.write_submission(result, folder, sub_id)
            reason = result.cases[0].output if result.isolation.startswith("none") and result.cases else ""
            if not reason and result.import_error:  # graded (0), and the gradebook says why at a glance
                last = [line for line in result.import_error.splitlines() if line.strip()][-1:] or [""]
                reason = f"the package could not be imported: {last[0].strip()}"
            book.put(gradebook.Row(sub_id, path, args.lab, result.score, result.max_score,
                                   {c.name: c.score for c in result.cases}, result.isolation,
                                   datetime.now(UTC).isoformat(timespec="seconds"),
                                   result.seconds, hashes[by_path[path]], key, reason))
            book.export_csv(case_names=case_names)  # the CSV is current after every submission, too
            if args.details:
                print(report.table(result) + "\n")

        progress = not args.no_progress and sys.stderr.isatty()  # a bar only where it can redraw itself
        if args.scheduler:
            batch.run_dask(todo, options, args.scheduler, args.jobs, on_result, progress=progress)
        else:
            batch.run_local(todo, options, args.jobs, on_result, progress=progress)
        csv_path = book.export_csv(case_names=case_names)
        rows = book.rows()
        summary = report.class_summary(rows, {c.name: c.points for c in lab.cases})
        gradebook.atomic_write_text(out / "summary.md", report.summary_markdown(summary, lab.title))
        gradebook.atomic_write_text(out / "summary.html", report.summary_html(summary, lab.title))
    finally:
        book.close()
    print(f"gradebook: {csv_path} ({len(rows)} submissions); feedback: {out / 'submissions'}/<id>/feedback.md; "
          f"class summary: {out / 'summary.md'}, {out / 'summary.html'}")
    graded_now = set(ids.values())
    for r in rows:
        if r.id in graded_now:
            why = f"  ({r.reason.splitlines()[0][:100]})" if r.reason else ""
            print(f"  {r.id:<30} {r.score:>6g} / {r.max_score:g}  [{r.isolation}]{why}")
    return 0


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
    _add_course_commands(sub)
    return parser


def _add_course_commands(sub: argparse._SubParsersAction) -> None:
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
    from grader.course import gradescope

    path = gradescope.build_zip(args.lab, Path(args.out))
    print(f"wrote {path}: upload it as the assignment's autograder (setup.sh + run_autograder)")
    return 0


def cmd_nbgrader_import(args: argparse.Namespace) -> int:
    from grader.course import nbgrader_bridge

    return nbgrader_bridge.run_import(Path(args.course_dir), args.assignment, lab=args.lab or args.assignment,
                                      regrade=args.regrade, allow_unsandboxed=args.allow_unsandboxed)


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
