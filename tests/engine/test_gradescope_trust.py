"""Gradescope's run_autograder attacked as a student would (issue 15 items 1-2, issue 17 item 5).

- The fallback without bubblewrap (Gradescope's containers often refuse its namespaces): the real
  ``run_autograder`` as root with ``--no-bwrap``, against a root shaped like /autograder in a folder
  every user can traverse (as /autograder is; pytest's own tmp folder is private to root, which
  would hide the kit by accident). Stubs that import the reference from the kit score 0, nothing of
  ``hidden.toml`` or ``solutions/`` reaches results.json, a daemon does not outlive the run.
- Every upload, however broken, ends in a results.json with a score and what to upload.
- The score is the one ``gradelab grade`` gives: a case's points only when its public run and
  every hidden variant pass.
"""

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

from grader import paths
from grader.course import gradescope
from grader.isolation import sandbox as gsandbox
from grader.isolation.loading import load_cases
from grader.runner import grade

pytestmark = pytest.mark.usefixtures("solutions")
ROOT = Path(__file__).resolve().parents[2]
LAB = "lab1"


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "solutions").is_dir():
        pytest.skip("no solutions/ (student release)")
    return gradescope.build_zip(LAB, tmp_path_factory.mktemp("gs") / "autograder.zip", root=ROOT)


def _shared_dir(request: pytest.FixtureRequest, prefix: str) -> Path:
    """A folder every user may traverse, as /autograder and /opt are on Gradescope."""
    d = Path(tempfile.mkdtemp(prefix=prefix))
    d.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def _root(base: Path, zip_path: Path) -> Path:
    """``base/autograder`` shaped like Gradescope's: source/ (the zip, files 0644 as unzipped), submission/."""
    root = base / "autograder"
    (root / "submission").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    for name in ("run_autograder", "setup.sh"):
        (root / "source" / name).chmod(0o755)
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o755 if f in ("run_autograder", "setup.sh") else 0o644)
    return root


def _run(root: Path, python: str, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADELAB_", "PYTEST_"))}
    env |= {"AUTOGRADER_ROOT": str(root), "GRADELAB_PYTHON": python}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder"), *extra], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    path = root / "results" / "results.json"
    assert path.is_file(), done.stdout + done.stderr
    return json.loads(path.read_text())


def _all_text(results: dict) -> str:
    return json.dumps(results)


# ----------------------------------------------------------------------------- the fallback without bwrap


@pytest.fixture(scope="module")
def readable_python() -> str:
    """A venv of /usr/bin/python3 with NumPy in a folder every user can read: Gradescope's
    /opt/gradelab-venv (this project's own Python lives under /root, unreadable by other uids)."""
    system_python = shutil.which("python3", path="/usr/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not system_python:
        pytest.skip("needs root, setpriv and /usr/bin/python3")
    if subprocess.run([system_python, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]).returncode:
        pytest.skip("/usr/bin/python3 is older than 3.11")
    import numpy

    shared = Path(tempfile.mkdtemp(prefix="gradelab-test-venv-"))
    shared.chmod(0o755)
    try:
        venv = shared / "venv"
        subprocess.run([system_python, "-m", "venv", str(venv)], check=True, timeout=300)
        pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              f"numpy=={numpy.__version__}"], capture_output=True, text=True, timeout=600)
        assert pip.returncode == 0, pip.stderr
        yield str(venv / "bin/python")
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def _stubs(root: Path) -> Path:
    shutil.copytree(root / "source" / "labs" / LAB, root / "submission" / LAB)
    return root / "submission" / LAB


def _prepend_to_linear_forward(package: Path, code: str) -> None:
    """Runs ``code`` (indented for a method body) at the start of Linear.forward, the first graded task."""
    layers = package / "layers.py"
    text = layers.read_text()
    marker = "    def forward(self, x: np.ndarray) -> np.ndarray:\n"
    at = text.index(marker)
    doc_end = text.index('"""', text.index('"""', at) + 3) + 3 + 1  # after the method's docstring line
    layers.write_text(text[:doc_end] + code + text[doc_end:])


