"""`gradelab gradescope`: the autograder zip, and its run_autograder end to end against a temporary
root shaped like /autograder (source/ from the zip, submission/, results/)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from grader.course import gradescope, uploads

pytestmark = pytest.mark.usefixtures("solutions")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "solutions").is_dir():
        pytest.skip("no solutions/ (student release)")
    return gradescope.build_zip("lab1", tmp_path_factory.mktemp("gs") / "autograder.zip", root=ROOT)


def _root(tmp_path: Path, zip_path: Path) -> Path:
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    for name in ("run_autograder", "setup.sh"):  # extractall drops the mode bits
        (root / "source" / name).chmod(0o755)
    return root


def _run(root: Path, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADELAB_", "PYTEST_"))}
    env |= {"AUTOGRADER_ROOT": str(root), "GRADELAB_PYTHON": sys.executable}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder"), *extra], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((root / "results" / "results.json").read_text())


def _texts(results: dict) -> list[str]:
    return [results.get("output", "")] + [t["output"] for t in results["tests"]] + [t["name"] for t in results["tests"]]


def _no_paths(results: dict, root: Path) -> None:
    for text in _texts(results):
        for bad in (str(root), str(ROOT), "/tmp/", "/work/", "gradelab-stage", "gradelab-gs"):
            assert bad not in text, f"{bad!r} in {text[:500]}"


def test_zip_holds_setup_run_autograder_and_the_kit(autograder_zip: Path) -> None:
    with zipfile.ZipFile(autograder_zip) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
        run_text = z.read("run_autograder").decode()
    for needed in ("setup.sh", "run_autograder", "grader/course/gradescope.py", "grader/isolation/sandbox.py",
                   "tests/lab1/cases.py",
                   "tests/lab1/fixtures/public.npz", "solutions/lab1/layers.py", "solutions/lab1/hidden.toml",
                   "labs/lab1/__init__.py", "labs/lab1/layers.py", "pyproject.toml", "data/mnist/SHA256SUMS"):
        assert needed in names, needed
    assert modes["run_autograder"] & 0o111 and modes["setup.sh"] & 0o111
    assert "--lab lab1" in run_text and "@@" not in run_text
    assert not any("__pycache__" in n for n in names)


@pytest.mark.slow
def test_reference_folder_scores_100_with_hidden_variants_after_the_due_date(autograder_zip: Path,
                                                                            tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(ROOT / "solutions" / "lab1", root / "submission" / "lab1",
                    ignore=shutil.ignore_patterns("*.toml", "__pycache__"))
    results = _run(root)
    assert results["score"] == pytest.approx(100, abs=1e-2), results["output"]
    assert results["output_format"] == "text"
    public = [t for t in results["tests"] if "hidden variant" not in t["name"]]
    hidden = [t for t in results["tests"] if "hidden variant" in t["name"]]
    assert public and hidden
    assert {t["visibility"] for t in public} == {"visible"}
    assert {t["visibility"] for t in hidden} == {"after_due_date"}
    assert all(t["status"] == "passed" and t["score"] == t["max_score"] for t in results["tests"])
    assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(100, abs=1e-2)
    assert "Student code ran in:" in results["output"]
    _no_paths(results, root)


def test_untouched_stubs_score_0_with_a_message_per_case(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(root / "source" / "labs" / "lab1", root / "submission" / "lab1")
    results = _run(root)
    assert results["score"] == 0 and results["tests"]
    assert all(t["status"] == "failed" for t in results["tests"])
    assert "NotImplementedError" in results["tests"][0]["output"]
    _no_paths(results, root)


@pytest.mark.slow
def test_flat_upload_and_zip_upload_are_found(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path / "flat", autograder_zip)
    for f in (ROOT / "solutions" / "lab1").glob("*.py"):
        shutil.copyfile(f, root / "submission" / f.name)
    results = _run(root)
    assert results["score"] == pytest.approx(100, abs=1e-2), results["output"]
    _no_paths(results, root)

    root = _root(tmp_path / "zipped", autograder_zip)
    with zipfile.ZipFile(root / "submission" / "lab1.zip", "w") as z:
        z.write(ROOT / "solutions" / "lab1" / "layers.py", "my-work/lab1/layers.py")  # a partial upload
    results = _run(root)
    assert 0 < results["score"] < 100, results["output"]
    passed = {t["name"] for t in results["tests"] if t["status"] == "passed"}
    assert "linear_forward" in passed and "sgd_step" not in passed  # the rest are the stubs


def test_syntax_error_is_one_top_level_output(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(root / "source" / "labs" / "lab1", root / "submission" / "lab1")
    layers = root / "submission" / "lab1" / "layers.py"
    layers.write_text(layers.read_text() + "\ndef broken(:\n")
    results = _run(root)
    assert results["score"] == 0 and results["tests"] == []
    assert "lab1/layers.py, line" in results["output"] and "SyntaxError" in results["output"]
    _no_paths(results, root)


def test_import_error_is_one_top_level_output(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(root / "source" / "labs" / "lab1", root / "submission" / "lab1")
    layers = root / "submission" / "lab1" / "layers.py"
    layers.write_text(layers.read_text() + "\nimport no_such_module_here\n")
    results = _run(root)
    assert results["score"] == 0 and results["tests"] == [], results
    assert "no_such_module_here" in results["output"]
    _no_paths(results, root)


def test_nothing_uploaded_says_what_to_upload(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    (root / "submission" / "notes.txt").write_text("hello")
    results = _run(root)
    assert results["score"] == 0 and "upload the lab1/ folder" in results["output"]


def test_without_bwrap_the_output_says_so(autograder_zip: Path, tmp_path: Path) -> None:
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(root / "source" / "labs" / "lab1", root / "submission" / "lab1")
    results = _run(root, "--no-bwrap")
    assert "bwrap unavailable" in results["output"]
    assert results["score"] == 0 and results["tests"]
    _no_paths(results, root)


def test_zip_slip_and_symlinks_are_not_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../escaped.py", "x = 1\n")
        z.writestr("/abs.py", "x = 1\n")
        z.writestr("lab1/ok.py", "x = 1\n")
    uploads.safe_extract(archive, tmp_path / "out")
    assert (tmp_path / "out" / "lab1" / "ok.py").is_file()
    assert not (tmp_path / "escaped.py").exists() and not (tmp_path / "out" / "abs.py").exists()


@pytest.mark.slow
def test_without_bwrap_student_code_runs_as_an_unprivileged_uid(autograder_zip: Path, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    """Gradescope's fallback for real: a Python readable by other users (a venv of /usr/bin/python3,
    as on Gradescope; this project's own Python lives under /root), run_autograder --no-bwrap as
    root, and a submission that reports the uid its code runs as."""
    system_python = shutil.which("python3", path="/usr/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not system_python:
        pytest.skip("needs root, setpriv and /usr/bin/python3")
    if subprocess.run([system_python, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode:
        pytest.skip("/usr/bin/python3 is older than 3.11")
    import numpy

    shared = Path(tempfile.mkdtemp(prefix="gradelab-test-venv-"))  # pytest's own tmp folder is private to root
    shared.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(shared, ignore_errors=True))
    venv = shared / "venv"
    subprocess.run([system_python, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                          f"numpy=={numpy.__version__}"], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    root = _root(tmp_path, autograder_zip)
    shutil.copytree(ROOT / "solutions" / "lab1", root / "submission" / "lab1",
                    ignore=shutil.ignore_patterns("*.toml", "__pycache__"))
    layers = root / "submission" / "lab1" / "layers.py"
    text = layers.read_text()
    marker = "        ### BEGIN SOLUTION\n"
    first = text.index(marker)  # the first task (Linear.forward) reports the uid it runs as
    layers.write_text(text[:first] + '        import os\n        raise RuntimeError(f"running as uid {os.getuid()}")\n'
                      + text[first:])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADELAB_", "PYTEST_"))}
    env |= {"AUTOGRADER_ROOT": str(root), "GRADELAB_PYTHON": str(venv / "bin/python")}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder"), "--no-bwrap"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and (root / "results" / "results.json").is_file(), done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert "dedicated unprivileged uid" in results["output"], results["output"]
    linear = next(t for t in results["tests"] if t["name"] == "linear_forward")
    uid = int(re.search(r"running as uid (\d+)", linear["output"]).group(1))
    assert uid >= 1_000_000, linear["output"]
    relu = next(t for t in results["tests"] if t["name"] == "relu_forward")
    assert relu["status"] == "passed", relu["output"]  # the rest of the reference still scores
    _no_paths(results, root)
