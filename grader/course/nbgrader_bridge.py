"""nbgrader as the course-management layer on top of gradelab's grading.

    pip install -e ".[nbgrader]"                       # nbgrader 0.9.x, optional
    gradelab nbgrader source --course-dir DIR LAB      # DIR/source/LAB/: the notebook + the stubs
    nbgrader generate_assignment LAB                   # nbgrader's own release (nothing to strip)
    ... students fetch, edit LAB/*.py, submit; nbgrader collect ...
    gradelab nbgrader import --course-dir DIR --assignment LAB

An assignment is the lab's notebook (grader/course/notebooks.py: one autograded cell per public case,
``grade_id`` ``<lab>_<case>``, the case's points) and the lab's package, ``LAB/``, beside it.
``import`` grades each ``submitted/<student>/<assignment>/`` (laid out like labs/: it holds the
``LAB/`` package) with ``gradelab``'s isolated grading (the sandboxed child, public and hidden
seeds, the reference computed live), and writes each case's score into nbgrader's gradebook
(``gradebook.db`` in the course directory, through ``nbgrader.api.Gradebook``) as the
auto score of the matching grade cell, so ``nbgrader export`` and the formgrader show them (the
submission is copied to ``autograded/<student>/<assignment>/`` for the formgrader to open).
``nbgrader autograde`` is not used: it runs the checks in the student's own kernel, where a
monkeypatched ``np.allclose`` earns full marks.

Ids and resuming follow ``gradelab grade``: the student id is nbgrader's (the folder name under
``submitted/``, unique in the course); a student is skipped on a rerun when the submission's
content hash and the lab's grading key (``grader.course.gradebook``) are those recorded at the last
import (``<course>/gradelab/<assignment>.json``, written atomically after each student), unless
``--regrade``. A submission that cannot be graded scores 0 with the reason in the feedback
file ``<course>/gradelab/<assignment>/<student>.txt``.

The import runs as whoever owns the course (often root) on folders students filled: each
submission is copied once without following any symlink (``submission.copy_without_links``: a
link to ``solutions/`` or a link loop is one skipped entry, named in the feedback), and that copy
is what is hashed, graded and handed to the formgrader. A student whose folder is itself a link,
or whose import fails for any other reason, is reported on stderr and skipped (exit status 1);
every other student is still imported.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from grader import paths
from grader.authoring import stubs
from grader.isolation.loading import load_cases
from grader.runner import GradingError

from . import gradebook
from .lateness import submission_time
from .notebooks import grade_id, write_notebook
from .report import table
from .submission import Options, copy_without_links, grade_submission

__all__ = ["run_import", "write_source"]


def write_source(course_dir: Path, lab: str, root: Path | None = None) -> Path:
    """``<course>/source/<lab>/``: the lab's notebook and its stubs (provided labs included)."""
    root = root or paths.project_root()
    dest = course_dir / "source" / lab
    dest.mkdir(parents=True, exist_ok=True)
    write_notebook(lab, dest / f"{lab}.ipynb", root=root)
    for rel, text in stubs.generate(root / "solutions", dest / "_none").items():
        if rel.parts[0] == lab:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(text)
    return dest


def _ensure_structure(gb, assignment: str, lab: str) -> list[tuple[str, float]]:
    """The assignment, its notebook and one grade cell per case (generate_assignment makes them
    too, from the notebook's metadata; this makes import work without it)."""
    cases = load_cases(lab, paths.tests_dir())
    gb.update_or_create_assignment(assignment)
    gb.update_or_create_notebook(lab, assignment)
    cells = [(grade_id(lab, c.name), float(c.points)) for c in cases.cases]
    for name, points in cells:
        gb.update_or_create_grade_cell(name, lab, assignment, max_score=points, cell_type="code")
    return cells


def _state_path(course_dir: Path, assignment: str) -> Path:
    return course_dir / "gradelab" / f"{assignment}.json"