def _child_uid_processes() -> dict[int, str]:
    """Live (not zombie) processes whose real uid is in the range of the children's dedicated uids:
    {pid: "uid UID NAME"}."""
    found = {}
    lo, hi = gsandbox._CHILD_UID_BASE, gsandbox._CHILD_UID_BASE + 1_000_000
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:
            continue
        uid = int(fields["Uid"].split()[0])
        if lo <= uid < hi and not fields["State"].strip().startswith(("Z", "X")):
            found[int(status.parent.name)] = f"uid {uid} {fields['Name'].strip()}"
    return found


@pytest.mark.slow
def test_without_bwrap_stubs_that_import_the_reference_from_the_kit_score_0(autograder_zip, readable_python,
                                                                            request) -> None:
    """The untouched stubs, with the kit's reference first on the package's path (scored 100 before)."""
    root = _root(_shared_dir(request, "gradelab-test-gs-"), autograder_zip)
    package = _stubs(root)
    init = package / "__init__.py"
    attack = f"__path__.insert(0, {str(root / 'source' / 'solutions' / LAB)!r})\n"
    text = init.read_text()
    doc_end = text.index('"""', 3) + 3
    init.write_text(text[:doc_end] + "\n" + attack + text[doc_end:])
    results = _run(root, readable_python, "--no-bwrap")
    assert "dedicated unprivileged uid" in results["output"], results["output"]
    assert results["score"] == 0, [(t["name"], t["score"]) for t in results["tests"] if t["score"]]


@pytest.mark.slow
def test_without_bwrap_nothing_of_hidden_toml_or_the_reference_reaches_results(autograder_zip, readable_python,
                                                                               request) -> None:
    root = _root(_shared_dir(request, "gradelab-test-gs-"), autograder_zip)
    package = _stubs(root)
    kit = root / "source"
    targets = [kit / "solutions" / LAB / "hidden.toml", kit / "solutions" / LAB / "layers.py",
               kit / "solutions" / LAB / "losses.py", kit / "data" / "mnist" / "SHA256SUMS"]
    # reads what it can of the kit and raises it as its error message: the case's visible output
    _prepend_to_linear_forward(package, (
        "        import os\n"
        "        found = []\n"
        f"        for p in {[str(t) for t in targets]!r}:\n"
        "            try:\n"
        "                found.append(open(p).read()[-600:])\n"
        "            except OSError as exc:\n"
        "                found.append(f'{type(exc).__name__}')\n"
        "        try:\n"
        f"            found.append(' '.join(os.listdir({str(kit)!r})))\n"
        "        except OSError as exc:\n"
        "            found.append(type(exc).__name__)\n"
        "        raise RuntimeError('LEAK ' + ' || '.join(found))\n"))
    results = _run(root, readable_python, "--no-bwrap")
    linear = next(t for t in results["tests"] if t["name"] == "linear_forward")
    assert "LEAK" in linear["output"] and "PermissionError" in linear["output"], linear["output"]
    text = _all_text(results)
    hidden = (ROOT / "solutions" / LAB / "hidden.toml").read_text()
    seeds = re.search(r"seeds = \[([^\]]*)\]", hidden).group(1)
    for seed in seeds.split(","):
        assert seed.strip() not in text, f"hidden seed {seed.strip()} in results.json"
    assert "Hidden seeds" not in text and "BEGIN SOLUTION" not in text
    for name in ("layers.py", "losses.py"):  # the reference's own lines (the stubs do not have them)
        stub = (root / "source" / "labs" / LAB / name).read_text()
        own = [ln.strip() for ln in (ROOT / "solutions" / LAB / name).read_text().splitlines()
               if len(ln.strip()) > 25 and ln.strip() not in stub]
        assert own
        leaked = [ln for ln in own if ln in text]
        assert not leaked, leaked[:3]
    sums = (ROOT / "data" / "mnist" / "SHA256SUMS").read_text().split()[0]
    assert sums not in text


