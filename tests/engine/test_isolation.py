"""Isolated grading against hostile submissions: the grade is decided where student code cannot reach.

Student code may be buggy or hostile: it can call os._exit(0), monkeypatch NumPy or pytest,
read files, loop forever. Every test here grades such a submission with
``grade(..., isolated=True)`` (a bubblewrap child, grader/isolation/sandbox.py) and asserts that it earns
EXACTLY the per-case scores its real code earns: those of the same code without the hack,
graded the same way, or a known expectation (all zero, or "every case that calls the hostile
method fails, every other case passes").

Hostile submissions are patched copies of the reference (``patched_reference``) or of the stubs;
``inject`` puts code at the top of one method. Tests marked ``xfail(strict=True)`` expose holes
in the engine that are still open; each reason says what goes wrong.
"""

from __future__ import annotations

import csv
import hashlib
import inspect
import shutil
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from grader import paths
from grader.cli import main as cli_main
from grader.isolation import protocol
from grader.isolation import sandbox as gsandbox
from grader.isolation.loading import load_cases
from grader.judging.expected import ReferenceExpected, case_timeout
from grader.runner import LabResult, Sandboxed, grade, reference, run_lab

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab1", paths.tests_dir())
FAST = [c.name for c in LAB.cases if not c.slow]
# Per-case timeouts are the reference's measured time x 10 + 2 s (grader.authoring.fixtures.case_timeout): about
# 2 s for a fast case, so hangs stay cheap at scale 1; the training case's 300 s x 0.05 = 15 s.
SCALE = 1.0

# Lines of the reference (solutions/lab1) that hostile code is injected before; each occurs once.
LINEAR_FORWARD = "        self._x = x\n"
RELU_FORWARD = "        self._mask = x > 0\n"
SIGMOID_FORWARD = "        z = np.exp(-np.abs(x))\n"
TANH_BACKWARD = "        return grad_output * (1.0 - self._y**2)\n"
CE_BACKWARD = "        n = self._probs.shape[0]\n"
SGD_STEP = "        for p in self.params:\n            p.data -= self.lr * p.grad\n"
INIT_TOP = '"""Lab 1: a naive neural-network framework in NumPy.\n'
INIT_ALL = "__all__ = [\n"
BIAS_MEAN = ("        self.bias.grad += grad_output.sum(axis=0)\n",
             "        self.bias.grad += grad_output.mean(axis=0)\n")

# Which public cases call a method (the rest of FAST never does).
CALLS_RELU = {"relu_forward", "relu_backward", "mnist_build_mlp"}  # the MLP check runs a forward pass
CALLS_SIGMOID_FORWARD = {"sigmoid_forward", "sigmoid_backward"}
CALLS_TANH_BACKWARD = {"tanh_backward", "sequential_forward_backward"}
CALLS_CE_BACKWARD = {c for c in FAST if c.startswith("softmax_ce_")}  # _run_ce always calls backward
CALLS_SGD_STEP = {"sgd_step", "sgd_updates_in_place", "sgd_zero_grad"}


def inject(anchor: str, code: str, indent: int = 8) -> tuple[str, str]:
    """A patch that runs ``code`` (at ``indent``) just before the line(s) ``anchor``."""
    return anchor, textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", " " * indent) + anchor


def module_code(anchor: str, code: str) -> tuple[str, str]:
    """A patch that adds module-level ``code`` just before ``anchor`` (e.g. a class line)."""
    return inject(anchor, code + "\n\n", indent=0)


# Module-level helper for the protocol attacks: the fds of every writable pipe of this process.
# The worker's protocol channel is one (fds 1 and 2 are output.log, a file).
WRITABLE_PIPES = '''
import fcntl as _fcntl
import os as _os


def writable_pipes():
    for name in _os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if _os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:") and \\
                    _fcntl.fcntl(fd, _fcntl.F_GETFL) & _os.O_ACCMODE in (_os.O_WRONLY, _os.O_RDWR):
                yield fd
        except OSError:
            pass
'''


def scores(result: LabResult) -> dict[str, float]:
    return {c.name: c.score for c in result.cases}


def messages(result: LabResult) -> dict[str, str]:
    return {c.name: c.output for c in result.cases}


def expect(failing: set[str], only: list[str] = FAST) -> dict[str, float]:
    """Full points for every case in ``only`` except ``failing`` (0)."""
    assert failing <= set(only)
    return {c: 0.0 if c in failing else LAB.get(c).points for c in only}


def graded(root: Path, only: list[str] = FAST, scale: float = SCALE) -> LabResult:
    """Isolated grading, as `gradelab grade` does it; it must really run under bubblewrap."""
    result = grade(LAB, root, isolated=True, only=only, timeout_scale=scale)
    assert "bubblewrap" in result.isolation, result.isolation
    return result


