"""One gradebook for the whole course: every lab's grades, deadlines and late policy, a roster,
overrides, and the exports an LMS imports.

The course file (TOML) names each lab's gradebook (the ``--out`` of ``gradelab grade``), its
deadline and late policy, and how a submission id maps to a student::

    [course]
    name = "Deep learning, spring 2027"
    roster = "roster.csv"            # id,name,email,sis_id[,sis_login_id,section,canvas_id]

    [labs.lab1]
    gradebook = "grades/lab1"        # relative to the course file
    deadline = "2027-02-01T23:59:00+00:00"
    late_days = 3                    # accepted this many days late ...
    penalty_per_day = 10             # ... at 10% of the score per started day
    # cutoff = "2027-02-03T12:00:00+00:00"   (default: deadline + late_days)
    student = "(?P<student>[^/]+)$"  # the student's roster id in the submission id (default: its last part)
    [labs.lab1.extensions]
    alice = "2027-02-03T23:59:00+00:00"   # a student's own deadline

``gradelab course COURSE.toml`` applies each lab's policy to its gradebook (the raw score stays;
the days late and the factor are stored beside it, so ``gradebook.csv`` shows raw, lateness and
final), then writes into ``--out``: ``course.csv`` (student x lab final scores and the total),
``course.md``, ``canvas.csv`` (Canvas's gradebook import: Student, ID, SIS User ID, SIS Login
ID, Section, one column per lab, a "Points Possible" row) and ``grades.csv`` (plain: one row per
student and lab). ``gradelab override COURSE.toml LAB ID SCORE --reason ...`` sets an instructor's
score, kept in the lab's store across regrades.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import gradebook
from .lateness import LatePolicy, lateness, parse_time

ROSTER_COLUMNS = ("id", "name", "email", "sis_id")  # required; sis_login_id, section, canvas_id optional
CANVAS_FIXED = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


class CourseError(ValueError):
    """The course file or the roster is not usable; the message says where."""


@dataclass(frozen=True)
class LabEntry:
    name: str
    gradebook: Path
    policy: LatePolicy | None
    student_pattern: re.Pattern[str]
    extensions: dict[str, datetime] = field(default_factory=dict)

    def student_of(self, sub_id: str) -> str:
        """The roster id of submission ``sub_id`` (the pattern's ``student`` group, or the whole match)."""
        m = self.student_pattern.search(sub_id)
        if not m:
            return sub_id
        return m.groupdict().get("student") or m.group(0)

    def policy_for(self, student: str) -> LatePolicy | None:
        if self.policy is None or student not in self.extensions:
            return self.policy
        new = self.extensions[student]
        shift = new - self.policy.deadline
        cutoff = self.policy.cutoff + shift if self.policy.cutoff else None
        return LatePolicy(new, self.policy.late_days, self.policy.penalty_per_day, cutoff)


@dataclass(frozen=True)
class Student:
    id: str
    name: str = ""
    email: str = ""
    sis_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    canvas_id: str = ""


@dataclass(frozen=True)
class Course:
    name: str
    labs: list[LabEntry]
    roster: dict[str, Student]


def _time(value: object, where: str) -> datetime:
    try:
        return parse_time(str(value))
    except ValueError as exc:
        raise CourseError(f"{where}: {value!r} is not a date and time (ISO 8601, e.g. "
                          "2027-02-01T23:59:00+00:00)") from exc


def load_roster(path: Path) -> dict[str, Student]:
    """{id: Student} from a CSV whose header has at least id, name, email, sis_id."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except OSError as exc:
        raise CourseError(f"roster {path}: {exc.strerror or exc}") from exc
    if rows and (missing := [c for c in ROSTER_COLUMNS if c not in rows[0]]):
        raise CourseError(f"roster {path}: no column {', '.join(missing)} (needs {', '.join(ROSTER_COLUMNS)})")
    roster: dict[str, Student] = {}
    for n, r in enumerate(rows, start=2):
        sid = (r.get("id") or "").strip()
        if not sid:
            raise CourseError(f"roster {path}, line {n}: empty id")
        if sid in roster:
            raise CourseError(f"roster {path}, line {n}: id {sid!r} appears twice")
        roster[sid] = Student(sid, *((r.get(k) or "").strip() for k in
                                     ("name", "email", "sis_id", "sis_login_id", "section", "canvas_id")))
    return roster


def load_course(path: Path) -> Course:
    """Reads and checks the course file (see the module's docstring)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise CourseError(f"{path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CourseError(f"{path}: not valid TOML ({exc})") from exc
    here = Path(path).resolve().parent
    meta = data.get("course", {})
    labs = []
    for name, entry in sorted(data.get("labs", {}).items()):
        where = f"{path} [labs.{name}]"
        if "gradebook" not in entry:
            raise CourseError(f"{where}: no gradebook (the --out folder of `gradelab grade {name}`)")
        policy = None
        if "deadline" in entry:
            policy = LatePolicy(_time(entry["deadline"], f"{where} deadline"), int(entry.get("late_days", 0)),
                                float(entry.get("penalty_per_day", 0.0)),
                                _time(entry["cutoff"], f"{where} cutoff") if "cutoff" in entry else None)
            if policy.penalty_per_day < 0 or policy.late_days < 0:
                raise CourseError(f"{where}: late_days and penalty_per_day must be >= 0")
        try:
            pattern = re.compile(entry.get("student", r"[^/]+$"))
        except re.error as exc:
            raise CourseError(f"{where} student: not a regular expression ({exc})") from exc
        ext = {k: _time(v, f"{where} extensions.{k}") for k, v in entry.get("extensions", {}).items()}
        labs.append(LabEntry(name, here / entry["gradebook"], policy, pattern, ext))
    if not labs:
        raise CourseError(f"{path}: no [labs.NAME] table")
    roster = load_roster(here / meta["roster"]) if "roster" in meta else {}
    return Course(str(meta.get("name", Path(path).stem)), labs, roster)


@dataclass
class Cell:
    """One student's result in one lab."""

    raw: float
    final: float
    max_score: float
    note: str  # lateness or override, '' when the raw score counts
    submission: str  # the submission id it comes from


def apply_policies(course: Course, log: Callable[[str], None] = print) -> dict[str, dict[str, Cell]]:
    """Applies each lab's late policy to its gradebook (stored beside the raw scores, CSV re-exported)
    and returns {student: {lab: Cell}}. Two submissions of one student in a lab: the higher final counts."""
    table: dict[str, dict[str, Cell]] = {}
    for lab in course.labs:
        if not (lab.gradebook / gradebook.DB_NAME).is_file():
            raise CourseError(f"{lab.name}: no gradebook in {lab.gradebook} (run `gradelab grade {lab.name} ... "
                              f"--out {lab.gradebook}` first)")
        book = gradebook.Gradebook(lab.gradebook)
        try:
            times = book.times()
            for row in book.rows():
                student = lab.student_of(row.id)
                policy = lab.policy_for(student)
                if policy is not None:
                    when = parse_time(times[row.id][0]) if row.id in times else None
                    late = lateness(policy, when)
                    book.put_lateness(row.id, late.days_late, late.factor, late.note)
                final, note = book.final_score(row)
                cell = Cell(row.score, final, row.max_score, note, row.id)
                old = table.setdefault(student, {}).get(lab.name)
                if old is None or cell.final > old.final:
                    table[student][lab.name] = cell
            book.export_csv()
        finally:
            book.close()
        unknown = sorted(s for s in table if course.roster and s not in course.roster and lab.name in table[s])
        if unknown:
            log(f"warning: {lab.name}: {len(unknown)} submission(s) match no roster id: {', '.join(unknown[:10])}")
    return table


def _fmt(x: float) -> str:
    return f"{x:g}"


def write_exports(course: Course, table: dict[str, dict[str, Cell]], out: Path) -> list[Path]:
    """course.csv, course.md, canvas.csv and grades.csv in ``out`` (atomically); returns their paths."""
    labs = [lab.name for lab in course.labs]
    maxes = {n: max((c[n].max_score for c in table.values() if n in c), default=100.0) for n in labs}
    students = sorted(set(table) | set(course.roster))
    total_max = sum(maxes.values())

    def final(s: str, n: str) -> float:
        cell = table.get(s, {}).get(n)
        return cell.final if cell else 0.0  # missing work counts 0, shown as such

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "name", "section", *labs, "total", "max_total", "notes"])
    for s in students:
        info = course.roster.get(s, Student(s))
        notes = "; ".join(f"{n}: {c.note}" for n, c in sorted(table.get(s, {}).items()) if c.note)
        missing = [n for n in labs if n not in table.get(s, {})]
        if missing:
            notes = "; ".join(filter(None, [notes, "no submission: " + ", ".join(missing)]))
        w.writerow([s, info.name, info.section, *(_fmt(final(s, n)) for n in labs),
                    _fmt(round(sum(final(s, n) for n in labs), 6)), _fmt(total_max), notes])
    paths = [out / "course.csv"]
    gradebook.atomic_write_text(paths[-1], buf.getvalue())

    md = [f"# {course.name}", "", f"| student | {' | '.join(labs)} | total |", "|---" * (len(labs) + 2) + "|"]
    for s in students:
        cells = [(f"{final(s, n):g}" + ("*" if table.get(s, {}).get(n, Cell(0, 0, 0, "", "")).note else ""))
                 if n in table.get(s, {}) else "-" for n in labs]
        md.append(f"| {s} | {' | '.join(cells)} | {sum(final(s, n) for n in labs):g} / {total_max:g} |")
    md += ["", "`*`: late policy or override applied (course.csv's notes say which); `-`: no submission (0)."]
    paths.append(out / "course.md")
    gradebook.atomic_write_text(paths[-1], "\n".join(md) + "\n")

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*CANVAS_FIXED, *labs])
    w.writerow(["    Points Possible", "", "", "", "", *(_fmt(maxes[n]) for n in labs)])
    for s in students:
        info = course.roster.get(s, Student(s))
        w.writerow([info.name or s, info.canvas_id, info.sis_id, info.sis_login_id or info.email, info.section,
                    *(_fmt(final(s, n)) for n in labs)])
    paths.append(out / "canvas.csv")
    gradebook.atomic_write_text(paths[-1], buf.getvalue())

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["student", "email", "sis_id", "lab", "raw_score", "final_score", "max_score", "note", "submission"])
    for s in students:
        info = course.roster.get(s, Student(s))
        for n in labs:
            c = table.get(s, {}).get(n)
            w.writerow([s, info.email, info.sis_id, n, _fmt(c.raw) if c else "", _fmt(final(s, n)),
                        _fmt(maxes[n]), c.note if c else "no submission", c.submission if c else ""])
    paths.append(out / "grades.csv")
    gradebook.atomic_write_text(paths[-1], buf.getvalue())
    return paths


