"""`gradelab grade` as an instructor uses it: ids, the gradebook store, resume, regrade, outputs,
CLI errors, --data. Real sandboxed grading of patched copies of the reference, on a subset of
cases with short timeouts so each submission takes about a second."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grader import paths
from grader.cli import main as cli_main
from grader.course import batch, gradebook
from grader.data import mnist
from grader.isolation.loading import load_cases
from grader.judging.expected import make_inputs

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab1", paths.tests_dir())
CASES = ["linear_forward", "relu_forward"]
POINTS = {c: LAB.get(c).points for c in CASES}
FAST = ["--case", CASES[0], "--case", CASES[1], "--timeout-scale", "0.1", "--no-progress"]
RELU_LINE = "        return np.where(self._mask, x, 0.0)\n"  # in ReLU.forward of the reference
RELU_BUG = (RELU_LINE, "        return np.where(self._mask, x, 0.0) + 1\n")


def grade(*args: str | Path) -> int:
    return cli_main(["grade", "lab1", *map(str, args), *FAST])


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "gradebook.csv", newline="", encoding="utf-8") as f:
        return {r["submission"]: r for r in csv.DictReader(f)}


def relu_bug(patched_reference, name: str) -> Path:
    return patched_reference(name, {"layers.py": [RELU_BUG]})


def test_two_alices_in_different_folders_keep_both_grades(sandbox, patched_reference, tmp_path) -> None:
    good = patched_reference("subs/sec1/alice", {})
    bad = relu_bug(patched_reference, "subs/sec2/alice")
    out = tmp_path / "out"
    assert grade(good, bad, "--out", out) == 0
    got = rows(out)
    assert set(got) == {"sec1/alice", "sec2/alice"}
    assert got["sec1/alice"]["score"] == "7" and got["sec1/alice"]["relu_forward"] == "3"
    assert got["sec2/alice"]["score"] == "4" and got["sec2/alice"]["relu_forward"] == "0"
    for sid in got:
        result = json.loads((out / "submissions" / sid / "results.json").read_text())
        assert result["score"] == float(got[sid]["score"])
        assert (out / "submissions" / sid / "feedback.md").is_file()
    for r in got.values():
        assert r["isolation"] == "sandbox (bubblewrap)" and r["graded_at"] and len(r["content_hash"]) == 64


def test_regrading_one_of_three_keeps_the_other_rows(sandbox, patched_reference, tmp_path) -> None:
    subs = [patched_reference(f"class/{n}", {}) for n in ("alice", "bob", "carol")]
    out = tmp_path / "out"
    assert grade(*subs, "--out", out) == 0
    before = rows(out)
    assert {r["score"] for r in before.values()} == {"7"}
    # bob resubmits (with a ReLU bug); only he is regraded
    layers = subs[1] / "lab1" / "layers.py"
    layers.write_text(layers.read_text().replace(*RELU_BUG))
    time.sleep(1.1)  # graded_at has one-second resolution: a regraded row must differ
    assert grade(subs[1], "--out", out) == 0
    after = rows(out)
    assert set(after) == {"alice", "bob", "carol"}
    kept = {k: v for k, v in before.items() if k != "bob"}
    assert {k: after[k] for k in kept} == {k: {**v, "identical_to": after[k]["identical_to"]} for k, v in kept.items()}
    # the three were copies of one another; bob's new files are his own now
    assert (before["alice"]["identical_to"], after["alice"]["identical_to"]) == ("bob carol", "carol")
    assert after["bob"]["score"] == "4" and after["bob"]["graded_at"] != before["bob"]["graded_at"]
    assert after["bob"]["content_hash"] != before["bob"]["content_hash"]


def test_rerun_grades_only_what_changed_and_force_regrades(sandbox, patched_reference, tmp_path, capsys) -> None:
    sub = patched_reference("subs/alice", {})
    out = tmp_path / "out"
    assert grade(sub, "--out", out) == 0
    first = rows(out)["alice"]
    capsys.readouterr()
    assert grade(sub, "--out", out) == 0
    assert "0 to grade, 1 already graded and unchanged" in capsys.readouterr().out
    assert rows(out)["alice"] == first
    time.sleep(1.1)
    assert grade(sub, "--out", out, "--force") == 0
    assert "1 to grade" in capsys.readouterr().out
    assert rows(out)["alice"]["graded_at"] != first["graded_at"]


def test_a_folder_named_like_the_graders_files_cannot_collide(sandbox, patched_reference, tmp_path) -> None:
    odd = patched_reference("subs/gradebook.csv", {})
    other = patched_reference("subs/summary.md", {})
    out = tmp_path / "out"
    assert grade(odd, other, "--out", out) == 0
    assert set(rows(out)) == {"gradebook.csv", "summary.md"}  # the CSV is still the gradebook
    assert (out / "submissions" / "gradebook.csv" / "results.json").is_file()
    assert (out / "summary.md").read_text().startswith("# ")


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_grades_each_submission_once(sandbox, patched_reference, tmp_path) -> None:
    """kill -9 `gradelab grade` while it works; the rerun grades only the rest; nothing is corrupt."""
    init = (paths.solutions_dir() / "lab1" / "__init__.py").read_text().splitlines(keepends=True)[0]
    sleeper = {"__init__.py": [(init, "import time; time.sleep(1.5)\n" + init)]}  # slow to import: ~2 s each
    subs = [patched_reference(f"subs/s{i}", sleeper) for i in range(5)]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader.cli", "grade", "lab1", *map(str, subs), "--out", str(out), "--jobs", "1",
           "--case", "relu_forward", "--timeout-scale", "0.2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=paths.project_root())
    db = out / gradebook.DB_NAME
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if db.is_file():
            with sqlite3.connect(db, timeout=30) as con:
                try:
                    done = con.execute("SELECT COUNT(*) FROM grades").fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
            if done >= 2:
                break
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        before = {r[0]: r[1] for r in con.execute("SELECT id, graded_at FROM grades")}
    assert 2 <= len(before) < 5
    assert len(rows(out)) == len(before)  # the CSV was current when the kill came, and whole
    rerun = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.project_root(), timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{5 - len(before)} to grade, {len(before)} already graded" in rerun.stdout
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        after = {r[0]: r[1] for r in con.execute("SELECT id, graded_at FROM grades")}
    assert set(after) == {f"s{i}" for i in range(5)}
    assert all(after[k] == v for k, v in before.items())  # graded once: not again on the rerun
    got = rows(out)
    assert set(got) == set(after) and {r["score"] for r in got.values()} == {"3"}
    for sid in after:
        assert json.loads((out / "submissions" / sid / "results.json").read_text())["score"] == 3
    assert not list(out.rglob("*.tmp"))


def test_a_missing_submission_is_a_usage_error(sandbox, patched_reference, tmp_path, capsys) -> None:
    good = patched_reference("subs/alice", {})
    out = tmp_path / "out"
    assert grade(good, tmp_path / "subs" / "bobb", "--out", out) == 2
    assert "bobb: no such submission folder" in capsys.readouterr().err
    assert not (out / "gradebook.csv").exists()


def test_feedback_and_class_summary(sandbox, patched_reference, tmp_path) -> None:
    good = patched_reference("subs/alice", {})
    bad = relu_bug(patched_reference, "subs/bob")
    out = tmp_path / "out"
    assert grade(good, bad, "--out", out) == 0
    fb = (out / "submissions" / "bob" / "feedback.md").read_text()
    assert "**Score: 4 / 7**" in fb and "| `relu_forward` | 0 / 3 | FAILED |" in fb
    assert "relu_forward (seed 0) failed" in fb  # the case's own message, ready to send
    assert "Every case passed." in (out / "submissions" / "alice" / "feedback.md").read_text()
    summary = (out / "summary.md").read_text()
    assert "| `relu_forward` | 50% |" in summary and "| `linear_forward` | 100% |" in summary
    assert "| 50-60 | 1 |" in summary and "| 90-100 | 1 |" in summary  # 4/7 = 57%, 7/7 = 100%
    page = (out / "summary.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("class=\"track\"") == 2 + 10 and "http" not in page


@pytest.mark.parametrize("args, message", [
    (["grade", "lab9", "x"], "unknown lab 'lab9'; the labs are: lab1"),
    (["test", "lab1", "--case", "nope"], "lab1 has no case 'nope'; its cases: linear_forward,"),
    (["grade", "lab1", ".", "--case", "nope"], "its cases: linear_forward,"),
])
def test_cli_usage_errors_are_messages(args, message, capsys) -> None:
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("option", ["--out", "--json"])
def test_unwritable_output_is_a_usage_error(option, tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    target = blocker / "sub" / ("results.json" if option == "--json" else "")
    args = ["test", "lab1", "--case", "linear_forward", "--json", str(target)] if option == "--json" else \
        ["grade", "lab1", str(paths.labs_dir()), "--out", str(target), *FAST]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert f"{option} " in err and "cannot write there" in err


@pytest.mark.parametrize("scale", ["0", "-1", "abc", "inf", "nan"])
def test_bad_timeout_scale_exits_2(scale) -> None:
    done = subprocess.run([sys.executable, "-m", "grader.cli", "test", "lab1", "--timeout-scale", scale],
                          capture_output=True, text=True, cwd=paths.project_root(), timeout=60)
    assert done.returncode == 2 and "--timeout-scale" in done.stderr and "Traceback" not in done.stderr


def _write_idx(path: Path, array: np.ndarray) -> None:
    code = {np.dtype("u1"): 0x08}[array.dtype]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.tobytes())


def test_data_dir_feeds_the_accuracy_case(tmp_path, monkeypatch) -> None:
    """--data DIR (the GRADELAB_MNIST_DIR the grading process reads) replaces the bundled split in
    the inputs that the accuracy case builds."""
    bundled = mnist.load_mnist()
    images = np.concatenate([bundled.train_images[:900], bundled.test_images[:100]])
    labels = np.concatenate([bundled.train_labels[:900], bundled.test_labels[:100]]).astype(np.uint8)
    _write_idx(tmp_path / "images-idx3-ubyte", images)
    _write_idx(tmp_path / "labels-idx1-ubyte", labels)
    case = LAB.get("mnist_accuracy")
    default = make_inputs(case, 0, None)
    monkeypatch.setenv(mnist.COURSE_DATA_ENV, str(tmp_path))
    course = make_inputs(case, 0, None)
    assert len(default["test_labels"]) == len(bundled.test_labels)
    assert len(course["test_labels"]) == 200 and len(course["train_labels"]) == 800


def test_progress_bar_counts_and_names_a_slow_submission() -> None:
    bar = batch._Progress(3, True, file=io.StringIO())
    now = time.monotonic()
    bar.tick({"sec1/alice": now - 1, "sec2/bob": now - batch.SLOW_AFTER - 5})
    assert "slow: sec2/bob" in str(bar.bar)
    bar.done("  sec1/alice 7 / 7")
    assert "1/3" in str(bar.bar) and "sec1/alice 7 / 7" in bar.file.getvalue()
    bar.tick({"sec1/alice": now})
    assert "slow" not in str(bar.bar)
    bar.close()


def test_an_ungradable_submission_is_a_zero_row_with_the_reason(sandbox, patched_reference, tmp_path) -> None:
    good = patched_reference("subs/alice", {})
    big = patched_reference("subs/bigfile", {})
    with open(big / "lab1" / "weights.bin", "wb") as f:  # over the 50 MiB a submission may hold
        f.truncate(51 << 20)
    out = tmp_path / "out"
    assert grade(good, big, "--out", out) == 0
    got = rows(out)
    assert got["alice"]["score"] == "7" and got["alice"]["reason"] == ""
    assert got["bigfile"]["score"] == "0" and "larger than 50 MiB" in got["bigfile"]["reason"]
    assert got["bigfile"]["isolation"].startswith("none")


@pytest.mark.slow
def test_grade_with_data_dir_trains_and_predicts_on_the_course_set(sandbox, patched_reference, tmp_path) -> None:
    bundled = mnist.load_mnist()
    data = tmp_path / "course-mnist"
    data.mkdir()
    _write_idx(data / "images-idx3-ubyte", bundled.train_images[:1000])
    _write_idx(data / "labels-idx1-ubyte", bundled.train_labels[:1000].astype(np.uint8))
    sub = patched_reference("subs/alice", {})
    out = tmp_path / "out"
    assert cli_main(["grade", "lab1", str(sub), "--out", str(out), "--data", str(data), "--case", "mnist_accuracy",
                     "--no-progress"]) == 0
    result = json.loads((out / "submissions" / "alice" / "results.json").read_text())
    case = result["tests"][0]
    assert case["name"] == "mnist_accuracy"
    # 1000 digits split 80/20 (stratified): the case saw about 200 of the course's digits, not the bundled 2000
    held_out = re.search(r"on (\d+) held-out digits", case["output"])
    assert held_out and 190 <= int(held_out.group(1)) <= 210, case["output"]
    assert cli_main(["grade", "lab1", str(tmp_path / "nope"), "--out", str(out), "--data", str(data)]) == 2
    assert cli_main(["grade", "lab1", str(sub), "--out", str(out), "--data", str(tmp_path / "nodata")]) == 2


def test_ids_stay_relative_to_the_recorded_root(tmp_path, capsys) -> None:
    """The root is recorded on the first run; a submission outside it, or another lab in the same
    --out, is a usage error (never a second id for the same student)."""
    out = tmp_path / "out"
    book = gradebook.Gradebook(out)
    book.set_meta("root", str(tmp_path / "subs"))
    book.set_meta("lab", "lab1")
    book.close()
    (tmp_path / "elsewhere" / "bob").mkdir(parents=True)
    assert grade(tmp_path / "elsewhere" / "bob", "--out", out) == 2
    assert "not inside the gradebook's root" in capsys.readouterr().err
    assert grade(tmp_path / "elsewhere" / "bob", "--out", out, "--root", tmp_path / "elsewhere") == 2
    assert "has ids relative to" in capsys.readouterr().err
    root, ids = gradebook.submission_ids([tmp_path / "subs" / "sec1" / "alice"], tmp_path / "subs")
    assert list(ids.values()) == ["sec1/alice"]
    other = tmp_path / "out2"
    book = gradebook.Gradebook(other)
    book.set_meta("lab", "lab2")
    book.close()
    assert grade(tmp_path / "elsewhere" / "bob", "--out", other) == 2
    assert "holds the gradebook of lab2" in capsys.readouterr().err


def test_without_data_the_bundled_labels_are_said_to_be_public(capsys) -> None:
    from grader.cli import _bundled_data_note

    _bundled_data_note(LAB, ["mnist_accuracy"], None)
    assert "bundled MNIST split, whose labels are public" in capsys.readouterr().out
    _bundled_data_note(LAB, ["mnist_accuracy"], "/course/mnist")
    _bundled_data_note(LAB, ["linear_forward"], None)  # no accuracy case: nothing to say
    assert capsys.readouterr().out == ""


def test_feedback_of_a_package_that_cannot_be_imported_shows_the_error_once(sandbox, patched_reference,
                                                                             tmp_path) -> None:
    broken = patched_reference("subs/broken", {"layers.py": [("class ReLU(Module):\n", "class ReLU(Module)\n")]})
    good = patched_reference("subs/good", {})
    out = tmp_path / "out"
    assert grade(broken, good, "--out", out) == 0
    fb = (out / "submissions" / "broken" / "feedback.md").read_text()
    assert fb.count("## Your package could not be imported") == 1 and "SyntaxError" in fb, fb
    assert rows(out)["broken"]["reason"].startswith("the package could not be imported: SyntaxError")
    summary = (out / "summary.md").read_text()
    assert "mean 50.0%, median 50.0%" in summary, summary  # 0 and 100: the median of two is their mean


@pytest.mark.slow
def test_a_worker_killed_by_the_system_is_a_message_and_the_rerun_continues(sandbox, patched_reference,
                                                                            tmp_path) -> None:
    init = (paths.solutions_dir() / "lab1" / "__init__.py").read_text().splitlines(keepends=True)[0]
    sleepy = patched_reference("subs/sleepy", {"__init__.py": [(init, "import time; time.sleep(30)\n" + init)]})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader.cli", "grade", "lab1", str(sleepy), "--out", str(out), "--jobs", "1",
           "--case", "relu_forward", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=paths.project_root())
    deadline, workers = time.monotonic() + 60, []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.3)
        # -ww: piped ps cuts lines at 80 columns, which can hide what a command line is (a long
        # checkout path once made the resource tracker look like a worker).
        ps = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(proc.pid)], capture_output=True,
                            text=True)
        workers = [int(line.split()[0]) for line in ps.stdout.splitlines() if "spawn_main" in line]
    assert workers, "no worker process appeared"
    time.sleep(2)  # it is grading now
    os.kill(workers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "a grading worker process died" in err and "Traceback" not in err, err