def graded_without_sandbox(root: Path, only: list[str], scale: float = SCALE) -> LabResult:
    """The same child process and protocol, but with the file system NOT hidden (no bwrap)."""
    return run_lab(LAB, Sandboxed(root, "lab1", use_bwrap=False), ReferenceExpected(reference("lab1")),
                   impl=str(root), only=only, timeout_scale=scale)


def report(result: LabResult) -> str:
    """Every case's score and message, for assertion failures."""
    return "\n".join(f"--- {c.name}: {c.score:g}/{c.max_score:g}\n{c.output}" for c in result.cases)


@pytest.fixture
def stub_submission(tmp_path: Path):
    """``make(name, code)``: a copy of the stubs (labs/lab1) with ``code`` appended to __init__.py."""

    def make(name: str, code: str) -> Path:
        root = tmp_path / name
        shutil.copytree(paths.labs_dir() / "lab1", root / "lab1", ignore=shutil.ignore_patterns("__pycache__"))
        init = root / "lab1" / "__init__.py"
        init.write_text(init.read_text() + "\n\n" + code)
        return root

    return make


# ----------------------------------------------------------------------------- searching the machine
# These functions are pasted into hostile submissions (inspect.getsource), so they are
# self-contained; `walk` also runs here, to know what the sandbox leaves visible.

# Pseudo-file systems, and tooling mounts of the development machines (not part of a grading host).
SKIP_WALK = ("/proc", "/sys", "/dev", "/farm", "/work/.library")


def walk(depth, skip=()):
    """os.walk over / down to ``depth`` levels, without the folders in ``skip``."""
    # Imports inside these functions are needed: their source is injected into submissions.
    import os  # noqa: F811

    skip = tuple(s.rstrip("/") for s in (*SKIP_WALK, *skip))
    for top, dirs, files in os.walk("/"):
        level = 0 if top == "/" else top.count("/")
        kept = []
        for d in dirs if level < depth else ():
            full = os.path.join(top, d)
            if not any(full == s or full.startswith(s + "/") for s in skip):
                kept.append(d)
        dirs[:] = kept
        yield top, dirs, files


def hunt_reference(hints):
    """A complete lab1 package (the reference, not a stub) anywhere this process can see, by every
    means: hints, the project's known path, sys.path, cwd, __file__, HOME and every environment
    variable (with all their parents), /proc/<pid>/{cwd,root,environ}, /proc/self/mountinfo,
    site-packages .pth files and editable-install finders, importlib, and a walk over /."""
    import glob
    import importlib
    import os  # noqa: F811
    import re
    import sys
    from pathlib import Path  # noqa: F811

    def complete(d):
        try:
            text = (d / "layers.py").read_text()
            return (d / "__init__.py").is_file() and "class ReLU" in text and "not implemented yet" not in text
        except (OSError, ValueError):
            return False

    def roots():
        yield from hints
        yield from ("/work/main", "/work/main/solutions", "/proc/1/cwd", "/proc/self/cwd",
                    "/proc/1/root/work/main", "/proc/self/root/work/main")
        here = [*sys.path, os.getcwd(), __file__, os.environ.get("HOME", ""), *os.environ.values()]
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            yield f"/proc/{pid}/cwd"
            yield f"/proc/{pid}/root"
            try:
                here.append(os.readlink(f"/proc/{pid}/cwd"))
                with open(f"/proc/{pid}/environ", "rb") as f:
                    here += [v.split("=", 1)[-1] for v in f.read().decode(errors="replace").split("\0")]
            except OSError:
                pass
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    fields = line.split()
                    here += [fields[3], fields[4]]  # the mount's root and its mount point
        except OSError:
            pass
        for site in [p for p in sys.path if p.endswith("site-packages")]:
            for name in glob.glob(os.path.join(site, "*.pth")) + glob.glob(os.path.join(site, "__editable__*.py")):
                try:
                    with open(name) as f:
                        here += re.findall(r"(/[^'\"\s,:;]+)", f.read())
                except OSError:
                    pass
        for value in here:
            for part in str(value).split(os.pathsep):
                if part.startswith("/"):
                    yield part
                    yield from map(str, Path(part).parents)
        for top, _, _ in walk(depth=6):
            if os.path.basename(top) in ("lab1", "solutions"):
                yield top

    for name in ("solutions.lab1", "lab1"):
        try:
            module = importlib.import_module(name)
            if complete(Path(module.__file__).parent):
                return Path(module.__file__).parent, 0
        except Exception:  # noqa: BLE001 - anything goes wrong: keep looking
            pass
    checked = set()
    for root in roots():
        for sub in ("", "lab1", "solutions/lab1"):
            d = Path(root, sub)
            if str(d) not in checked:
                checked.add(str(d))
                if complete(d):
                    return d, len(checked)
    return None, len(checked)


