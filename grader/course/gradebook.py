"""The instructor's gradebook: a SQLite store keyed by submission id, exported to CSV.

A submission's *id* is its path relative to the batch's root (``sec1/alice``, ``sec2/alice``,
``repos/alice-lab1``), never its base name, so two folders called ``alice`` keep two grades.
An id is printable and one-to-one: a byte that is not UTF-8 is spelled ``\\xe9`` and a backslash
of the name is doubled, so ``al\\xe9`` (the byte) and ``al\\\\xe9`` (a name spelled with a
backslash) are two ids.
The root is recorded in the store on first use, so regrading one student later gives the
same id as the whole-class run did.

Every change is one SQLite transaction, and every exported file is written to a temporary
name and renamed into place: a kill at any moment (``kill -9`` included) leaves the last
complete state, never half a row or half a CSV.

A row is skipped on a rerun when its *content hash* (the submission's files) and its *grading
key* (the lab's version: cases, reference, hidden seeds; and the grading options)
are unchanged, which makes ``gradelab grade`` resumable.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from grader import paths
from grader.text import printable

DB_NAME = "gradebook.sqlite"
CSV_NAME = "gradebook.csv"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grades (
    id TEXT PRIMARY KEY,        -- path relative to the root, e.g. sec1/alice
    path TEXT NOT NULL,         -- where it was graded from
    lab TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    cases TEXT NOT NULL,        -- JSON {case: points}
    isolation TEXT NOT NULL,
    graded_at TEXT NOT NULL,    -- UTC, ISO 8601
    seconds REAL NOT NULL,
    content_hash TEXT NOT NULL, -- sha256 of the submission's files
    grading_key TEXT NOT NULL,  -- sha256 of the lab version and the grading options
    reason TEXT NOT NULL        -- why it could not be graded ('' when it was)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- when each graded submission was handed in, and where that came from (grader/course/lateness.py)
CREATE TABLE IF NOT EXISTS submitted (id TEXT PRIMARY KEY, submitted_at TEXT NOT NULL, source TEXT NOT NULL);
-- the course's late policy applied to each row (`gradelab course`): kept apart from the raw grade
CREATE TABLE IF NOT EXISTS lateness (id TEXT PRIMARY KEY, days_late INTEGER NOT NULL, factor REAL NOT NULL,
                                     note TEXT NOT NULL);
-- an instructor's score for a submission, with the reason; a regrade never touches it
CREATE TABLE IF NOT EXISTS overrides (id TEXT PRIMARY KEY, score REAL NOT NULL, reason TEXT NOT NULL,
                                      set_at TEXT NOT NULL);
"""


@dataclass
class Row:
    id: str
    path: str
    lab: str
    score: float
    max_score: float
    cases: dict[str, float]
    isolation: str
    graded_at: str
    seconds: float
    content_hash: str
    grading_key: str
    reason: str = ""


def _walk_files(top: Path) -> list[Path]:
    """Regular files under ``top`` (symlinks skipped), sorted; iterative, so any depth is fine."""
    found: list[Path] = []
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.is_symlink():
                continue
            if e.is_dir(follow_symlinks=False):
                stack.append(Path(e.path))
            elif e.is_file(follow_symlinks=False):
                found.append(Path(e.path))
    return sorted(found, key=lambda p: os.fsencode(p))


def content_hash(submission: Path, lab: str) -> str:
    """sha256 over the relative names and bytes of every file of ``submission/<lab>``."""
    h = hashlib.sha256()
    top = Path(submission) / lab
    if not top.is_dir():
        return "no-package"
    for f in _walk_files(top):
        h.update(os.fsencode(f.relative_to(top)) + b"\0")
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023 - fh is this loop's file
                    h.update(chunk)
        except OSError as exc:
            h.update(f"unreadable: {exc}".encode(errors="backslashreplace"))
        h.update(b"\0")
    return h.hexdigest()


