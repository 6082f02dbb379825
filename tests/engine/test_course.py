"""The course across labs: when a submission was handed in (nbgrader, Gradescope, git, mtime), late
policies, the course gradebook, overrides kept across regrades, and the Canvas and plain exports,
on real `gradelab grade` runs into real SQLite stores."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.course import coursebook
from grader.course.lateness import LatePolicy, lateness, parse_time, submission_time
from grader.isolation.loading import load_cases

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = datetime(2027, 2, 1, 23, 59, tzinfo=UTC)
POLICY = LatePolicy(DEADLINE, late_days=3, penalty_per_day=10)


# ----------------------------------------------------------------------------- the late policy


@pytest.mark.parametrize(("after", "days", "factor"), [
    (timedelta(seconds=-1), 0, 1.0),       # on time
    (timedelta(0), 0, 1.0),                # at the deadline exactly
    (timedelta(minutes=1), 1, 0.9),        # a started day counts
    (timedelta(days=1), 1, 0.9),
    (timedelta(days=2, hours=1), 3, 0.7),
    (timedelta(days=3), 3, 0.7),           # the last accepted moment
    (timedelta(days=3, seconds=1), 4, 0.0),  # past the cut-off: 0
])
def test_late_policy(after: timedelta, days: int, factor: float) -> None:
    late = lateness(POLICY, DEADLINE + after)
    assert (late.days_late, late.factor) == (days, pytest.approx(factor))
    assert late.adjust(80) == pytest.approx(80 * factor)
    assert (late.note == "") == (days == 0)


def test_an_explicit_cutoff_and_an_unknown_time() -> None:
    policy = LatePolicy(DEADLINE, late_days=5, penalty_per_day=20, cutoff=DEADLINE + timedelta(hours=12))
    assert lateness(policy, DEADLINE + timedelta(hours=11)).factor == pytest.approx(0.8)
    assert lateness(policy, DEADLINE + timedelta(hours=13)).factor == 0
    assert lateness(policy, None).factor == 1.0  # nothing says when: not penalised


@pytest.mark.parametrize("text", ["2027-02-01 23:10:05.123456 UTC", "2027-02-01T23:10:05.123456Z",
                                  "2027-02-02T00:10:05.123456+01:00", "2027-02-01 23:10:05.123456"])
def test_times_in_every_format_mean_the_same_instant(text: str) -> None:
    assert parse_time(text) == datetime(2027, 2, 1, 23, 10, 5, 123456, tzinfo=UTC)


# ----------------------------------------------------------------------------- where the time comes from


def _package(folder: Path, lab: str = "lab1") -> Path:
    (folder / lab).mkdir(parents=True)
    (folder / lab / "__init__.py").write_text("")
    return folder


def test_submission_time_sources_in_order(tmp_path: Path) -> None:
    sub = _package(tmp_path / "s")
    old = datetime(2027, 1, 5, tzinfo=UTC).timestamp()
    os.utime(sub / "lab1" / "__init__.py", (old, old))
    got = submission_time(sub, "lab1")
    assert (got.when, got.source) == (datetime(2027, 1, 5, tzinfo=UTC), "mtime")

    stamp = "2027-01-20T10:00:00+00:00"
    env = {**os.environ, "GIT_COMMITTER_DATE": stamp, "GIT_AUTHOR_DATE": stamp}
    git = ["git", "-C", str(sub), "-c", "user.name=s", "-c", "user.email=s@example.invalid"]
    subprocess.run(["git", "init", "-q", str(sub)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "lab"], check=True, env=env)
    got = submission_time(sub, "lab1")
    assert (got.when, got.source) == (datetime(2027, 1, 20, 10, tzinfo=UTC), "git")

    (sub / "submission_metadata.json").write_text(json.dumps({"created_at": "2027-01-25T08:30:00.5-05:00"}))
    got = submission_time(sub, "lab1")
    assert (got.when, got.source) == (datetime(2027, 1, 25, 13, 30, 0, 500000, tzinfo=UTC), "gradescope")

    (sub / "timestamp.txt").write_text("2027-01-30 12:00:00.000000 UTC\n")
    assert submission_time(sub, "lab1").source == "nbgrader"

    (sub / "timestamp.txt").write_text("yesterday-ish")  # unparsable: the next source answers
    assert submission_time(sub, "lab1").source == "gradescope"
    assert submission_time(tmp_path / "empty", "lab1") is None


# ----------------------------------------------------------------------------- the course, end to end


def _gradelab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900, cwd=ROOT)


def _hand_in(root: Path, who: str, lab: str, when: str | None, impl: Path) -> Path:
    sub = root / who
    shutil.copytree(impl / lab, sub / lab)
    if when:
        (sub / "timestamp.txt").write_text(when)
    return sub


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.sandbox
def test_course_gradebook_late_policy_overrides_and_canvas_export(tmp_path: Path, solutions: Path) -> None:
    subs = tmp_path / "lab1-subs"
    on_time = "2027-02-01 20:00:00.000000 UTC"
    _hand_in(subs, "alice", "lab1", on_time, solutions)
    _hand_in(subs, "bob", "lab1", "2027-02-02 09:00:00.000000 UTC", solutions)     # 1 day late: x0.9
    _hand_in(subs, "carol", "lab1", "2027-02-09 09:00:00.000000 UTC", solutions)   # past the cut-off: 0
    _hand_in(subs, "dave", "lab1", on_time, ROOT / "labs")                          # the stubs: 0 however early
    cases = ["--case", "linear_forward", "--case", "relu_forward"]  # 8 points of 100: quick, still real grading
    done = _gradelab("grade", "lab1", *sorted(str(p) for p in subs.iterdir()), "--out", str(tmp_path / "g1"),
                     "--jobs", "2", "--no-progress", *cases)
    assert done.returncode == 0, done.stdout + done.stderr
    book = {r["submission"]: r for r in _csv(tmp_path / "g1" / "gradebook.csv")}
    assert book["bob"]["submitted_at"] == "2027-02-02T09:00:00+00:00" and book["bob"]["time_source"] == "nbgrader"

    (tmp_path / "roster.csv").write_text("id,name,email,sis_id,sis_login_id,section,canvas_id\n"
                                         "alice,Alice A,alice@uni.example,S1,alice1,sec1,101\n"
                                         "bob,Bob B,bob@uni.example,S2,bob2,sec1,102\n"
                                         "carol,Carol C,carol@uni.example,S3,carol3,sec2,103\n"
                                         "dave,Dave D,dave@uni.example,S4,dave4,sec2,104\n"
                                         "erin,Erin E,erin@uni.example,S5,erin5,sec2,105\n")
    course_file = tmp_path / "course.toml"
    course_file.write_text(f'''[course]
name = "Deep learning 2027"
roster = "roster.csv"

[labs.lab1]
gradebook = "g1"
deadline = "{DEADLINE.isoformat()}"
late_days = 3
penalty_per_day = 10
''')
    done = _gradelab("course", str(course_file), "--out", str(tmp_path / "course"))
    assert done.returncode == 0, done.stdout + done.stderr

    book = {r["submission"]: r for r in _csv(tmp_path / "g1" / "gradebook.csv")}  # raw, lateness, final
    raw = sum(load_cases("lab1", ROOT / "tests").get(c).points for c in cases[1::2])
    late = f"{raw * 0.9:g}"
    assert (book["alice"]["score"], book["alice"]["days_late"], book["alice"]["final_score"]) == (f"{raw:g}", "0",
                                                                                                    f"{raw:g}")
    assert (book["bob"]["score"], book["bob"]["days_late"], book["bob"]["final_score"]) == (f"{raw:g}", "1", late)
    assert "1 day(s) late" in book["bob"]["adjustment"]
    assert (book["carol"]["score"], book["carol"]["final_score"]) == (f"{raw:g}", "0")
    assert book["dave"]["score"] == "0"
    assert "cut-off" in book["carol"]["adjustment"]

    rows = {r["student"]: r for r in _csv(tmp_path / "course" / "course.csv")}
    assert rows["bob"]["lab1"] == late and rows["bob"]["total"] == late and rows["bob"]["section"] == "sec1"
    assert rows["erin"]["lab1"] == "0" and "no submission: lab1" in rows["erin"]["notes"]  # on the roster only

    with open(tmp_path / "course" / "canvas.csv", newline="") as f:
        canvas = list(csv.reader(f))
    assert canvas[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "lab1"]
    assert canvas[1][0].strip() == "Points Possible" and canvas[1][5] == f"{raw:g}"  # the graded cases' max
    assert ["Bob B", "102", "S2", "bob2", "sec1", late] in canvas

    # An override with its reason: it counts, and survives a forced regrade of everyone.
    done = _gradelab("override", str(course_file), "lab1", "carol", "6", "--reason", "medical extension")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _gradelab("override", str(course_file), "lab1", "carol", "7").returncode == 2  # no reason: refused
    assert _gradelab("override", str(course_file), "lab1", "nobody", "7", "--reason", "x").returncode == 2
    done = _gradelab("grade", "lab1", *sorted(str(p) for p in subs.iterdir()), "--out", str(tmp_path / "g1"),
                     "--jobs", "2", "--no-progress", "--force", *cases)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _gradelab("course", str(course_file), "--out", str(tmp_path / "course")).returncode == 0
    rows = {r["student"]: r for r in _csv(tmp_path / "course" / "course.csv")}
    assert rows["carol"]["lab1"] == "6" and "override: medical extension" in rows["carol"]["notes"]
    plain = [r for r in _csv(tmp_path / "course" / "grades.csv") if r["student"] == "carol"]
    assert plain[0]["raw_score"] == f"{raw:g}" and plain[0]["final_score"] == "6"

    done = _gradelab("override", str(course_file), "lab1", "carol", "--clear")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _gradelab("course", str(course_file), "--out", str(tmp_path / "course")).returncode == 0
    assert {r["student"]: r for r in _csv(tmp_path / "course" / "course.csv")}["carol"]["lab1"] == "0"


@pytest.mark.slow
@pytest.mark.sandbox
def test_two_labs_one_course_view_with_ids_mapped_and_an_extension(tmp_path: Path, solutions: Path) -> None:
    """Classroom clones named `<lab>-<student>` map to roster ids; a student's extension moves her deadline."""
    for lab, case in (("lab1", "linear_forward"), ("lab4", "sgd_plain")):
        subs = tmp_path / f"{lab}-repos"
        for who, when in (("alice", "2027-02-03 09:00:00.000000 UTC"), ("bob", "2027-02-01 09:00:00.000000 UTC")):
            _hand_in(subs, f"{lab}-{who}", lab, when, solutions)
        done = _gradelab("grade", lab, *sorted(str(p) for p in subs.iterdir()), "--out", str(tmp_path / lab),
                         "--no-progress", "--case", case)
        assert done.returncode == 0, done.stdout + done.stderr
    course_file = tmp_path / "course.toml"
    course_file.write_text(f'''[labs.lab1]
gradebook = "lab1"
deadline = "{DEADLINE.isoformat()}"
late_days = 5
penalty_per_day = 25
student = "lab1-(?P<student>.+)$"
[labs.lab1.extensions]
alice = "2027-02-04T00:00:00+00:00"

[labs.lab4]
gradebook = "lab4"
deadline = "{DEADLINE.isoformat()}"
late_days = 5
penalty_per_day = 25
student = "lab4-(?P<student>.+)$"
''')
    course = coursebook.load_course(course_file)
    table = coursebook.apply_policies(course, log=lambda _: None)
    assert set(table) == {"alice", "bob"}
    raw1, raw4 = table["alice"]["lab1"].raw, table["alice"]["lab4"].raw
    assert raw1 > 0 and raw4 > 0
    assert table["alice"]["lab1"].final == raw1                     # extended: on time
    assert table["alice"]["lab4"].final == pytest.approx(raw4 * 0.5)  # 2 days late at 25%
    assert table["bob"]["lab4"].final == table["bob"]["lab4"].raw
    coursebook.write_exports(course, table, tmp_path / "out")
    rows = {r["student"]: r for r in _csv(tmp_path / "out" / "course.csv")}
    assert float(rows["alice"]["total"]) == pytest.approx(raw1 + raw4 * 0.5)
    assert float(rows["alice"]["max_total"]) == table["alice"]["lab1"].max_score + table["alice"]["lab4"].max_score