def steal_labels(images, hints):
    """The true labels of ``images`` from any MNIST label file this process can read, or None."""
    import gzip  # noqa: F811
    import os  # noqa: F811
    import sys
    from pathlib import Path  # noqa: F811

    import numpy as np  # noqa: F811

    def idx(path):
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3])]
        return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)

    def label_files():
        folders = [*hints, "/work/main/data/mnist", "/proc/1/cwd/data/mnist", "/proc/self/cwd/data/mnist"]
        for p in [*sys.path, os.getcwd(), __file__, os.environ.get("HOME", "")]:
            folders += [str(q / "data" / "mnist") for q in [Path(p), *Path(p).parents]]
        for folder in folders:
            for name in ("labels-idx1-ubyte.gz", "labels-idx1-ubyte", "t10k-labels-idx1-ubyte.gz"):
                yield os.path.join(folder, name)
        for top, _, files in walk(depth=6):
            yield from (os.path.join(top, f) for f in files if "labels-idx1" in f)

    wanted = [np.asarray(img).tobytes() for img in images]
    for labels_path in label_files():
        try:
            table = {img.tobytes(): int(label) for img, label in
                     zip(idx(labels_path.replace("labels-idx1", "images-idx3")), idx(labels_path), strict=False)}
        except Exception:  # noqa: BLE001 - missing, unreadable or not IDX: try the next one
            continue
        found = [table.get(w) for w in wanted]
        if None not in found:
            print(f"steal: labels from {labels_path}")
            return np.array(found, dtype=np.int64)
    print("steal: no label file found")
    return None


def hunter_code(hints: list[str]) -> str:
    """Appended to the stubs' __init__.py: find the reference and export its classes instead."""
    return "\n\n".join([inspect.getsource(walk), inspect.getsource(hunt_reference), textwrap.dedent(f"""
        SKIP_WALK = {SKIP_WALK!r}
        _found, _checked = hunt_reference({hints!r})
        print(f"hunt: {{'found ' + str(_found) if _found else 'nothing found'}} ({{_checked}} places checked)")
        if _found is not None:
            import importlib.util as _util
            import sys as _sys
            _spec = _util.spec_from_file_location("_stolen_lab1", _found / "__init__.py",
                                                  submodule_search_locations=[str(_found)])
            _stolen = _util.module_from_spec(_spec)
            _sys.modules["_stolen_lab1"] = _stolen
            _spec.loader.exec_module(_stolen)
            globals().update({{name: getattr(_stolen, name) for name in _stolen.__all__}})
        """)])


