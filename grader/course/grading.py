"""Grading a class: ``gradelab grade`` without the command line.

``grade_class`` takes a lab, submissions (folders, or zips of one) and an output folder, and does
what an instructor's batch run needs: ids relative to the batch's root (recorded on first use; one
id per path, see ``grader.course.gradebook``), resume (a submission whose content and grading key
are unchanged is skipped), every submission copied once, hashed and graded from that copy by
``grader.course.submission.grade_copy`` in parallel (``--jobs``) or on Dask, one gradebook
transaction per finished submission with its ``results.json`` and ``feedback.md``, and at the end
``gradebook.csv`` and the class summaries.

A path that does not exist, a root that does not fit, another lab's gradebook: ``BatchError``
before anything is graded. Anything about one submission is that submission's row: a file that is
not a zip is a 0 with the reason; a folder that is a link to another submission's folder (the same
files reached twice) is not graded as a separate student, its row is a 0 that names the folder it
links to (``linked_copies``). A ``--force`` regrade is recorded in the store before it starts (``forced_pending``):
an interrupted one is finished by the next run, whose rows it had not reached are not "unchanged".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from grader.judging.case import Lab
from grader.runner import LabResult

from . import batch, gradebook, lateness, report
from .submission import Graded, Options, source_hash, zero_for

FORCED = "forced_pending"  # meta key: JSON list of the ids a --force run has not regraded yet


class BatchError(ValueError):
    """The batch cannot be graded as asked (a missing path, a root that does not fit, another lab's gradebook)."""


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
        if not os.path.lexists(s):
            raise BatchError(f"{s}: no such submission folder")


def _reason(result: LabResult) -> str:
    """Why a submission scored what it did, at a glance: ungradable, or its package did not import."""
    reason = result.cases[0].output if result.isolation.startswith("none") and result.cases else ""
    if not reason and result.import_error:
        last = [line for line in result.import_error.splitlines() if line.strip()][-1:] or [""]
        reason = f"the package could not be imported: {last[0].strip()}"
    return reason


def linked_copies(ids: dict[Path, str], root: Path, known: Callable[[str], bool]) -> dict[Path, str]:
    """{submission: id of the folder it really is} for each submission reached through a symlink
    (its own name or a folder above it) whose real folder is another submission's: one of this
    run, or one inside the root that ``known`` (the gradebook) has a row for. A link to any other
    folder (a course's own layout: links to a share) is graded as the submission it names."""
    real_root = Path(os.path.realpath(root))
    reals = {p: os.path.realpath(p) for p in ids}
    direct = {reals[p]: ids[p] for p in ids if reals[p] == str(real_root / p.relative_to(root))}
    seen = dict(direct)
    linked: dict[Path, str] = {}
    for p in sorted(ids, key=lambda q: ids[q]):
        real = reals[p]
        if direct.get(real) == ids[p]:
            continue  # reached without a link
        if real in seen:
            linked[p] = seen[real]
            continue
        if Path(real).is_relative_to(real_root):
            target = gradebook.submission_ids([Path(real)], real_root)[1][Path(real)]
            if known(target):
                linked[p] = target
                continue
        seen[real] = ids[p]
    return linked


def _link_row(options: Options, path: Path, target: str) -> Graded:
    reason = (f"this submission is a link to the folder of {target}: the same files, not graded as a "
              "separate student (check who handed in what)")
    return Graded(zero_for(options, path, reason), f"link:{target}")


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
        if len(set(ids.values())) < len(ids):  # ids are one-to-one on paths: only a bug gets here
            raise BatchError("two submissions have the same id; pass --root so their paths differ")
        if book.meta("lab") not in (None, lab.name):
            raise BatchError(f"--out {out} holds the gradebook of {book.meta('lab')}; grade {lab.name} into "
                             "another --out")
        if stored is None:
            book.set_meta("root", str(top))
            book.set_meta("lab", lab.name)
        key = gradebook.grading_key(lab.name, options.key())
        links = linked_copies(ids, top, lambda sub_id: book.get(sub_id) is not None)
        hashes = {p: f"link:{links[p]}" if p in links else source_hash(p, lab.name) for p in ids}
        pending = set(json.loads(book.meta(FORCED) or "[]"))
        left_over = {ids[p] for p in ids} & pending
        if force:
            pending |= set(ids.values())
            book.set_meta(FORCED, json.dumps(sorted(pending)))  # before any grade: a kill leaves it to finish
        todo = [(ids[p], str(p)) for p in ids
                if ids[p] in pending or not book.is_current(ids[p], hashes[p], key)]
        log(f"{len(ids)} submissions under {top}: {len(todo)} to grade, {len(ids) - len(todo)} already "
            f"graded and unchanged{'' if force else ' (--force regrades them)'}"
            + (f"; {len(left_over)} of them left by an interrupted --force" if left_over and not force else ""))
        by_path = {str(p): p for p in ids}
        case_names = [c.name for c in lab.cases]

        def on_result(sub_id: str, path: str, graded: Graded) -> None:
            result = graded.result
            report.write_submission(result, out / "submissions" / sub_id, sub_id)
            when = lateness.submission_time(Path(path), lab.name)
            book.put(gradebook.Row(sub_id, path, lab.name, result.score, result.max_score,
                                   {c.name: c.score for c in result.cases}, result.isolation,
                                   datetime.now(UTC).isoformat(timespec="seconds"),
                                   result.seconds, graded.content_hash, key, _reason(result)),
                     (when.when.isoformat(timespec="seconds"), when.source) if when else None)
            if sub_id in pending:
                pending.discard(sub_id)
                book.set_meta(FORCED, json.dumps(sorted(pending)))
            book.export_csv(case_names=case_names)  # the CSV is current after every submission, too
            if on_graded is not None:
                on_graded(result)

        for sub_id, path in [t for t in todo if by_path[t[1]] in links]:  # nothing to run: the row says why
            on_result(sub_id, path, _link_row(options, by_path[path], links[by_path[path]]))
        work = [t for t in todo if by_path[t[1]] not in links]
        if scheduler:
            batch.run_dask(work, options, scheduler, jobs, on_result, progress=progress)
        else:
            batch.run_local(work, options, jobs, on_result, progress=progress)
        book.export_csv(case_names=case_names)
        rows = book.rows()
        report.write_summaries(out, rows, {c.name: c.points for c in lab.cases}, lab.title)
    finally:
        book.close()
    return ClassRun(out, top, len(todo), len(ids) - len(todo), rows, sorted(set(ids.values())))
