"""Issue 15, items 3 and 9: the instructor's batch paths hold against what a class hands in.

Real parts only: real `gradelab grade` runs (and ``grade_class``, the same code without the
command line) on real folders, sandboxed grading, a real nbgrader course directory read back
with nbgrader's own API. Each test reproduces one way a grade was lost or a batch refused."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from grader import paths
from grader.cli import main as cli_main
from grader.course import gradebook, nbgrader_bridge
from grader.course.grading import FORCED, grade_class
from grader.course.submission import Options
from grader.isolation.loading import load_cases

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab1", paths.tests_dir())
CASES = ("linear_forward", "relu_forward")
FAST = ["--case", CASES[0], "--case", CASES[1], "--timeout-scale", "0.1", "--no-progress"]
OPTIONS = Options("lab1", CASES, 0.1)
RELU_BUG = ("        return np.where(self._mask, x, 0.0)\n", "        return np.where(self._mask, x, 0.0) + 1\n")
ROOT = paths.project_root()


def grade(*args: str | Path) -> int:
    return cli_main(["grade", "lab1", *map(str, args), *FAST])


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return {r["submission"]: r for r in csv.DictReader(f)}


# --------------------------------------------------------------------------- ids


def test_an_undecodable_name_and_its_escaped_spelling_are_two_students(sandbox, patched_reference, tmp_path) -> None:
    """b"al\\xe9" used to print as al\\xe9, the id of the folder literally named that way: the
    whole batch was refused, and no --root could separate them."""
    raw = patched_reference(os.fsdecode(b"subs/al\xe9"), {})
    spelled = patched_reference("subs/al\\xe9", {"layers.py": [RELU_BUG]})
    out = tmp_path / "out"
    assert grade(raw, spelled, "--out", out) == 0
    got = rows(out)
    assert {k: v["score"] for k, v in got.items()} == {"al\\xe9": "7", "al\\\\xe9": "4"}
    assert got["al\\xe9"]["path"].endswith("al\\xe9") and got["al\\\\xe9"]["path"].endswith("al\\xe9")
    for sid in got:  # each has its own feedback folder
        assert json.loads((out / "submissions" / sid / "results.json").read_text())["score"] == float(got[sid]["score"])
    # the same ids on a rerun: nothing to grade
    run = grade_class(LAB, [raw, spelled], out, OPTIONS, log=lambda _: None)
    assert run.graded == 0 and sorted(run.ids) == ["al\\\\xe9", "al\\xe9"]


# --------------------------------------------------------------------------- links


def test_a_folder_linked_to_another_students_is_flagged_not_credited(sandbox, patched_reference, tmp_path) -> None:
    alice = patched_reference("subs/alice", {})
    mallory = tmp_path / "subs" / "mallory"
    mallory.symlink_to(alice, target_is_directory=True)
    out = tmp_path / "out"
    assert grade(alice, mallory, "--out", out) == 0
    got = rows(out)
    assert got["alice"]["score"] == "7" and got["alice"]["reason"] == ""
    assert got["mallory"]["score"] == "0", "a link to alice's folder was credited with alice's work"
    assert "link to the folder of alice" in got["mallory"]["reason"] and got["mallory"]["max_score"] == "7"
    assert "link to the folder of alice" in (out / "submissions" / "mallory" / "feedback.md").read_text()
    # graded alone later into the same gradebook, it is still alice's folder
    trudy = tmp_path / "subs" / "trudy"
    trudy.symlink_to(Path("alice"), target_is_directory=True)
    assert grade(trudy, "--out", out) == 0
    assert rows(out)["trudy"]["score"] == "0" and "of alice" in rows(out)["trudy"]["reason"]


# --------------------------------------------------------------------------- the content hash


def test_the_hash_is_of_the_bytes_that_were_graded(sandbox, patched_reference, tmp_path) -> None:
    """bob's files are swapped for a buggy version while the batch runs, and restored after he is
    graded. His row must not say "unchanged" on the rerun: it holds the grade of the transient files."""
    alice = patched_reference("subs/alice", {})
    bob = patched_reference("subs/bob", {})
    layers = bob / "lab1" / "layers.py"
    good = layers.read_text()
    out = tmp_path / "out"

    def swap(result) -> None:
        if result.impl.endswith("alice"):  # bob is not started yet (one job): he will be graded buggy
            layers.write_text(good.replace(*RELU_BUG))
        else:
            layers.write_text(good)  # restored right after he was graded

    first = grade_class(LAB, [alice, bob], out, OPTIONS, on_graded=swap, log=lambda _: None)
    assert first.graded == 2 and {r.id: r.score for r in first.rows} == {"alice": 7, "bob": 4}
    assert layers.read_text() == good
    lines: list[str] = []
    again = grade_class(LAB, [alice, bob], out, OPTIONS, log=lines.append)
    assert "1 to grade, 1 already graded" in lines[0], lines
    assert {r.id: r.score for r in again.rows} == {"alice": 7, "bob": 7}
    row = {r.id: r for r in again.rows}["bob"]
    assert row.content_hash == gradebook.content_hash(bob, "lab1")


# --------------------------------------------------------------------------- files among the submissions


def _zip_folder(folder: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, f"{prefix}{f.relative_to(folder.parent).as_posix()}")
    return archive


def test_zips_are_unpacked_and_other_files_score_0_with_the_reason(sandbox, patched_reference, tmp_path,
                                                                   capsys) -> None:
    alice = patched_reference("subs/alice", {})
    made = patched_reference("made/bob", {"layers.py": [RELU_BUG]})
    subs = tmp_path / "subs"
    bob = _zip_folder(made / "lab1", subs / "bob.zip", "bob-main/")  # a zip nobody unpacked
    carol = subs / "carol"
    carol.mkdir()
    _zip_folder(alice / "lab1", carol / "lab1.zip", "")  # a folder holding the zip
    notes = subs / "dave.txt"
    notes.write_text("I did not finish\n")
    broken = subs / "erin.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out"
    assert grade(alice, bob, carol, notes, broken, "--out", out) == 0, capsys.readouterr().err
    got = rows(out)
    assert {k: v["score"] for k, v in got.items()} == {"alice": "7", "bob.zip": "4", "carol": "7", "dave.txt": "0",
                                                       "erin.zip": "0"}
    assert got["bob.zip"]["reason"] == "" and got["carol"]["reason"] == ""
    assert "dave.txt is neither a folder nor a zip" in got["dave.txt"]["reason"]
    assert {v["max_score"] for v in got.values()} == {"7"}  # a 0 row is out of the cases this run grades
    assert "erin.zip" in got["erin.zip"]["reason"] and got["erin.zip"]["isolation"].startswith("none")
    assert "found in bob.zip" in (out / "submissions" / "bob.zip" / "feedback.md").read_text()
    capsys.readouterr()
    assert grade(alice, bob, carol, notes, broken, "--out", out) == 0  # unchanged zips are not graded again
    assert "0 to grade, 5 already graded and unchanged" in capsys.readouterr().out


# --------------------------------------------------------------------------- an interrupted --force


class Interrupted(Exception):
    pass


def test_an_interrupted_force_regrade_is_finished_by_the_rerun(sandbox, patched_reference, tmp_path) -> None:
    subs = [patched_reference(f"subs/{n}", {}) for n in ("alice", "bob", "carol")]
    out = tmp_path / "out"
    assert grade_class(LAB, subs, out, OPTIONS, log=lambda _: None).graded == 3

    def stop(result) -> None:
        raise Interrupted  # as Ctrl-C (or a kill) after the first regraded row

    with pytest.raises(Interrupted):
        grade_class(LAB, subs, out, OPTIONS, force=True, on_graded=stop, log=lambda _: None)
    lines: list[str] = []
    rerun = grade_class(LAB, subs, out, OPTIONS, log=lines.append)
    assert rerun.graded == 2, lines  # bob and carol: not "already graded and unchanged"
    assert "2 to grade, 1 already graded" in lines[0] and "left by an interrupted --force" in lines[0]
    lines.clear()
    assert grade_class(LAB, subs, out, OPTIONS, log=lines.append).graded == 0
    book = gradebook.Gradebook(out)
    assert json.loads(book.meta(FORCED)) == []
    book.close()


# --------------------------------------------------------------------------- kill -9


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    stack = [pid]
    while stack:
        for c in _children(stack.pop()):
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_kill_9_of_the_grader_ends_its_workers(sandbox, patched_reference, tmp_path) -> None:
    """One worker idle (its submission done), one grading a slow one: both end with the grader."""
    init = (paths.solutions_dir() / "lab1" / "__init__.py").read_text().splitlines(keepends=True)[0]
    fast = patched_reference("subs/a_fast", {})
    slow = patched_reference("subs/b_slow", {"__init__.py": [(init, "import time; time.sleep(40)\n" + init)]})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader.cli", "grade", "lab1", str(fast), str(slow), "--out", str(out),
           "--jobs", "2", "--case", "relu_forward", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    family: set[int] = set()
    try:
        deadline, done = time.monotonic() + 90, 0
        while time.monotonic() < deadline and proc.poll() is None and not done:
            time.sleep(0.3)
            if (out / gradebook.DB_NAME).is_file():
                with sqlite3.connect(out / gradebook.DB_NAME, timeout=30) as con:
                    try:
                        done = con.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
                    except sqlite3.OperationalError:
                        done = 0
        assert done == 1 and proc.poll() is None, "the fast submission was not graded while the slow one ran"
        family = _descendants(proc.pid)
        workers = [p for p in family if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")]
        assert len(workers) == 2, f"expected two pool workers, found {workers}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20  # the slow submission alone would keep a worker busy for 40 s
        while time.monotonic() < deadline and any(_alive(p) for p in family):
            time.sleep(0.2)
        left = sorted(p for p in family if _alive(p))
        assert not left, f"processes of the killed grader still run: {left}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in family:  # only what this test started
            if _alive(p):
                os.kill(p, signal.SIGKILL)


# --------------------------------------------------------------------------- nbgrader import


def _need_nbgrader() -> None:
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the nbgrader extra is required in CI (scripts/setup.sh installs it)")
        pytest.skip("the nbgrader extra is not installed")


@pytest.mark.slow
def test_nbgrader_import_follows_no_link_and_skips_only_the_broken_student(tmp_path, capsys) -> None:
    """alice links solutions/ into her folder; bob's folder holds a symlink loop; mallory's
    assignment folder is a link to alice's. Before: alice's autograded copy held every hidden.toml
    and instructor/, and bob's loop ended the import, so carol was never imported."""
    _need_nbgrader()
    if not paths.solutions_dir().is_dir():
        pytest.skip("no solutions/ (student release)")
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "trust"\n')
    nbgrader_bridge.write_source(course, "lab1", ROOT)
    submitted = course / "submitted"
    for student in ("alice", "bob", "carol"):
        shutil.copytree(course / "source" / "lab1", submitted / student / "lab1")
    (submitted / "alice" / "lab1" / "answers").symlink_to(paths.solutions_dir(), target_is_directory=True)
    (submitted / "alice" / "lab1" / "lab1" / "ref").symlink_to(paths.solutions_dir() / "lab1")
    (submitted / "bob" / "lab1" / "lab1" / "loop").symlink_to(Path("."), target_is_directory=True)
    (submitted / "mallory").mkdir()
    (submitted / "mallory" / "lab1").symlink_to(submitted / "alice" / "lab1", target_is_directory=True)
    lines: list[str] = []
    assert nbgrader_bridge.run_import(course, "lab1", log=lines.append) == 1
    err = capsys.readouterr().err
    assert "mallory: not imported" in err and "is a symlink" in err, err

    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in ("alice", "bob", "carol"):
            assert gb.find_submission("lab1", student).max_score == 100, "\n".join(lines)
        with pytest.raises(MissingEntry):
            gb.find_submission("lab1", "mallory")
    autograded = course / "autograded"
    names = [p.name for p in autograded.rglob("*")]
    assert "hidden.toml" not in names and "instructor" not in names and "mistakes.py" not in names
    assert not [p for p in autograded.rglob("*") if p.is_symlink()]
    assert sorted(p.name for p in autograded.iterdir()) == ["alice", "bob", "carol"]
    assert (autograded / "carol" / "lab1" / "lab1.ipynb").is_file()
    feedback = (course / "gradelab" / "lab1" / "alice.txt").read_text()
    assert "answers (a symlink" in feedback and "lab1/ref (a symlink" in feedback
    assert "loop (a symlink" in (course / "gradelab" / "lab1" / "bob.txt").read_text()
    # the rerun skips the imported students and reports mallory again
    again: list[str] = []
    assert nbgrader_bridge.run_import(course, "lab1", log=again.append) == 1
    assert sum("skipped" in line for line in again) == 3, again