def run_import(course_dir: Path, assignment: str, *, lab: str | None = None, regrade: bool = False,
               allow_unsandboxed: bool = False, log=print) -> int:
    """Grades every submitted/<student>/<assignment>/ and records the scores; 0 when all were graded."""
    try:
        from nbgrader.api import Gradebook
    except ImportError:
        print("gradelab nbgrader: nbgrader is not installed: pip install -e \".[nbgrader]\"", file=sys.stderr)
        return 2
    # nbgrader runs its database migrations with the `alembic` command of its own environment
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    lab = lab or assignment
    submitted = course_dir / "submitted"
    students = sorted(p.name for p in submitted.iterdir() if p.is_dir() and os.path.lexists(p / assignment)) \
        if submitted.is_dir() else []
    if not students:
        print(f"gradelab nbgrader: no {submitted}/<student>/{assignment}/ folders", file=sys.stderr)
        return 2
    state_path = _state_path(course_dir, assignment)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    key = gradebook.grading_key(lab, {"isolated": True, "source": "nbgrader"})
    options = Options(lab, allow_unsandboxed=allow_unsandboxed)
    failed: list[str] = []
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}") as gb:
        cells = _ensure_structure(gb, assignment, lab)
        for student in students:
            sub = submitted / student / assignment
            if not regrade and state.get(student) == {"hash": gradebook.content_hash(sub, lab), "key": key}:
                log(f"  {student:<24} unchanged since the last import: skipped (--regrade to grade again)")
                continue
            try:
                line = _import_one(gb, course_dir, assignment, lab, student, sub, cells, options, state, key)
            except GradingError as exc:  # the grader's own set-up: the same for every student
                print(f"gradelab nbgrader: {exc}", file=sys.stderr)
                return 2
            except Exception as exc:  # noqa: BLE001 - one broken folder must not stop the class
                gb.db.rollback()
                failed.append(student)
                print(f"gradelab nbgrader: {gradebook.printable(student)}: not imported "
                      f"({type(exc).__name__}: {gradebook.printable(str(exc))}); the other students are",
                      file=sys.stderr)
                continue
            gradebook.atomic_write_text(state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
            log(line)
    log(f"imported {assignment} into {course_dir / 'gradebook.db'}; `nbgrader export` writes grades.csv"
        + (f"; NOT imported: {', '.join(map(gradebook.printable, failed))} (see above)" if failed else ""))
    return 1 if failed else 0


def _import_one(gb, course_dir: Path, assignment: str, lab: str, student: str, sub: Path,
                cells: list[tuple[str, float]], options: Options, state: dict, key: str) -> str:
    """Copies one student's submission without links, grades the copy, records the scores, the
    feedback and the formgrader's copy; updates ``state``; returns the line to log."""
    for folder in (sub.parent, sub):  # submitted/<student>, submitted/<student>/<assignment>
        if folder.is_symlink():
            raise ValueError(f"{folder.relative_to(sub.parent.parent)} is a symlink: a submission is a folder")
    with tempfile.TemporaryDirectory(prefix="gradelab-nbgrader-") as tmp:
        copy = Path(tmp) / assignment
        notes = copy_without_links(sub, copy)  # a link to solutions/, a loop: one note each, never followed
        chash = gradebook.content_hash(copy, lab)
        result = grade_submission(copy, options)
        result.impl = str(sub)
        result.notes = [gradebook.printable(n) for n in notes] + result.notes
        gb.update_or_create_student(student)
        handed_in = submission_time(sub, lab)  # nbgrader collect's timestamp.txt: `nbgrader export` shows it
        gb.update_or_create_submission(assignment, student,
                                       **({"timestamp": handed_in.when.replace(tzinfo=None)} if handed_in else {}))
        by_case = {grade_id(lab, c.name): c for c in result.cases}
        for name, _points in cells:
            g = gb.find_grade(name, lab, assignment, student)
            case = by_case.get(name)
            g.auto_score = case.score if case else 0.0
        gb.db.commit()
        feedback = course_dir / "gradelab" / assignment / f"{student}.txt"
        feedback.parent.mkdir(parents=True, exist_ok=True)
        gradebook.atomic_write_text(feedback, gradebook.printable(table(result)) + "\n")
        _copy_for_formgrader(copy, course_dir / "autograded" / student / assignment)
    state[student] = {"hash": chash, "key": key}
    return f"  {student:<24} {result.score:>6g} / {result.max_score:g}  [{result.isolation}]"


def _copy_for_formgrader(copy: Path, dest: Path) -> None:
    """The submission as ``autograded/<student>/<assignment>/`` (what ``nbgrader autograde`` would
    leave), so the formgrader can open the notebook next to the imported scores. Nothing is run;
    ``copy`` is the link-free copy that was graded, and is copied again without links."""
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)
    copy_without_links(copy, dest, ignore=lambda name: name == "__pycache__" or name.startswith("."))


def main_source(course_dir: Path, lab: str) -> int:
    dest = write_source(course_dir, lab)
    print(f"wrote {dest}: run `nbgrader generate_assignment {lab}` in {course_dir}")
    return 0