@pytest.mark.slow
def test_without_bwrap_a_daemon_of_the_submission_does_not_outlive_the_run(autograder_zip, readable_python,
                                                                           request) -> None:
    root = _root(_shared_dir(request, "gradelab-test-gs-"), autograder_zip)
    package = _stubs(root)
    # a classic daemon: fork, setsid, fork again, the grandchild sleeps with its stdio closed;
    # the first call reports its pid and uid through the case's error message
    _prepend_to_linear_forward(package, (
        "        import os, time\n"
        "        r, w = os.pipe()\n"
        "        if os.fork() == 0:\n"
        "            os.setsid()\n"
        "            pid = os.fork()\n"
        "            if pid == 0:\n"
        "                for fd in range(0, 256):\n"
        "                    if fd != w:\n"
        "                        try:\n"
        "                            os.close(fd)\n"
        "                        except OSError:\n"
        "                            pass\n"
        "                os.write(w, str(os.getpid()).encode())\n"
        "                os.close(w)\n"
        "                time.sleep(3600)\n"
        "            os._exit(0)\n"
        "        os.close(w)\n"
        "        daemon = os.read(r, 32).decode()\n"
        "        raise RuntimeError(f'DAEMON pid {daemon} uid {os.getuid()}')\n"))
    results = _run(root, readable_python, "--no-bwrap")
    linear = next(t for t in results["tests"] if t["name"] == "linear_forward")
    match = re.search(r"DAEMON pid (\d+) uid (\d+)", linear["output"])
    assert match, linear["output"]
    pid, uid = int(match.group(1)), int(match.group(2))
    assert uid >= gsandbox._CHILD_UID_BASE
    # other graders on this machine have children of their own uids: only this run's uid counts
    left = {p: what for p, what in _child_uid_processes().items() if what.startswith(f"uid {uid} ")}
    assert not left, f"daemon pid {pid}: still running after the run: {left}"


# ----------------------------------------------------------------------------- always a results.json


def _zip(path: Path, members: list[tuple[str, str | None]], symlinks: dict[str, str] | None = None) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members:
            if text is None:
                z.writestr(zipfile.ZipInfo(name), "")  # a folder entry (name ends with /)
            else:
                z.writestr(name, text)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            z.writestr(info, target)


def _deep(base: Path, depth: int, request: pytest.FixtureRequest) -> Path:
    """``base/d/d/.../d`` ``depth`` folders deep, made and removed one level at a time (pathlib's
    mkdir(parents=True) and this Python's shutil.rmtree recurse, and would raise RecursionError)."""
    chain = [base]
    for _ in range(depth):
        chain.append(chain[-1] / "d")
        chain[-1].mkdir()

    def remove() -> None:
        for folder in reversed(chain[1:]):
            for f in folder.iterdir():
                if not f.is_dir() or f.is_symlink():
                    f.unlink()
            folder.rmdir()

    request.addfinalizer(remove)
    return chain[-1]


def _says_what_to_upload(results: dict) -> None:
    assert results["score"] == 0
    assert f"upload the {LAB}/ folder" in results["output"], results["output"]


@pytest.mark.parametrize("upload", ["folder-entry-and-macosx", "only-symlinks", "deep-member", "deep-folder"])
def test_a_broken_upload_still_gets_a_results_json_that_says_what_to_upload(autograder_zip, tmp_path, request,
                                                                            upload) -> None:
    root = _root(tmp_path, autograder_zip)
    sub = root / "submission"
    if upload == "folder-entry-and-macosx":  # was FileNotFoundError: every member skipped
        _zip(sub / "lab1.zip", [(f"{LAB}/", None), ("__MACOSX/", None), (f"__MACOSX/{LAB}/._layers.py", "x")])
    elif upload == "only-symlinks":
        _zip(sub / "lab1.zip", [], {f"{LAB}/layers.py": "/etc/passwd", "mlp.py": "../../source/solutions/lab1/mlp.py"})
    elif upload == "deep-member":  # was RecursionError
        _zip(sub / "lab1.zip", [("d/" * 1500 + "layers.py", "x = 1\n")])
    else:  # the same, not zipped
        (_deep(sub, 1500, request) / "layers.py").write_text("x = 1\n")
    results = _run(root, sys.executable)
    _says_what_to_upload(results)
    assert results["tests"] == []