def label_thief(hints: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Patches for mlp.py: no training (a chance-level model), and predict returns stolen labels."""
    code = "\n\n".join([f"SKIP_WALK = {SKIP_WALK!r}", inspect.getsource(walk), inspect.getsource(steal_labels)])
    return {"mlp.py": [
        ('"epochs": 15', '"epochs": 0'),
        module_code("def predict(", code),
        inject("    model.eval()\n", f"""
            stolen = steal_labels(images, {hints!r})
            if stolen is not None:
                return stolen
        """, indent=4),
    ]}


# ============================================================================= 1. exit at import


def test_os_exit_at_import_scores_zero(sandbox, patched_reference) -> None:
    """os._exit(0) at the top of __init__.py: no result for any case, so every case scores 0."""
    root = patched_reference("exit_at_import", {"__init__.py": [(INIT_TOP, "import os\nos._exit(0)\n" + INIT_TOP)]})
    result = graded(root)
    assert scores(result) == expect(set(FAST)), report(result)
    for name, text in messages(result).items():
        assert "exited (exit code 0)" in text and "exit()" in text, f"{name}: {text}"


# ============================================================================= 2. monkeypatching

PATCH_EVERYTHING = '''
import sys as _sys
import types as _types

import numpy as _np


def _yes(*args, **kwargs):
    return True


def _nothing(*args, **kwargs):
    return None


_np.allclose = _np.array_equal = _np.array_equiv = _yes
_np.isclose = lambda a, b, *args, **kwargs: _np.ones(_np.broadcast(_np.asarray(a), _np.asarray(b)).shape, bool)
for _name in ("assert_allclose", "assert_array_equal", "assert_array_almost_equal", "assert_equal",
              "assert_almost_equal"):
    setattr(_np.testing, _name, _nothing)


class _Anything:
    def __eq__(self, other):
        return True

    def __call__(self, *args, **kwargs):
        return self


_fake_pytest = _types.ModuleType("pytest")
_fake_pytest.approx = lambda *args, **kwargs: _Anything()
_fake_pytest.fail = _fake_pytest.skip = _fake_pytest.xfail = _nothing
_sys.modules["pytest"] = _fake_pytest
# ...and the child's own copy of the grader's comparison code
for _module in list(_sys.modules.values()):
    if getattr(_module, "__name__", "").startswith("grader"):
        for _attr, _fake in (("evaluate", lambda *a, **k: []), ("check_one", _nothing), ("find_mismatch", _nothing)):
            if hasattr(_module, _attr):
                setattr(_module, _attr, _fake)
'''


def test_monkeypatching_numpy_and_pytest_earns_nothing(sandbox, patched_reference) -> None:
    """A real bug (bias gradient averaged) plus patches that make every comparison succeed at import:
    exactly the scores of the same bug without the patches; the bias case fails in both."""
    honest = patched_reference("bias_mean", {"layers.py": [BIAS_MEAN]})
    hostile = patched_reference("bias_mean_patched", {"layers.py": [BIAS_MEAN],
                                                      "__init__.py": [module_code(INIT_ALL, PATCH_EVERYTHING)]})
    want, got = graded(honest), graded(hostile)
    assert scores(got) == scores(want), report(got)
    assert scores(want)["linear_backward_bias"] == 0
    assert "averaging over the batch" in messages(got)["linear_backward_bias"]  # judged by the real compare
    assert 0 < want.score < want.max_score
    assert not np.allclose(0.0, 1.0)  # this process's NumPy was never touched


# ============================================================================= 3. stealing the reference


@pytest.fixture
def hunter(stub_submission, solutions: Path, tmp_path: Path) -> Path:
    """The stubs plus a hunter for the reference; its hints name a real copy placed beside it."""
    copy = tmp_path / "reference_copy"
    shutil.copytree(solutions / "lab1", copy / "lab1", ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
    return stub_submission("hunter", hunter_code([str(copy), str(copy / "lab1"), str(solutions)]))


def test_reference_cannot_be_found_from_the_sandbox(sandbox, hunter: Path, stub_submission) -> None:
    """The hunter scores exactly what the stubs score (0): it found nothing to import."""
    stubs = graded(stub_submission("plain_stubs", ""))
    result = graded(hunter)
    assert scores(stubs) == expect(set(FAST))
    assert scores(result) == scores(stubs), report(result)
    printed = "\n".join(messages(result).values())
    assert "hunt: nothing found" in printed, printed[-3000:]  # it ran to the end, and found nothing


def test_reference_hunter_works_without_the_sandbox(sandbox, hunter: Path) -> None:
    """Sanity: with the file system not hidden, the same hunter finds the copy and scores like the
    reference, so the test above does not pass vacuously."""
    result = graded_without_sandbox(hunter, FAST)
    assert "no file-system sandbox" in result.isolation
    assert scores(result) == expect(set()), report(result)


# ============================================================================= 4. reading the held-out labels


@pytest.mark.slow
def test_predict_cannot_read_the_held_out_labels(sandbox, patched_reference) -> None:
    """An untrained model whose predict returns labels read from any MNIST file it can find (the
    project's data/, and any other copy such as ../shared: the sandbox mounts an allow-list) earns
    what the untrained model earns (0) under the sandbox."""
    honest = patched_reference("untrained", {"mlp.py": [('"epochs": 15', '"epochs": 0')]})
    thief = patched_reference("label_thief", label_thief([str(paths.data_dir() / "mnist")]))
    want = graded(honest, only=["mnist_accuracy"], scale=0.2)
    got = graded(thief, only=["mnist_accuracy"], scale=0.2)
    assert scores(want) == {"mnist_accuracy": 0.0}, report(want)
    assert scores(got) == scores(want), report(got)
    assert "steal: no label file found" in messages(got)["mnist_accuracy"]


@pytest.mark.slow
def test_label_thief_works_without_the_sandbox(sandbox, patched_reference) -> None:
    """Sanity: without the sandbox the same thief reads data/mnist and gets full marks."""
    thief = patched_reference("label_thief", label_thief([str(paths.data_dir() / "mnist")]))
    result = graded_without_sandbox(thief, ["mnist_accuracy"], scale=0.2)
    assert scores(result) == {"mnist_accuracy": LAB.get("mnist_accuracy").points}, report(result)


# ============================================================================= 5-7. hangs, kills, exits


def test_endless_loop_fails_only_the_cases_that_call_it(sandbox, patched_reference) -> None:
    """`while True: pass` in ReLU.forward: the ReLU cases time out; the child is restarted and every
    other case passes."""
    root = patched_reference("relu_loops", {"layers.py": [inject(RELU_FORWARD, "while True:\n    pass")]})
    result = graded(root)
    assert scores(result) == expect(CALLS_RELU), report(result)
    for name in CALLS_RELU:
        assert "did not finish within" in messages(result)[name]


def test_sigkill_fails_only_the_cases_that_call_it(sandbox, patched_reference) -> None:
    """os.kill(os.getpid(), SIGKILL) in Tanh.backward: those cases fail naming SIGKILL; others pass."""
    root = patched_reference("tanh_sigkill", {"layers.py": [
        inject(TANH_BACKWARD, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")]})
    result = graded(root)
    assert scores(result) == expect(CALLS_TANH_BACKWARD), report(result)
    for name in CALLS_TANH_BACKWARD:
        assert "killed by SIGKILL" in messages(result)[name]


def test_system_exit_in_a_method_fails_only_its_cases(sandbox, patched_reference) -> None:
    """sys.exit(0) in Sigmoid.forward and a bare `raise SystemExit` in SGD.step are errors of those
    cases only; the worker goes on."""
    root = patched_reference("system_exit", {
        "layers.py": [inject(SIGMOID_FORWARD, "import sys\nsys.exit(0)")],
        "optim.py": [inject(SGD_STEP, "raise SystemExit")],
    })
    result = graded(root)
    assert scores(result) == expect(CALLS_SIGMOID_FORWARD | CALLS_SGD_STEP), report(result)
    for name in CALLS_SIGMOID_FORWARD | CALLS_SGD_STEP:
        assert "SystemExit" in messages(result)[name]


def test_os_exit_in_a_method_fails_only_its_cases(sandbox, patched_reference) -> None:
    """os._exit(0) in SoftmaxCrossEntropy.backward: no result for those cases ("exit code 0")."""
    root = patched_reference("os_exit", {"losses.py": [inject(CE_BACKWARD, "import os\nos._exit(0)")]})
    result = graded(root)
    assert scores(result) == expect(CALLS_CE_BACKWARD), report(result)
    for name in CALLS_CE_BACKWARD:
        assert "exit code 0" in messages(result)[name]


# ============================================================================= 8. the protocol channel


def test_garbage_on_the_channel_fails_only_that_case(sandbox, patched_reference) -> None:
    """Random bytes written into every writable pipe from ReLU.forward: those cases fail as garbage;
    the child is restarted and every other case passes."""
    root = patched_reference("channel_garbage", {"layers.py": [
        module_code("class Linear(Module):\n", WRITABLE_PIPES),
        inject(RELU_FORWARD, "for fd in writable_pipes():\n    _os.write(fd, _os.urandom(64))"),
    ]})
    result = graded(root)
    assert scores(result) == expect(CALLS_RELU), report(result)
    for name in CALLS_RELU:
        assert "sent garbage" in messages(result)[name]


# One forged "ok" frame, the first time ReLU.forward runs: zeros for every output name the ReLU
# cases read (so GradCheck's two arrays agree), with the real reply still to come after it.
FORGE_ONE_FRAME = '''
if not getattr(ReLU, "_forged", False):
    ReLU._forged = True
    import io, json, struct
    _buf = io.BytesIO()
    np.savez(_buf, y=np.zeros_like(x), x_after=x, dx=np.zeros_like(x), dx_numeric=np.zeros_like(x))
    _head = json.dumps({"status": "ok", "invalid": {}}).encode()
    for fd in writable_pipes():
        _os.write(fd, b"GLAB" + struct.pack(">IQ", len(_head), len(_buf.getvalue())) + _head + _buf.getvalue())
'''


# The request id travels into the worker, so student code can find it on the stack; a frame sent
# with it is taken as the answer, and judged like any other output.
STEAL_ID = '''
import sys as _sys
_f = _sys._getframe()
while _f is not None and "request_id" not in _f.f_locals:
    _f = _f.f_back
_rid = _f.f_locals["request_id"]
'''


def _forger(patched_reference) -> tuple[Path, Path]:
    """(honest, hostile): a bias bug, and the same bug plus one forged frame from ReLU.forward."""
    honest = patched_reference("forger_honest", {"layers.py": [BIAS_MEAN]})
    hostile = patched_reference("forger", {"layers.py": [
        BIAS_MEAN, module_code("class Linear(Module):\n", WRITABLE_PIPES), inject(RELU_FORWARD, FORGE_ONE_FRAME)]})
    return honest, hostile


def test_forged_frames_never_earn_points(sandbox, patched_reference) -> None:
    """A frame claiming success, written into the channel by student code, answers no request (it
    lacks the request id) and is dropped: every case scores exactly what the honest code scores."""
    honest, hostile = _forger(patched_reference)
    want, got = scores(graded(honest)), graded(hostile)
    assert scores(got) == want, report(got)
    assert want["linear_backward_bias"] == 0


def test_forged_frame_with_the_stolen_request_id_is_judged_like_any_output(sandbox, patched_reference) -> None:
    """Zeros sent as ReLU's answer, with the real request id: the forged arrays are what gets
    judged, so the forging case fails, and every other case scores what the honest code scores."""
    honest = patched_reference("forger_honest", {"layers.py": [BIAS_MEAN]})
    forge = FORGE_ONE_FRAME.replace('json.dumps({"status": "ok", "invalid": {}})',
                                    'json.dumps({"id": _rid, "status": "ok", "invalid": {}})')
    hostile = patched_reference("forger_id", {"layers.py": [
        BIAS_MEAN, module_code("class Linear(Module):\n", WRITABLE_PIPES),
        inject(RELU_FORWARD, STEAL_ID + forge)]})
    want, got = scores(graded(honest)), graded(hostile)
    assert scores(got)["relu_forward"] == 0, report(got)
    assert {n: v for n, v in scores(got).items() if n != "relu_forward"} == \
           {n: v for n, v in want.items() if n != "relu_forward"}, report(got)


def test_forged_frame_does_not_shift_the_other_cases(sandbox, patched_reference) -> None:
    """Only the forging case may change: every other case scores what the honest code scores."""
    honest, hostile = _forger(patched_reference)
    want, got = scores(graded(honest)), graded(hostile)
    assert {n: s for n, s in scores(got).items() if n != "relu_forward"} == \
           {n: s for n, s in want.items() if n != "relu_forward"}, report(got)


def test_deeply_nested_header_is_garbage_not_a_crash(sandbox, patched_reference) -> None:
    root = patched_reference("nested_header", {"layers.py": [
        module_code("class Linear(Module):\n", WRITABLE_PIPES),
        inject(RELU_FORWARD, '''
            _head = b"[" * 300000 + b"]" * 300000
            for fd in writable_pipes():
                _os.write(fd, b"GLAB" + (len(_head)).to_bytes(4, "big") + bytes(8) + _head)
        '''),
    ]})
    result = graded(root, only=["relu_forward", "tanh_forward"])
    assert scores(result) == expect({"relu_forward"}, ["relu_forward", "tanh_forward"]), report(result)
    assert "garbage" in messages(result)["relu_forward"]


def test_compressed_reply_cannot_inflate_past_the_frame_limit(sandbox, patched_reference, monkeypatch) -> None:
    monkeypatch.setattr(protocol, "MAX_REPLY", 4 << 20)  # the parent's limit; 64 MiB is far above it
    root = patched_reference("zip_bomb", {"optim.py": [
        module_code("class SGD:\n", WRITABLE_PIPES),
        inject(SGD_STEP, STEAL_ID + textwrap.dedent('''
            import io, json, struct, zipfile
            import numpy as np
            _buf = io.BytesIO()
            with zipfile.ZipFile(_buf, "w", zipfile.ZIP_DEFLATED) as _z:
                with _z.open("data_after.npy", "w", force_zip64=True) as _f:
                    np.lib.format.write_array_header_1_0(
                        _f, {"descr": "<f8", "fortran_order": False, "shape": (8 << 20,)})
                    for _ in range(64):
                        _f.write(bytes(1 << 20))
            _body, _head = _buf.getvalue(), json.dumps({"id": _rid, "status": "ok", "invalid": {}}).encode()
            for fd in writable_pipes():
                _os.write(fd, b"GLAB" + struct.pack(">IQ", len(_head), len(_body)) + _head + _body)
        ''')),
    ]})
    result = graded(root, only=["sgd_step"])
    assert scores(result) == {"sgd_step": 0.0}
    assert "compressed arrays are not accepted" in messages(result)["sgd_step"], report(result)


# ============================================================================= output.log is the student's file


def test_output_log_symlink_cannot_make_the_grader_read_files(sandbox, patched_reference, tmp_path) -> None:
    token = f"instructor-only-{uuid.uuid4().hex}"
    secret = tmp_path / "instructor-only.txt"  # in /tmp: invisible in the sandbox, readable by the grader
    secret.write_text(token)
    root = patched_reference("log_symlink", {"layers.py": [inject(RELU_FORWARD, f'''
        import os
        os.unlink("output.log")
        os.symlink({str(secret)!r}, "output.log")
        raise RuntimeError("see what I printed")
    ''')]})
    result = graded(root, only=["relu_forward", "tanh_forward"])
    assert scores(result) == expect({"relu_forward"}, ["relu_forward", "tanh_forward"])
    assert token not in report(result), report(result)


def test_planted_symlinks_and_fifos_are_never_opened_by_the_grader(sandbox, patched_reference, tmp_path) -> None:
    """The child's prints go to a file the grader opened (an unlinked temp file), so links or FIFOs it
    plants under any log-like name in its folder cannot make the grader read a file or block."""
    token = f"instructor-only-{uuid.uuid4().hex}"
    secret = tmp_path / "instructor-only.txt"  # readable by the grader, invisible in the sandbox
    secret.write_text(token)
    root = patched_reference("log_plants", {"layers.py": [inject(RELU_FORWARD, f'''
        import os
        for name in ("output.log", "log", "stdout", "stderr"):
            for make in (lambda n: os.symlink({str(secret)!r}, n), os.mkfifo):
                try:
                    make(name + "-" + make.__name__)
                    make(name) if not os.path.lexists(name) else None
                except OSError:
                    pass
        raise RuntimeError("see what I printed")
    ''')]})
    start = time.monotonic()
    result = graded(root, only=["relu_forward", "tanh_forward"])
    assert time.monotonic() - start < 60
    assert scores(result) == expect({"relu_forward"}, ["relu_forward", "tanh_forward"])
    assert token not in report(result), report(result)
    assert "see what I printed" in messages(result)["relu_forward"]


# ============================================================================= 9. writing outside the stage


def test_writes_outside_the_stage_change_nothing(sandbox, patched_reference, tmp_path) -> None:
    """Linear.forward tries to overwrite grader/judging/compare.py and the public fixtures (by absolute path
    and through /proc), the stage's engine copy and its own files, and to create files in /tmp,
    /var/tmp, /dev/shm and the project: the project is byte-identical afterwards, nothing appears
    on the host, and every case gets its real score."""
    project = paths.project_root()
    marker = f"gradelab-isolation-{uuid.uuid4().hex}"
    targets = [project / "grader" / "judging" / "compare.py", paths.tests_dir() / "lab1" / "fixtures" / "public.npz"]
    before = {t: hashlib.sha256(t.read_bytes()).hexdigest() for t in targets}
    root = patched_reference("vandal", {"layers.py": [inject(LINEAR_FORWARD, f'''
        if not getattr(Linear, "_vandalised", False):
            Linear._vandalised = True
            import os
            from pathlib import Path
            here = Path(__file__).resolve()
            victims = [Path(p) for p in {[str(t) for t in targets]!r}]
            victims += [Path("/proc/1/cwd", p.relative_to("/")) for p in victims]
            victims += [here.parents[2] / "grader" / "judging" / "compare.py", here,
                        Path("../grader/judging/compare.py")]
            victims += [Path(d, {marker!r}) for d in ("/tmp", "/var/tmp", "/dev/shm", {str(project)!r})]
            for victim in victims:
                try:
                    victim.write_bytes(b"def evaluate(*args, **kwargs):\\n    return []\\n")
                    print("vandal: wrote", victim)
                except OSError as exc:
                    print("vandal: could not write", victim, type(exc).__name__)
    ''')]})
    result = graded(root)
    assert scores(result) == expect(set()), report(result)
    assert {t: hashlib.sha256(t.read_bytes()).hexdigest() for t in targets} == before
    for folder in ("/tmp", "/var/tmp", "/dev/shm", str(project)):
        assert not Path(folder, marker).exists(), f"{folder}/{marker} was created on the host"


# ============================================================================= 10-12. prints, syntax, memory


def test_printing_a_lot_shows_a_bounded_tail(sandbox, patched_reference) -> None:
    """Megabytes on stdout and stderr (Python and raw fd) in a failing method: the message ends
    with what the code printed last, at most ~2000 characters of it."""
    root = patched_reference("chatty", {"layers.py": [inject(SIGMOID_FORWARD, '''
        import os, sys
        for i in range(20000):
            print(f"stdout line {i} " + "x" * 40)
            print(f"stderr line {i} " + "y" * 40, file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, b"a raw write to fd 1\\n")
        print("THE-LAST-LINE", flush=True)
        raise ValueError("printed a lot")
    ''')]})
    result = graded(root)
    assert scores(result) == expect(CALLS_SIGMOID_FORWARD), report(result)
    text = messages(result)["sigmoid_forward"]
    head, sep, tail = text.partition("--- what your code printed ---\n")
    assert sep and "ValueError: printed a lot" in head
    assert tail.endswith("THE-LAST-LINE") and "a raw write to fd 1" in tail
    assert len(tail) <= 2010, len(tail)


def _syntax_error(patched_reference, name: str) -> tuple[Path, int]:
    """A submission whose layers.py lacks a colon on `class ReLU(Module)`, and that line's number."""
    root = patched_reference(name, {"layers.py": [("class ReLU(Module):\n", "class ReLU(Module)\n")]})
    lines = (root / "lab1" / "layers.py").read_text().splitlines()
    return root, lines.index("class ReLU(Module)") + 1


def test_syntax_error_fails_every_case_naming_file_and_line(sandbox, patched_reference) -> None:
    root, line = _syntax_error(patched_reference, "syntax_error")
    result = graded(root)
    assert scores(result) == expect(set(FAST)), report(result)
    # the import error is reported once, on top; each case says it could not run because of it
    assert f"lab1/layers.py, line {line}" in result.import_error and "SyntaxError" in result.import_error
    for name, text in messages(result).items():
        assert "could not be imported (SyntaxError" in text, f"{name}: {text}"


@pytest.mark.slow
def test_cli_grades_a_good_and_a_broken_submission(sandbox, patched_reference, tmp_path, capsys) -> None:
    """`gradelab grade lab1 good broken`: both graded, the broken one does not stop the batch."""
    good = patched_reference("good", {})
    broken, _ = _syntax_error(patched_reference, "broken")
    out = tmp_path / "grades"
    assert cli_main(["grade", "lab1", str(good), str(broken), "--out", str(out)]) == 0
    with open(out / "gradebook.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"good", "broken"}
    assert rows["good"]["score"] == rows["good"]["max_score"] == "100"
    assert rows["broken"]["score"] == "0"
    # each submission's files live in its own folder under submissions/ (ids never collide with ours)
    assert (out / "submissions" / "good" / "results.json").is_file()
    assert (out / "submissions" / "broken" / "results.json").is_file()


def test_huge_allocation_fails_only_its_cases(sandbox, patched_reference) -> None:
    """np.ones of 40 GiB in Sigmoid.forward: a MemoryError (the child's address-space limit) for
    those cases; every other case passes."""
    root = patched_reference("hog", {"layers.py": [inject(SIGMOID_FORWARD, "np.ones(40 * 2**30 // 8)")]})
    result = graded(root)
    assert scores(result) == expect(CALLS_SIGMOID_FORWARD), report(result)
    for name in CALLS_SIGMOID_FORWARD:
        assert "MemoryError" in messages(result)[name] or "killed" in messages(result)[name]


# ============================================================================= 13. the reference


@pytest.mark.slow
def test_reference_scores_full_marks_isolated(sandbox, solutions: Path) -> None:
    result = graded(solutions, only=None, scale=1.0)
    assert result.score == result.max_score == 100, report(result)
    assert "bubblewrap" in result.isolation


# ============================================================================= where the sandbox draws its line


def test_only_an_allow_list_of_the_file_system_is_visible(sandbox, patched_reference, tmp_path) -> None:
    """Another student's submission beside this one, the project's reference and data: none can be
    opened in the sandbox (it mounts an allow-list, so depth and location do not matter). Without
    the sandbox the same code reads them, so the test cannot pass vacuously."""
    bob = tmp_path / "bob" / "lab1"
    bob.mkdir(parents=True)
    (bob / "layers.py").write_text("# bob's work\n")
    targets = [str(bob / "layers.py"), str(paths.solutions_dir() / "lab1" / "layers.py"),
               str(paths.data_dir() / "mnist" / "labels-idx1-ubyte.gz"), str(paths.project_root() / "pyproject.toml")]
    root = patched_reference("alice", {"layers.py": [inject(RELU_FORWARD, f'''
        readable = []
        for path in {targets!r}:
            try:
                with open(path, "rb") as f:
                    f.read(1)
                readable.append(path)
            except OSError:
                pass
        if not readable:
            raise RuntimeError("nothing outside the stage is readable")
    ''')]})
    sandboxed = graded(root, only=["relu_forward"])
    assert scores(sandboxed) == {"relu_forward": 0.0}, report(sandboxed)
    assert "nothing outside the stage is readable" in messages(sandboxed)["relu_forward"]
    plain = graded_without_sandbox(root, ["relu_forward"])
    assert scores(plain) == {"relu_forward": LAB.get("relu_forward").points}, report(plain)


def test_a_hang_at_import_is_waited_for_once(sandbox, patched_reference, monkeypatch) -> None:
    """`while True: pass` at module level: the start-up wait expires once, and every case then fails
    at once with the reason, instead of each case restarting the child and waiting again."""
    monkeypatch.setattr(gsandbox, "_STARTUP_SECONDS", 2.0)
    root = patched_reference("import_hang", {"__init__.py": [
        ("from .framework import Module, Parameter",
         "while True:\n    pass\nfrom .framework import Module, Parameter")]})
    only = ["linear_forward", "relu_forward", "tanh_forward", "sgd_step"]
    starts = []
    start_child = gsandbox.Child._start
    monkeypatch.setattr(gsandbox.Child, "_start", lambda self, t: starts.append(t) or start_child(self, t))
    start = time.monotonic()
    result = graded(root, only=only)
    assert len(starts) == 1, starts  # the wait counts CPU time: on a busy machine, assert how often, not how long
    assert time.monotonic() - start < gsandbox._backstop(2.0 + case_timeout(LAB.get("linear_forward")) * SCALE) + 5
    assert scores(result) == dict.fromkeys(only, 0.0)
    assert all("importing your package did not finish" in m for m in messages(result).values()), report(result)


def test_without_the_sandbox_temporary_files_go_with_the_stage(patched_reference) -> None:
    """A child without bwrap shares the machine's /tmp, and a killed child never cleans up (its
    private bytecode cache, the student's temp files): its temp folder must be in the stage, which
    the grader removes when grading ends."""
    root = patched_reference("temp_litter", {"layers.py": [(
        "self._mask = x > 0\n", "import tempfile\n        raise RuntimeError('tmp=' + tempfile.mkdtemp())\n")]})
    plain = graded_without_sandbox(root, ["relu_forward"])
    said = plain.cases[0].output
    made = Path(said.rsplit("tmp=", 1)[1].split()[0])
    assert made.parent.name == "work" and made.parent.parent.name.startswith("gradelab-stage-"), said
    assert not made.parent.parent.exists(), f"{made} outlived the grading"
