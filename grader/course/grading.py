"""Grading a class: ``gradelab grade`` without the command line.

``grade_class`` takes a lab, submission folders and an output folder, and does what an
instructor's batch run needs: ids relative to the batch's root (recorded on first use), resume
(a submission whose content and grading key are unchanged is skipped), every submission graded
by ``grader.course.submission.grade_submission`` in parallel (``--jobs``) or on Dask, one
gradebook transaction per finished submission with its ``results.json`` and ``feedback.md``, and
at the end ``gradebook.csv`` and the class summaries. Bad input raises ``BatchError`` before
anything is graded; nothing a submission does stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grader.judging.case import Lab
from grader.runner import LabResult

from . import batch, gradebook, lateness, report
from .submission import Options


class BatchError(ValueError):
    """The batch cannot be graded as asked (a missing folder, ids that collide, another lab's gradebook)."""


@dataclass
class ClassRun:
    """What a batch run did: where things are, and the rows of the submissions it was given."""

    out: Path
    root: Path
    graded: int
    skipped: int
    rows: list[gradebook.Row] = field(default_factory=list)  # every row in the gradebook
    ids: list[str] = field(default_factory=list)  # the ids of this run's submissions

    @property
    def csv(self) -> Path:
        return self.out / "gradebook.csv"


def _check_submissions(subs: Sequence[Path]) -> None:
    for s in subs:
        if not s.exists():
            raise BatchError(f"{s}: no such submission folder")
        if not s.is_dir():
            raise BatchError(f"{s}: not a folder; a submission is a folder laid out like labs/")


def _reason(result: LabResult) -> str:
    """Why a submission scored what it did, at a glance: ungradable, or its package did not import."""
    reason = result.cases[0].output if result.isolation.startswith("none") and result.cases else ""
    if not reason and result.import_error:
        last = [line for line in result.import_error.splitlines() if line.strip()][-1:] or [""]
        reason = f"the package could not be imported: {last[0].strip()}"
    return reason


def grade_class(lab: Lab, submissions: Sequence[Path], out: Path, options: Options, *,
                root: Path | None = None, force: bool = False, jobs: int = 1, scheduler: str | None = None,
                progress: bool = False, on_graded: Callable[[LabResult], None] | None = None,
                log: Callable[[str], None] = print) -> ClassRun:
    """Grades ``submissions`` into the gradebook in ``out`` (see the module's docstring)."""
    subs = list(dict.fromkeys(Path(s) for s in submissions))
    _check_submissions(subs)
    book = gradebook.Gradebook(out)
    try:
        stored = book.meta("root")
        if root and stored and Path(os.path.abspath(root)) != Path(stored):
            raise BatchError(f"--root {root}: the gradebook in {out} has ids relative to {stored}; "
                             "use that root, or another --out")
        try:
            top, ids = gradebook.submission_ids(subs, Path(root) if root else Path(stored) if stored else None)
        except ValueError as exc:
            raise BatchError(str(exc)) from exc
        if len(set(ids.values())) < len(ids):
            raise BatchError("two submissions have the same id; pass --root so their paths differ")
        if book.meta("lab") not in (None, lab.name):
            raise BatchError(f"--out {out} holds the gradebook of {book.meta('lab')}; grade {lab.name} into "
                             "another --out")
        if stored is None:
            book.set_meta("root", str(top))
            book.set_meta("lab", lab.name)
        key = gradebook.grading_key(lab.name, options.key())
        hashes = {p: gradebook.content_hash(p, lab.name) for p in ids}
        todo = [(ids[p], str(p)) for p in ids if force or not book.is_current(ids[p], hashes[p], key)]
        log(f"{len(ids)} submissions under {top}: {len(todo)} to grade, {len(ids) - len(todo)} already "
            f"graded and unchanged{'' if force else ' (--force regrades them)'}")
        by_path = {str(p): p for p in ids}
        case_names = [c.name for c in lab.cases]

        def on_result(sub_id: str, path: str, result: LabResult) -> None:
            report.write_submission(result, out / "submissions" / sub_id, sub_id)
            book.put(gradebook.Row(sub_id, path, lab.name, result.score, result.max_score,
                                   {c.name: c.score for c in result.cases}, result.isolation,
                                   datetime.now(UTC).isoformat(timespec="seconds"),
                                   result.seconds, hashes[by_path[path]], key, _reason(result)))
            handed_in = lateness.submission_time(Path(path), lab.name)
            if handed_in is not None:
                book.put_time(sub_id, handed_in.when.isoformat(timespec="seconds"), handed_in.source)
            book.export_csv(case_names=case_names)  # the CSV is current after every submission, too
            if on_graded is not None:
                on_graded(result)

        if scheduler:
            batch.run_dask(todo, options, scheduler, jobs, on_result, progress=progress)
        else:
            batch.run_local(todo, options, jobs, on_result, progress=progress)
        book.export_csv(case_names=case_names)
        rows = book.rows()
        report.write_summaries(out, rows, {c.name: c.points for c in lab.cases}, lab.title)
    finally:
        book.close()
    return ClassRun(out, top, len(todo), len(ids) - len(todo), rows, sorted(set(ids.values())))