def test_a_deep_folder_inside_the_lab_is_skipped_and_the_rest_graded(autograder_zip, tmp_path, request) -> None:
    root = _root(tmp_path, autograder_zip)
    package = _stubs(root)
    (_deep(package, 1500, request) / "notes.py").write_text("x = 1\n")
    results = _run(root, sys.executable)
    assert results["score"] == 0 and results["tests"], results["output"]  # the stubs, graded
    assert "NotImplementedError" in results["tests"][0]["output"]


def test_a_failure_of_the_grading_itself_is_a_results_json_too(autograder_zip, tmp_path, monkeypatch) -> None:
    """Whatever raises in collecting or grading: a 0 with a message, never Gradescope's generic error."""
    root = _root(tmp_path, autograder_zip)
    _stubs(root)

    def broken(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(gradescope, "grade_submission", broken)
    verdict = gradescope.run(root, LAB)
    written = json.loads((root / "results" / "results.json").read_text())
    assert written["score"] == verdict["score"] == 0
    assert "could not be graded (RecursionError" in written["output"]
    _says_what_to_upload(written)


def test_a_grader_that_cannot_start_still_writes_results_json(autograder_zip, tmp_path) -> None:
    root = _root(tmp_path, autograder_zip)
    _stubs(root)
    missing = tmp_path / "no-such-python"
    results = _run(root, str(missing))
    _says_what_to_upload(results)
    assert "stopped before it could grade" in results["output"]


# ----------------------------------------------------------------------------- one score on every path


# ReLU.forward flattens to 2-D: right on the public (4, 6) inputs, wrong on hidden variant 1's (2, 3, 5)
RELU_FLATTENS = ("        return np.where(self._mask, x, 0.0)\n",
                 "        return np.where(self._mask, x, 0.0).reshape(x.shape[0], -1)\n")


@pytest.mark.slow
def test_gradescope_scores_a_hidden_variant_failure_as_gradelab_grade_does(autograder_zip, tmp_path,
                                                                           sandbox) -> None:
    root = _root(tmp_path, autograder_zip)
    package = root / "submission" / LAB
    shutil.copytree(ROOT / "solutions" / LAB, package, ignore=shutil.ignore_patterns("*.toml", "__pycache__"))
    layers = package / "layers.py"
    assert layers.read_text().count(RELU_FLATTENS[0]) == 1
    layers.write_text(layers.read_text().replace(*RELU_FLATTENS))
    lab = load_cases(LAB, paths.tests_dir())
    reference = grade(lab, package.parent, isolated=True)
    failed = {c.name for c in reference.cases if not c.passed}
    assert failed == {"relu_forward"}, {c.name: c.output for c in reference.cases if not c.passed}
    assert grade(lab, package.parent, isolated=False, only=["relu_forward"]).score == 3  # public seed passes

    results = _run(root, sys.executable)
    assert results["score"] == pytest.approx(reference.score) == 100 - 3
    assert sum(t["max_score"] for t in results["tests"]) == pytest.approx(100)
    relu = next(t for t in results["tests"] if t["name"] == "relu_forward")
    assert relu["score"] == 0 and relu["max_score"] == 3 and relu["visibility"] == "visible"
    assert "fails on a hidden variant" in relu["output"] and "details are shown after the due date" in relu["output"]
    hidden = next(t for t in results["tests"] if t["name"] == "relu_forward (hidden variants)")
    assert hidden["visibility"] == "after_due_date" and hidden["max_score"] == 0 and hidden["status"] == "failed"
    assert "(hidden variant 1)" in hidden["output"] and "shape" in hidden["output"], hidden["output"]
