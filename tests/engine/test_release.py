"""`gradelab release`: the student repository, its leak check, its own tests and its CI script.

A release is built once per module into a temporary folder; the tests run its README commands
(with this project's interpreter, the release first on sys.path) and its CI script, and check
that the leak scan finds solution code wherever it is put. The real fresh-machine run (a clone,
`bash scripts/setup.sh` installing from the package index into a new venv) is the slow test.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from grader.authoring import stubs
from grader.course import release
from grader.isolation.loading import load_cases

pytestmark = pytest.mark.usefixtures("solutions")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(__file__).resolve().parents[2]
    if not (root / "solutions").is_dir():
        pytest.skip("no solutions/ (student release)")
    out = tmp_path_factory.mktemp("release") / "lab1-release"
    release.build(["lab1"], out, root=root, log=lambda *_: None)
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    """A private copy of the release, without its .git (tests that edit it)."""
    dst = tmp_path / "rel"
    shutil.copytree(built, dst, ignore=shutil.ignore_patterns(".git"))
    return dst


def _env(rel: Path, **extra: str) -> dict[str, str]:
    """Runs the release's own engine with this project's interpreter (no install needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "GRADELAB_", "PYTEST_"))}
    env |= {"PYTHONPATH": str(rel), "PYTHON": sys.executable, "PYTHONDONTWRITEBYTECODE": "1", **extra}
    return env


def _pytest(rel: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=rel,
                          env=_env(rel), capture_output=True, text=True, timeout=900)


def test_release_holds_the_student_kit_and_nothing_instructor_only(built: Path) -> None:
    files = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    files = {f for f in files if not f.startswith(".git/")}
    for needed in ("labs/lab1/layers.py", "labs/lab1/README.md", "tests/lab1/cases.py", "tests/lab1/test_lab1.py",
                   "tests/lab1/fixtures/public.npz", "grader/pytest_support.py", "grader/cli.py", "grader/course/ci.py",
                   "data/mnist/images-idx3-ubyte.gz", "pyproject.toml", "README.md", "scripts/setup.sh",
                   "scripts/ci.sh", ".github/workflows/gradelab.yml", "notebooks/lab1.ipynb", ".gitignore",
                   *(["conftest.py"] if (ROOT / "conftest.py").is_file() else [])):
        assert needed in files, needed
    for path in files:
        assert not path.startswith(("solutions/", "examples/", "tests/engine/", ".ci/")), path
        assert not path.endswith("hidden.toml") and path != "tests/conftest.py", path
    # the stubs are generated from solutions/, not copied from labs/ (which may hold edits)
    expected = stubs.generate(Path(__file__).resolve().parents[2] / "solutions", built / "labs")
    assert (built / "labs/lab1/layers.py").read_text() == expected[Path("lab1/layers.py")]
    # no engine module that only other labs need (it may hold their solution code)
    assert not (built / "grader" / "detection_data.py").exists()