def lab_version(lab: str) -> str:
    """sha256 of what decides a grade besides the submission: the lab's cases, reference and
    hidden seeds. (Not the engine's source: after upgrading gradelab, regrade with --force.)"""
    h = hashlib.sha256()
    roots = [paths.tests_dir() / lab / "cases.py", paths.solutions_dir() / lab]
    for root in roots:
        files = [root] if root.is_file() else _walk_files(root) if root.is_dir() else []
        for f in files:
            if f.suffix in {".py", ".toml"}:
                h.update(os.fsencode(f.name) + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def grading_key(lab: str, options: dict[str, object]) -> str:
    """The lab's version plus the options that change a grade (cases, timeouts, data, isolation)."""
    return hashlib.sha256((lab_version(lab) + json.dumps(options, sort_keys=True, default=str)).encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Gradebook:
    """The store in ``<out>/gradebook.sqlite``."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.out / DB_NAME, timeout=60)
        self.db.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: a kill leaves the last commit
        self.db.execute("PRAGMA synchronous=FULL")
        with self.db:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def meta(self, key: str) -> str | None:
        found = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return found[0] if found else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, printable(value)))

    def get(self, sub_id: str) -> Row | None:
        found = self.db.execute("SELECT * FROM grades WHERE id = ?", (printable(sub_id),)).fetchone()
        return _row(found) if found else None

    def rows(self) -> list[Row]:
        return [_row(r) for r in self.db.execute("SELECT * FROM grades ORDER BY id")]

    def put(self, row: Row, handed_in: tuple[str, str] | None = None) -> None:
        """Inserts or replaces one submission's row, and when it was handed in (ISO 8601 UTC, and the
        source that said so), in one transaction."""
        values = (printable(row.id), printable(row.path), row.lab, float(row.score), float(row.max_score),
                  json.dumps(row.cases), printable(row.isolation), row.graded_at, float(row.seconds),
                  row.content_hash, row.grading_key, printable(row.reason))
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO grades VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", values)
            if handed_in is not None:
                self.db.execute("INSERT OR REPLACE INTO submitted VALUES (?, ?, ?)", (values[0], *handed_in))

    def times(self) -> dict[str, tuple[str, str]]:
        """{id: (submitted_at, source)}."""
        return {i: (w, s) for i, w, s in self.db.execute("SELECT id, submitted_at, source FROM submitted")}

    def put_lateness(self, sub_id: str, days_late: int, factor: float, note: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO lateness VALUES (?, ?, ?, ?)",
                            (printable(sub_id), int(days_late), float(factor), note))

    def lateness(self) -> dict[str, tuple[int, float, str]]:
        """{id: (days late, factor on the score, note)} as last applied by ``gradelab course``."""
        return {i: (d, f, n) for i, d, f, n in self.db.execute("SELECT id, days_late, factor, note FROM lateness")}

    def set_override(self, sub_id: str, score: float | None, reason: str, at: str) -> None:
        """Sets (or, with ``score`` None, removes) the instructor's score for ``sub_id``."""
        with self.db:
            if score is None:
                self.db.execute("DELETE FROM overrides WHERE id = ?", (printable(sub_id),))
            else:
                self.db.execute("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?)",
                                (printable(sub_id), float(score), printable(reason), at))

    def overrides(self) -> dict[str, tuple[float, str, str]]:
        """{id: (score, reason, set_at)}."""
        return {i: (s, r, a) for i, s, r, a in self.db.execute("SELECT id, score, reason, set_at FROM overrides")}

    def final_score(self, row: Row) -> tuple[float, str]:
        """(the score that counts, why it differs from the raw score): an override wins, else the
        late policy's factor, else the raw score."""
        over = self.overrides().get(row.id)
        if over is not None:
            return over[0], f"override: {over[1]}"
        late = self.lateness().get(row.id)
        if late is not None and late[0] > 0:
            return round(row.score * late[1], 6), late[2]
        return row.score, ""

    def is_current(self, sub_id: str, chash: str, key: str) -> bool:
        """True if this id was graded from these exact files with this lab version and options."""
        row = self.get(sub_id)
        return row is not None and row.content_hash == chash and row.grading_key == key

    def export_csv(self, path: Path | None = None, case_names: Sequence[str] = ()) -> Path:
        """Every row as ``gradebook.csv`` (atomically): id, the raw score, max, each case's points,
        isolation, time, hash and reason; when it was handed in and from which source; the days late
        and the final score (after the late policy or an override) with what was applied."""
        rows = self.rows()
        names = list(case_names) or list(dict.fromkeys(n for r in rows for n in r.cases))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["submission", "score", "max_score", *names, "isolation", "graded_at", "seconds",
                    "content_hash", "reason", "path", "submitted_at", "time_source", "days_late", "final_score",
                    "adjustment"])
        times, late = self.times(), self.lateness()
        for r in rows:
            final, why = self.final_score(r)
            when, source = times.get(r.id, ("", ""))
            w.writerow([r.id, f"{r.score:g}", f"{r.max_score:g}",
                        *(f"{r.cases[n]:g}" if n in r.cases else "" for n in names),
                        r.isolation, r.graded_at, f"{r.seconds:.2f}", r.content_hash, r.reason, r.path,
                        when, source, late[r.id][0] if r.id in late else "", f"{final:g}", why])
        target = Path(path) if path else self.out / CSV_NAME
        atomic_write_text(target, buf.getvalue())
        return target


def _row(r: Iterable[object]) -> Row:
    (id_, path, lab, score, max_score, cases, isolation, graded_at, seconds, chash, key, reason) = r
    return Row(str(id_), str(path), str(lab), float(score), float(max_score), json.loads(str(cases)),
               str(isolation), str(graded_at), float(seconds), str(chash), str(key), str(reason))


def submission_ids(submissions: Sequence[Path], root: Path | None) -> tuple[Path, dict[Path, str]]:
    """(root, {resolved submission folder: id}). Without ``root``, the deepest folder holding
    every submission's parent is the root. Raises ValueError when a submission is outside ``root``."""
    resolved = [Path(os.path.abspath(s)) for s in submissions]
    if root is None:
        root = Path(os.path.commonpath([str(p.parent) for p in resolved]))
    root = Path(os.path.abspath(root))
    ids: dict[Path, str] = {}
    for p in resolved:
        try:
            rel = p.relative_to(root)
        except ValueError:
            raise ValueError(f"{p} is not inside the gradebook's root {root}: ids are paths relative "
                             "to it; grade it into another --out, or pass --root") from None
        ids[p] = _printable_id(rel.as_posix() if str(rel) != "." else p.name)
    return root, ids


def _printable_id(name: str) -> str:
    """``printable`` made one-to-one for file names: a name's own backslashes are doubled first,
    so only an undecodable byte is spelled with a single backslash (``\\xe9``)."""
    return printable(name.replace("\\", "\\\\"))