def run(course_file: Path, out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """``gradelab course``: apply the policies, write the exports."""
    course = load_course(course_file)
    table = apply_policies(course, log)
    return write_exports(course, table, out)


def override(course_file: Path, lab: str, sub_id: str, score: float | None, reason: str, at: str) -> str:
    """``gradelab override``: sets (or clears) an instructor's score; returns what was done."""
    course = load_course(course_file)
    entry = next((e for e in course.labs if e.name == lab), None)
    if entry is None:
        raise CourseError(f"{course_file} has no lab {lab!r}; its labs: {', '.join(e.name for e in course.labs)}")
    book = gradebook.Gradebook(entry.gradebook)
    try:
        row = book.get(sub_id)
        if row is None:
            known = ", ".join(r.id for r in book.rows()[:10])
            raise CourseError(f"{lab}: no submission {sub_id!r} in {entry.gradebook} (ids: {known} ...)")
        if score is not None and not 0 <= score <= row.max_score:
            raise CourseError(f"score {score:g} is outside 0..{row.max_score:g}")
        if score is not None and not reason.strip():
            raise CourseError("an override needs --reason (it is kept with the score)")
        book.set_override(sub_id, score, reason, at)
        book.export_csv()
    finally:
        book.close()
    return (f"{lab} {sub_id}: override {score:g} / {row.max_score:g} ({reason})" if score is not None
            else f"{lab} {sub_id}: override removed; the graded score counts again")