def test_release_is_a_fresh_repository_with_one_commit(built: Path) -> None:
    log = subprocess.run(["git", "-C", str(built), "log", "--format=%s"], capture_output=True, text=True, check=True)
    assert log.stdout.strip().splitlines() == ["Lab release"]
    status = subprocess.run(["git", "-C", str(built), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == ""


def test_check_passes_on_the_release(built: Path) -> None:
    assert release.check(built) == []


def _some_region() -> tuple[list[str], str]:
    """A solution region of Lab 1 with a multi-line statement or at least a specific line."""
    src = Path(__file__).resolve().parents[2] / "solutions" / "lab1" / "layers.py"
    regions = stubs.solution_regions(src.read_text(), "layers.py")
    region = max(regions, key=lambda r: len("".join(r.lines)))
    return list(region.lines), region.qualname


def test_check_finds_solution_code_anywhere(copy: Path) -> None:
    lines, qualname = _some_region()
    code = "\n".join(lines)
    (copy / "NOTES.md").write_text("notes\n" + code + "\n")  # a plain text file outside labs/
    assert any(p.startswith("leak: NOTES.md") and qualname in p for p in release.check(copy))
    (copy / "NOTES.md").unlink()

    # re-wrapped: every token on its own line; the line index misses it, the block index does not
    squashed = " \n".join(" ".join(line.split()) for line in lines).replace("(", "(\n    ").replace(",", ",\n")
    (copy / "wrapped.txt").write_text(squashed)
    problems = release.check(copy)
    assert any("wrapped.txt contains a multi-line solution block" in p for p in problems), problems
    (copy / "wrapped.txt").unlink()

    nb = json.loads((copy / "notebooks/lab1.ipynb").read_text())
    nb["cells"].append({"cell_type": "code", "id": "x", "metadata": {}, "execution_count": None, "outputs": [],
                        "source": [line + "\n" for line in lines]})
    (copy / "notebooks/lab1.ipynb").write_text(json.dumps(nb))
    assert any("notebooks/lab1.ipynb[cell" in p for p in release.check(copy))
    shutil.rmtree(copy / "notebooks")

    with zipfile.ZipFile(copy / "data" / "extra.zip", "w") as z:
        z.writestr("inner/code.py", code)
    (copy / "data" / "more.gz").write_bytes(gzip.compress(code.encode()))
    problems = release.check(copy)
    assert any("extra.zip!inner/code.py" in p for p in problems), problems
    assert any("data/more" in p for p in problems), problems


def test_check_finds_instructor_only_files(copy: Path) -> None:
    (copy / "solutions" / "lab1").mkdir(parents=True)
    (copy / "solutions" / "lab1" / "x.md").write_text("x")
    (copy / "tests" / "lab1" / "hidden.toml").write_text("seeds = [1]\n")
    (copy / "examples").mkdir()
    problems = release.check(copy)
    assert any(p.startswith("solutions/") for p in problems)
    assert any("hidden.toml" in p for p in problems)
    assert any(p.startswith("examples/") for p in problems)


def test_provided_reference_is_allowed_only_where_provided_and_not_released(copy: Path) -> None:
    """labs/lab2/lab1/ may hold Lab 1's reference in a lab2 release, never next to a lab1 task."""
    root = Path(__file__).resolve().parents[2]
    index = release.leak_index(root / "solutions")
    if "lab1" not in index.provides.get("lab2", set()):
        pytest.skip("lab2 does not provide lab1 here")
    lines, _ = _some_region()
    (copy / "labs" / "lab2" / "lab1").mkdir(parents=True)
    (copy / "labs" / "lab2" / "lab1" / "layers.py").write_text("\n".join(lines) + "\n")
    problems = release.check(copy)  # lab1 is a task of this release: its reference must not ship
    assert any("labs/lab2/lab1/layers.py" in p for p in problems), problems
    assert any("also a task of this release" in p for p in problems), problems
    shutil.rmtree(copy / "labs" / "lab1")
    assert not [p for p in release.check(copy) if "labs/lab2/lab1" in p]


def test_release_refuses_a_lab_with_the_lab_it_provides(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    if "lab1" not in stubs._allowed_labs(root / "solutions", "lab2"):
        pytest.skip("lab2 does not provide lab1 here")
    with pytest.raises(release.ReleaseError, match="lab1's students its solution"):
        release.build(["lab1", "lab2"], tmp_path / "both", root=root)
    assert not (tmp_path / "both").exists()


def test_release_refuses_a_nonempty_folder_and_unknown_labs(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(release.ReleaseError, match="not empty"):
        release.build(["lab1"], tmp_path / "x")
    with pytest.raises(release.ReleaseError, match="lab99"):
        release.build(["lab99"], tmp_path / "y")


def test_cli_check_exit_codes(built: Path, copy: Path) -> None:
    gl = [sys.executable, "-m", "grader.cli"]
    ok = subprocess.run([*gl, "release", "--check", str(built)], capture_output=True, text=True)
    assert ok.returncode == 0 and "no solution code" in ok.stdout
    (copy / "tests" / "lab1" / "hidden.toml").write_text("seeds = [1]\n")
    bad = subprocess.run([*gl, "release", "--check", str(copy)], capture_output=True, text=True)
    assert bad.returncode == 1 and "hidden.toml" in bad.stdout


def test_release_pytest_on_untouched_stubs_runs_every_case_and_scores_0(built: Path) -> None:
    """The README's test command on the stubs: every case runs and fails with NotImplementedError
    (pytest exits 1), nothing errors at collection, and the score line says 0."""
    done = _pytest(built, "tests/lab1")
    assert "lab1: 0 / 100 points" in done.stdout, done.stdout[-3000:]
    n = len(load_cases("lab1", ROOT / "tests").cases)
    assert re.search(rf"\b{n} failed in\b", done.stdout), done.stdout[-2000:]
    assert not re.search(r"^ERROR ", done.stdout, re.M), done.stdout[-2000:]  # no collection/fixture errors
    assert done.returncode == 1
    assert "NotImplementedError" in done.stdout


@pytest.mark.slow
def test_release_pytest_with_the_reference_copied_in_scores_100(copy: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    for f in (root / "solutions" / "lab1").glob("*.py"):
        shutil.copyfile(f, copy / "labs" / "lab1" / f.name)
    done = _pytest(copy)  # bare `pytest`: the release has only the lab's tests
    assert done.returncode == 0, done.stdout[-3000:]
    assert "lab1: 100 / 100 points" in done.stdout


def _ci(rel: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str, dict[str, str]]:
    summary, output = tmp_path / "summary.md", tmp_path / "output"
    done = subprocess.run(["bash", "scripts/ci.sh"], cwd=rel, capture_output=True, text=True, timeout=900,
                          env=_env(rel, GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(output)))
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines()) if output.exists() else {}
    return done, summary.read_text() if summary.exists() else "", outputs


def test_ci_script_on_stubs_publishes_0(copy: Path, tmp_path: Path) -> None:
    done, summary, outputs = _ci(copy, tmp_path)
    assert done.returncode == 0, done.stderr  # a grading job: it graded, whatever the score
    assert re.search(r"^lab1: 0/100\b", done.stdout, re.M), done.stdout
    assert "| `linear_forward` | 0 / " in summary and "**0 / 100**" in summary
    classroom = json.loads(base64.b64decode(outputs["result"]))
    assert classroom == json.loads((copy / ".gradelab" / "classroom.json").read_text())
    assert classroom["version"] == 1 and classroom["max_score"] == 100 and classroom["status"] == "fail"
    assert {t["status"] for t in classroom["tests"]} == {"fail"}
    assert len(classroom["tests"]) == len(load_cases("lab1", ROOT / "tests").cases)
    assert set(classroom["tests"][0]) >= {"name", "status", "message", "test_code", "filename", "line_no",
                                          "execution_time", "score"}
    badge = json.loads((copy / ".gradelab" / "badges" / "lab1.json").read_text())
    assert badge == {"schemaVersion": 1, "label": "lab1", "message": "0/100", "color": "e05d44"}
    svg = ET.parse(copy / ".gradelab" / "badges" / "lab1.svg").getroot()
    texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert texts == ["lab1", "0/100"]
    strict = subprocess.run(["bash", "scripts/ci.sh", "--require-full"], cwd=copy, env=_env(copy),
                            capture_output=True, text=True, timeout=900)
    assert strict.returncode == 1


@pytest.mark.slow
def test_ci_script_with_part_of_the_reference_gives_a_partial_score(copy: Path, tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    shutil.copyfile(root / "solutions/lab1/layers.py", copy / "labs/lab1/layers.py")
    done, summary, _ = _ci(copy, tmp_path)
    m = re.search(r"^lab1: (\d+)/100\b", done.stdout, re.M)
    assert m and 0 < int(m.group(1)) < 100, done.stdout
    assert f"**{m.group(1)} / 100**" in summary
    badge = json.loads((copy / ".gradelab" / "badges" / "lab1.json").read_text())
    assert badge["message"] == f"{m.group(1)}/100" and badge["color"] in ("dfb317", "e05d44")


def _workflow(rel: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((rel / ".github" / "workflows" / "gradelab.yml").read_text())


def test_workflow_runs_the_students_script_on_push_and_pull_request(built: Path) -> None:
    wf = _workflow(built)
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert "push" in on and "pull_request" in on
    steps = wf["jobs"]["grade"]["steps"]
    names = [s["name"] for s in steps]
    assert names == ["Check out", "Set up Python", "Install the kit", "Grade", "Keep the results"]
    for job in wf["jobs"].values():
        for step in job["steps"]:
            for script in re.findall(r"bash (scripts/\S+)", step.get("run", "")):
                assert (built / script).is_file(), script
            assert "uses" in step or "run" in step
    grade = next(s for s in steps if s["name"] == "Grade")
    assert grade["id"] == "grade" and grade["run"] == "bash scripts/ci.sh"
    keep = next(s for s in steps if s["name"] == "Keep the results")
    assert keep["with"]["path"] == ".gradelab/" and keep["if"] == "always()"
    publish = wf["jobs"]["publish"]
    comment = next(s for s in publish["steps"] if s["name"].startswith("Post"))
    assert comment["if"].startswith("github.event_name == 'pull_request'")
    assert ".gradelab/summary.md" in comment["with"]["script"]
    assert publish["permissions"]["pull-requests"] == "write"
    assert "classroom" not in wf["jobs"]
    assert "../../raw/badges/lab1.svg" in (built / "README.md").read_text()


def test_classroom_release_adds_the_reporter(tmp_path: Path) -> None:
    """Classroom's reporter runs in a job of its own that reads the grade job's artifact."""
    out = tmp_path / "classroom"
    release.build(["lab1"], out, classroom=True, git=False, log=lambda *_: None)
    job = _workflow(out)["jobs"]["classroom"]
    steps = job["steps"]
    reporter = steps[-1]
    assert reporter["uses"].startswith("classroom-resources/autograding-grading-reporter@")
    assert reporter["with"]["runners"] == "gradelab"
    assert reporter["env"]["GRADELAB_RESULTS"] == "${{ steps.results.outputs.result }}"
    results = next(s for s in steps if s.get("id") == "results")
    assert ".gradelab/classroom.json" in results["run"] and "GITHUB_OUTPUT" in results["run"]
    assert job["needs"] == "grade" and job["permissions"] == {"checks": "write", "actions": "read"}


def test_student_readme_has_the_two_commands(built: Path) -> None:
    readme = (built / "README.md").read_text()
    assert "bash scripts/setup.sh" in readme and ".venv/bin/python -m pytest tests/lab1" in readme
    assert "source .venv/bin/activate" in readme  # how to activate, and how to run without it
    assert "@@" not in readme


@pytest.mark.slow
def test_fresh_clone_passes_its_own_two_readme_commands(built: Path, tmp_path: Path) -> None:
    """For real: clone the release, `bash scripts/setup.sh` (a new venv, the kit installed from the
    package index), then the README's test command; 0 on the stubs, 100 with the reference."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(built), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GRADELAB_", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    setup = subprocess.run(["bash", "scripts/setup.sh"], cwd=clone, env=env, capture_output=True, text=True,
                           timeout=900)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    test_cmd = [str(clone / ".venv/bin/python"), "-m", "pytest", "tests/lab1", "-p", "no:cacheprovider"]
    stubs_run = subprocess.run(test_cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert "lab1: 0 / 100 points" in stubs_run.stdout, stubs_run.stdout[-3000:]
    cli = subprocess.run([str(clone / ".venv/bin/gradelab"), "test", "lab1", "--quiet"], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    assert cli.returncode == 1 and "0 / 100" in cli.stdout, cli.stdout + cli.stderr
    root = Path(__file__).resolve().parents[2]
    for f in (root / "solutions" / "lab1").glob("*.py"):
        shutil.copyfile(f, clone / "labs" / "lab1" / f.name)
    ref_run = subprocess.run(test_cmd, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert ref_run.returncode == 0 and "lab1: 100 / 100 points" in ref_run.stdout, ref_run.stdout[-3000:]
    where = subprocess.run([str(clone / ".venv/bin/python"), "-c", "import grader; print(grader.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(clone)), where.stdout  # the clone's own engine, installed
