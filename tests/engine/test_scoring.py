"""The grader's contract: the reference scores full marks, the JSON report has Gradescope's shape,
fixtures are current and detected when stale, hidden variants catch hard-coded answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader import paths
from grader.authoring import fixtures
from grader.isolation.loading import load_cases
from grader.judging import expected
from grader.runner import grade, reference

LAB = load_cases("lab1", paths.tests_dir())
FAST = [c.name for c in LAB.cases if not c.slow]


def gradelab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True,
                          cwd=cwd or paths.project_root(), timeout=600)


@pytest.mark.slow
def test_reference_scores_full_marks_in_process(solutions):
    result = grade(LAB, solutions, isolated=False)
    failed = {c.name: c.output for c in result.cases if not c.passed}
    assert failed == {}
    assert result.score == result.max_score == 100


@pytest.mark.slow
@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "isolated"])
def test_cli_json_report_has_gradescope_shape(solutions, tmp_path, isolated, request):
    if isolated:
        request.getfixturevalue("sandbox")
    out = tmp_path / "r.json"
    done = gradelab("test", "lab1", "--impl", "solutions", "--json", str(out), *(["--isolated"] if isolated else []))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["score"] == report["max_score"] == 100
    assert isinstance(report["execution_time"], float) and report["execution_time"] > 0
    assert [t["name"] for t in report["tests"]] == [c.name for c in LAB.cases]
    for t in report["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output"}
        assert t["status"] == "passed" and t["score"] == t["max_score"] > 0
        assert t["output"].startswith("passed: ")


def test_cli_stubs_score_zero_and_exit_nonzero(tmp_path):
    out = tmp_path / "r.json"
    done = gradelab("test", "lab1", "--json", str(out))
    assert done.returncode == 1
    report = json.loads(out.read_text())
    assert report["score"] == 0 and report["max_score"] == 100
    assert {t["status"] for t in report["tests"]} == {"failed"}
    assert "not implemented yet" in report["tests"][0]["output"]


@pytest.mark.parametrize(("args", "message"), [
    (["test", "lab9"], "unknown lab 'lab9'"),
    (["test", "lab1", "--impl", "/nonexistent/folder"], "no such folder"),
])
def test_cli_bad_usage_exits_2_with_a_message(args, message):
    done = gradelab(*args)
    assert done.returncode == 2
    assert message in done.stderr


def test_a_submission_without_the_lab_package_fails_every_case_with_a_clear_message(tmp_path):
    result = grade(LAB, tmp_path, isolated=False, only=FAST[:3])
    assert result.score == 0
    for c in result.cases:
        assert "no lab1 package in" in c.output and "__init__.py" in c.output


def test_committed_fixtures_match_the_reference(solutions):
    assert fixtures.check(LAB, reference("lab1")) == []


def test_stale_fixtures_are_reported(solutions, tmp_path, monkeypatch):
    arrays = expected.load("lab1")
    key = "linear_forward/0/y"
    arrays[key] = arrays[key] + 1e-6
    del arrays["relu_forward/0/y"]
    monkeypatch.setattr(expected, "fixture_path", lambda lab: tmp_path / "public.npz")
    np.savez(tmp_path / "public.npz", **arrays)
    problems = fixtures.check(LAB, reference("lab1"))
    assert f"{key} differs from the reference" in problems
    assert "missing key relu_forward/0/y" in problems


def test_fixtures_made_from_other_inputs_are_not_used(solutions, tmp_path, monkeypatch):
    arrays = expected.load("lab1")
    arrays["linear_forward/0/__inputs__"] = np.array("0" * 64)
    monkeypatch.setattr(expected, "fixture_path", lambda lab: tmp_path / "public.npz")
    np.savez(tmp_path / "public.npz", **arrays)
    result = grade(LAB, solutions, isolated=False, only=["linear_forward", "relu_forward"])
    by_name = {c.name: c for c in result.cases}
    assert not by_name["linear_forward"].passed
    assert "made from different inputs" in by_name["linear_forward"].output
    assert "gradelab fixtures lab1" in by_name["linear_forward"].output
    assert by_name["relu_forward"].passed


def test_hidden_variants_catch_answers_hard_coded_for_the_public_inputs(patched_reference, sandbox):
    """A forward that only knows the public answer passes locally and fails when graded."""
    public = expected.make_inputs(LAB.get("linear_forward"), 0)
    y = expected.load("lab1")["linear_forward/0/y"]
    cheat = (f"        if x.shape == {public['x'].shape} and x[0, 0] == {public['x'][0, 0]!r}:\n"
             f"            return np.array({y.tolist()!r})\n"
             "        return np.zeros((len(x), self.weight.data.shape[0]))\n")
    root = patched_reference("memorised", {"layers.py": [(
        "        self._x = x\n        return x @ self.weight.data.T + self.bias.data\n", cheat)]})
    local = grade(LAB, root, isolated=False, only=["linear_forward"])
    assert local.cases[0].passed
    graded = grade(LAB, root, isolated=True, only=["linear_forward"])
    assert not graded.cases[0].passed
    assert "hidden variant" in graded.cases[0].output