def test_course_file_errors_are_messages(tmp_path: Path) -> None:
    bad = tmp_path / "course.toml"
    bad.write_text('[labs.lab1]\ngradebook = "g"\ndeadline = "next friday"\n')
    with pytest.raises(coursebook.CourseError, match="not a date and time"):
        coursebook.load_course(bad)
    bad.write_text("[labs.lab1]\n")
    with pytest.raises(coursebook.CourseError, match="no gradebook"):
        coursebook.load_course(bad)
    bad.write_text('[course]\nroster = "r.csv"\n[labs.lab1]\ngradebook = "g"\n')
    (tmp_path / "r.csv").write_text("id,name\nalice,A\n")
    with pytest.raises(coursebook.CourseError, match="no column email, sis_id"):
        coursebook.load_course(bad)
    (tmp_path / "r.csv").write_text("id,name,email,sis_id\nalice,A,a@x,1\nalice,B,b@x,2\n")
    with pytest.raises(coursebook.CourseError, match="appears twice"):
        coursebook.load_course(bad)
    (tmp_path / "r.csv").write_text("id,name,email,sis_id\nalice,A,a@x,1\n")
    with pytest.raises(coursebook.CourseError, match="no gradebook in"):
        coursebook.run(bad, tmp_path / "out")
    done = subprocess.run([sys.executable, "-m", "grader.cli", "course", str(bad)], capture_output=True, text=True)
    assert done.returncode == 2 and "no gradebook in" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.sandbox
def test_nbgrader_export_has_the_collect_timestamp(tmp_path: Path) -> None:
    """`nbgrader collect` writes timestamp.txt; the import passes it on, so `nbgrader export` shows it."""
    pytest.importorskip("nbgrader")
    from grader.course import nbgrader_bridge

    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "t"\n')
    nbgrader_bridge.write_source(course, "lab1", ROOT)
    sub = course / "submitted" / "alice" / "lab1"
    shutil.copytree(course / "source" / "lab1", sub)
    (sub / "timestamp.txt").write_text("2027-02-01 22:15:00.000000 UTC\n")
    assert nbgrader_bridge.run_import(course, "lab1", log=lambda _: None) == 0
    nbgrader = Path(sys.executable).parent / "nbgrader"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = f"{nbgrader.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run([str(nbgrader), "export"], cwd=course, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    row = _csv(course / "grades.csv")[0]
    assert row["student_id"] == "alice" and row["timestamp"].startswith("2027-02-01 22:15:00")
