"""nbgrader: the lab notebook's metadata, `nbgrader generate_assignment` on it, and
`gradelab nbgrader import` into a real course directory read back with nbgrader's own API and
`nbgrader export`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.course import nbgrader_bridge, notebooks
from grader.isolation.loading import load_cases

pytestmark = pytest.mark.usefixtures("solutions")
ROOT = Path(__file__).resolve().parents[2]
NBGRADER = Path(sys.executable).parent / "nbgrader"


def _need_nbgrader() -> None:
    """Skip on a machine without the extra; in CI (scripts/setup.sh installs it) that is a failure."""
    try:
        import nbgrader  # noqa: F401
    except ImportError:
        nbgrader = None
    if nbgrader is None or not NBGRADER.exists():
        if os.environ.get("CI"):
            pytest.fail("the nbgrader extra is required in CI (scripts/setup.sh installs it)")
        pytest.skip("the nbgrader extra is not installed")


def test_notebook_is_valid_with_one_locked_grade_cell_per_case() -> None:
    nbformat = pytest.importorskip("nbformat")
    data = notebooks.build_notebook("lab1", ROOT)
    nb = nbformat.reads(json.dumps(data), as_version=4)
    nbformat.validate(nb)
    lab = load_cases("lab1", ROOT / "tests")
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.metadata.nbgrader.grade_id for c in graded] == [f"lab1_{c.name}" for c in lab.cases]
    assert [c.metadata.nbgrader.points for c in graded] == [c.points for c in lab.cases]
    assert sum(c.metadata.nbgrader.points for c in graded) == lab.max_score
    for cell in nb.cells:
        meta = cell.metadata.nbgrader
        assert meta.schema_version == 3 and meta.locked and not meta.solution
    assert all('check("lab1", "' in c.source for c in graded)
    text = "".join(c.source for c in nb.cells)
    assert "load_mnist()" in text and "fit_mnist" in text and "imshow" in text
    assert "BEGIN SOLUTION" not in text
    try:
        from nbgrader.nbgraderformat import MetadataValidator
    except ImportError:
        return
    MetadataValidator().validate_nb(nb)  # nbgrader's own check of the cell metadata


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "gradelab-test"\n')
    nbgrader_bridge.write_source(course, "lab1", ROOT)
    return course


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PATH"] = f"{NBGRADER.parent}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs `alembic` from there
    return subprocess.run([str(NBGRADER), *args], cwd=course, env=env, capture_output=True, text=True, timeout=300)


def test_generate_assignment_releases_the_notebook_and_the_stubs(tmp_path: Path) -> None:
    _need_nbgrader()
    course = _course(tmp_path)
    done = _nbgrader(course, "generate_assignment", "lab1", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    released = course / "release" / "lab1"
    assert (released / "lab1.ipynb").is_file()
    assert (released / "lab1" / "layers.py").read_text() == (ROOT / "labs" / "lab1" / "layers.py").read_text()
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        cells = gb.find_notebook("lab1", "lab1").grade_cells
        assert {c.name for c in cells} == {f"lab1_{c.name}" for c in load_cases("lab1", ROOT / "tests").cases}
        assert sum(c.max_score for c in cells) == 100


@pytest.mark.slow
def test_import_two_students_then_read_back_with_nbgrader(tmp_path: Path) -> None:
    _need_nbgrader()
    course = _course(tmp_path)
    assert _nbgrader(course, "generate_assignment", "lab1", "--force").returncode == 0
    for student in ("alice", "bob"):
        shutil.copytree(course / "release" / "lab1", course / "submitted" / student / "lab1")
    for f in (ROOT / "solutions" / "lab1").glob("*.py"):  # alice hands in the reference; bob the stubs
        shutil.copyfile(f, course / "submitted" / "alice" / "lab1" / "lab1" / f.name)
    lines: list[str] = []
    assert nbgrader_bridge.run_import(course, "lab1", log=lines.append) == 0

    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        alice, bob = gb.find_submission("lab1", "alice"), gb.find_submission("lab1", "bob")
        assert alice.score == pytest.approx(100), "\n".join(lines)
        assert bob.score == 0 and bob.max_score == 100
        assert gb.find_grade("lab1_linear_forward", "lab1", "lab1", "alice").score == \
            load_cases("lab1", ROOT / "tests").get("linear_forward").points
    assert "NotImplementedError" in (course / "gradelab" / "lab1" / "bob.txt").read_text()
    assert (course / "autograded" / "alice" / "lab1" / "lab1.ipynb").is_file()  # for the formgrader

    done = _nbgrader(course, "export")
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(open(course / "grades.csv"))}
    assert float(rows["alice"]["raw_score"]) == pytest.approx(100)
    assert float(rows["bob"]["raw_score"]) == 0

    # resume, through the command: nothing changed, nobody is graded again
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    again = subprocess.run([sys.executable, "-m", "grader.cli", "nbgrader", "import", "--course-dir", str(course),
                            "--assignment", "lab1"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped") == 2, again.stdout
    (course / "submitted" / "bob" / "lab1" / "lab1" / "layers.py").write_text(
        (ROOT / "solutions" / "lab1" / "layers.py").read_text())
    third: list[str] = []
    assert nbgrader_bridge.run_import(course, "lab1", log=third.append) == 0
    assert sum("skipped" in line for line in third) == 1
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        assert 0 < gb.find_submission("lab1", "bob").score < 100


@pytest.mark.slow
def test_released_notebook_runs_top_to_bottom_on_the_reference(tmp_path: Path) -> None:
    """The student notebook really loads the data, trains, draws and runs every case cell."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("matplotlib")
    from grader.course import release

    out = tmp_path / "rel"
    release.build(["lab1"], out, root=ROOT, git=False, log=lambda *_: None)
    for f in (ROOT / "solutions" / "lab1").glob("*.py"):
        shutil.copyfile(f, out / "labs" / "lab1" / f.name)
    nb = nbformat.read(out / "notebooks" / "lab1.ipynb", as_version=4)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend puts the pictures in the outputs
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(out / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 3  # digits, mistakes, weights
    text = "".join(o.get("text", "") for o in outputs)
    assert "held-out accuracy: 0.9" in text and "linear_forward: " in text


def test_source_keeps_an_instructors_edits_unless_forced(tmp_path: Path) -> None:
    course = _course(tmp_path)
    nb = course / "source" / "lab1" / "lab1.ipynb"
    stub = course / "source" / "lab1" / "lab1" / "layers.py"
    assert nb.is_file() and stub.is_file()
    assert nbgrader_bridge.write_source(course, "lab1", ROOT) == course / "source" / "lab1"  # unchanged: fine
    nb.write_text(nb.read_text().replace("Run All", "Run All (edited for our course)"))
    with pytest.raises(nbgrader_bridge.SourceEdited, match="lab1.ipynb"):
        nbgrader_bridge.write_source(course, "lab1", ROOT)
    assert "edited for our course" in nb.read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    cli = [sys.executable, "-m", "grader.cli", "nbgrader", "source", "--course-dir", str(course), "lab1"]
    done = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1 and "--force" in done.stderr and "edited for our course" in nb.read_text()
    done = subprocess.run([*cli, "--force"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "edited for our course" not in nb.read_text()


@pytest.mark.slow
def test_generate_feedback_shows_why_each_case_failed(tmp_path: Path) -> None:
    """nbgrader's own feedback (`generate_feedback`) carries the grader's message under each grade cell."""
    _need_nbgrader()
    course = _course(tmp_path)
    assert _nbgrader(course, "generate_assignment", "lab1", "--force").returncode == 0
    shutil.copytree(course / "release" / "lab1", course / "submitted" / "bob" / "lab1")
    layers = course / "submitted" / "bob" / "lab1" / "lab1" / "layers.py"
    layers.write_text((ROOT / "solutions" / "lab1" / "layers.py").read_text())  # Linear right, the rest stubs
    assert nbgrader_bridge.run_import(course, "lab1", log=lambda _: None) == 0
    done = _nbgrader(course, "generate_feedback", "lab1", "--force")
    assert done.returncode == 0, done.stdout + done.stderr
    html = (course / "feedback" / "bob" / "lab1" / "lab1.html").read_text()
    assert "linear_forward: passed" in html
    assert "softmax_ce_forward: FAILED" in html and "not implemented yet" in html
