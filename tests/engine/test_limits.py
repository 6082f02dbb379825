"""Limits that never fail honest code, and scores that do not depend on the machine's load.

- One-time costs: a case that runs out of CPU time once may be paying for a lazy import or a
  cache; it is let finish within a one-time allowance and run again, warm. Code that is slow on
  every call still fails. Labs 1-4 are NumPy labs: importing torch fails at once, saying so.
- The process cap: a submission that fills it cannot stop the grader's worker; when the cap is
  what stopped the submission, the message says so.
- CPU, not wall time: a case's limit counts the CPU time of the submission's own processes, and
  each child has its own CPU share, so a neighbour that starts sixty busy processes cannot make
  the reference lose a case.
- Determinism: bounded-hostile submissions graded on a quiet and on a loaded machine score the
  same.

Every load this file starts is bounded in time and killed at the end of its test.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from grader import paths
from grader.cli import main as cli_main
from grader.isolation import libraries
from grader.isolation import sandbox as gsandbox
from grader.isolation.loading import load_cases
from grader.runner import LabResult, grade

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab1", paths.tests_dir())
IS_ROOT = os.geteuid() == 0
TANH = "        self._y = np.tanh(x)\n"
LOG_NORM = "        log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))\n"
INIT = "from .framework import Module, Parameter, iterate_minibatches\n"
RELU_FORWARD = "        self._mask = x > 0\n"
FAST = [c.name for c in LAB.cases if not c.slow]
TORCH_CASES = {"tanh_forward", "tanh_backward", "softmax_ce_forward", "softmax_ce_square",
               "softmax_ce_extreme_logits", "softmax_ce_backward", "softmax_ce_batch_of_one",
               "sequential_forward_backward"}


def scores(result: LabResult) -> dict[str, float]:
    return {c.name: c.score for c in result.cases}


def report(result: LabResult) -> str:
    return "\n".join(f"--- {c.name}: {c.score:g}/{c.max_score:g} ({c.seconds:.2f}s)\n{c.output}"
                     for c in result.cases) + "".join(f"\nnote: {n}" for n in result.notes)


def graded(root: Path, only: list[str], scale: float = 1.0) -> LabResult:
    result = grade(LAB, root, isolated=True, only=only, timeout_scale=scale)
    assert "bubblewrap" in result.isolation, result.isolation
    return result


@contextmanager
def cpu_load(processes: int = 4, seconds: float = 240.0) -> Iterator[None]:
    """Busy processes (each ends by itself after ``seconds``), killed when the block ends."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(processes)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


# ----------------------------------------------------------------------------- one-time costs


LAZY_TORCH = {
    "layers.py": [(TANH, "        import torch\n"
                         "        self._y = torch.tanh(torch.from_numpy(np.ascontiguousarray(x))).numpy()\n")],
    "losses.py": [(LOG_NORM, "        import torch\n"
                             "        log_norm = torch.logsumexp(torch.from_numpy(np.ascontiguousarray(shifted)),\n"
                             "                                   dim=1, keepdim=True).numpy()\n")],
}


@pytest.mark.slow
@pytest.mark.parametrize("load", ["quiet", "loaded"])
def test_lazy_torch_fails_by_the_handouts_rule_not_by_a_timeout(sandbox, patched_reference, load) -> None:
    """Correct Tanh and softmax cross-entropy computed with a lazily imported torch: the handout
    says Labs 1-4 are NumPy only, so exactly the cases that reach torch fail, each saying why (no
    time limit involved), and the score is the same on a quiet and on a loaded machine."""
    root = patched_reference("lazy_torch", LAZY_TORCH)
    with cpu_load() if load == "loaded" else _nothing():
        result = graded(root, FAST)
    failed = {c.name for c in result.cases if not c.passed}
    assert failed == TORCH_CASES, report(result)
    for c in result.cases:
        if not c.passed:
            assert "torch is not allowed in lab1" in c.output and "NumPy" in c.output, report(result)
            assert "did not finish" not in c.output, report(result)
    assert result.score == LAB.max_score - LAB.get("mnist_accuracy").points - sum(
        LAB.get(n).points for n in TORCH_CASES), report(result)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


ONE_TIME_CACHE = {"layers.py": [(TANH, textwrap.indent(textwrap.dedent('''
    global _TABLE
    if _TABLE is None:  # a one-time cost: about 3 s of CPU on the first call only
        import time
        end, n = time.process_time() + 3.0, 0
        while time.process_time() < end:
            n += 1
        _TABLE = n
    self._y = np.tanh(x)
    ''').strip("\n") + "\n", " " * 8)), ("class Tanh(Module):", "_TABLE = None\n\n\nclass Tanh(Module):")]}

SLOW_EVERY_CALL = {"layers.py": [(TANH, textwrap.indent(textwrap.dedent('''
    import time
    end = time.process_time() + 3.0
    while time.process_time() < end:
        pass
    self._y = np.tanh(x)
    ''').strip("\n") + "\n", " " * 8))]}
TANH_CASES = ["linear_forward", "relu_forward", "tanh_forward", "tanh_backward"]


@pytest.mark.slow
@pytest.mark.parametrize("load", ["quiet", "loaded"])
def test_a_one_time_cost_in_a_case_is_allowed_once(sandbox, patched_reference, load) -> None:
    """Tanh's first call spends 3 s of CPU filling a cache (limit: about 2 s): the cold run is let
    finish within the one-time allowance and the case is run again, warm: full marks, quiet or
    loaded. Before: tanh_forward timed out, and so did tanh_backward in the restarted (cold) child."""
    root = patched_reference("one_time_cache", ONE_TIME_CACHE)
    with cpu_load() if load == "loaded" else _nothing():
        result = graded(root, TANH_CASES)
    assert result.score == result.max_score, report(result)


@pytest.mark.slow
def test_code_slow_on_every_call_still_fails_and_says_it_was_rerun(sandbox, patched_reference) -> None:
    """The allowance cannot make slow code pass: the warm rerun is as slow, and fails."""
    root = patched_reference("slow_tanh", SLOW_EVERY_CALL)
    result = graded(root, TANH_CASES)
    got = scores(result)
    assert got["tanh_forward"] == 0 and got["tanh_backward"] == 0, report(result)
    assert got["linear_forward"] > 0 and got["relu_forward"] > 0, report(result)
    out = result.cases[2].output
    assert "s of CPU time" in out and "run again, warm, it still needed more than the limit" in out, out


def test_numpy_labs_refuse_other_libraries_in_process_too(patched_reference) -> None:
    """A student's own run (in-process) applies the same rule as grading."""
    root = patched_reference("lazy_torch_local", LAZY_TORCH)
    result = grade(LAB, root, isolated=False, only=["tanh_forward", "relu_forward"])
    assert scores(result) == {"tanh_forward": 0.0, "relu_forward": LAB.get("relu_forward").points}, report(result)
    assert "torch is not allowed in lab1" in result.cases[0].output
    # the rule is lifted after the run: this process (pytest, the grader) imports what it likes
    assert not any(isinstance(f, libraries.NumpyOnly) for f in sys.meta_path)


# ----------------------------------------------------------------------------- the process cap


FLOOD_AT_IMPORT = {"__init__.py": [(INIT, textwrap.dedent('''
    import os as _os
    import time as _time

    def _flood(limit=400, seconds=6.0):
        """Sleeping processes that end by themselves; stops when the system refuses more."""
        for _ in range(limit):
            try:
                pid = _os.fork()
            except OSError:
                return
            if pid == 0:
                _time.sleep(seconds)
                _os._exit(0)

    _flood()
    ''') + INIT)]}


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="the process cap needs a uid of its own per child (root)")
def test_a_process_flood_at_import_cannot_stop_the_worker(sandbox, patched_reference, monkeypatch) -> None:
    """The flood fills the cap while every case runs; the code is otherwise the reference: 100%.
    Before, the worker could not start its per-case watchdog thread, exited, and the student read
    'does your code call exit()?' (80, 51, 0 and 70 in four runs)."""
    refused: list[int] = []
    close = gsandbox.Cgroup.close

    def close_and_count(self: gsandbox.Cgroup) -> None:
        refused.append(self.refused_forks())
        close(self)

    monkeypatch.setattr(gsandbox.Cgroup, "close", close_and_count)
    root = patched_reference("flood", FLOOD_AT_IMPORT)
    result = graded(root, FAST)
    assert result.score == result.max_score, report(result)
    if gsandbox.Cgroup.create() is not None:  # with a cgroup, we can see that the cap was reached
        assert refused and refused[0] > 0, refused


@pytest.mark.skipif(not IS_ROOT, reason="the process cap needs a uid of its own per child (root)")
def test_when_the_cap_stops_the_code_the_message_names_it(sandbox, patched_reference) -> None:
    """ReLU.forward starts threads until refused, then raises: the message names the cap."""
    root = patched_reference("thread_flood", {"layers.py": [(RELU_FORWARD, textwrap.indent(textwrap.dedent('''
        import threading, time
        for _ in range(1000):
            threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
        ''').strip("\n") + "\n", " " * 8) + RELU_FORWARD)]})
    result = graded(root, ["relu_forward", "linear_forward"])
    got = scores(result)
    assert got["relu_forward"] == 0 and got["linear_forward"] > 0, report(result)
    assert f"cap of {gsandbox._PROCESS_LIMIT} processes and threads" in result.cases[0].output, report(result)


# ----------------------------------------------------------------------------- determinism


OUTPUT_FLOOD = {"layers.py": [(RELU_FORWARD, textwrap.indent(textwrap.dedent('''
    import sys
    if not getattr(sys, "_flooded", False):  # 30 MB of prints, once (the log's cap is 256 MiB)
        sys._flooded = True
        line = "x" * 1000 + "\\n"
        for _ in range(30_000):
            sys.stdout.write(line)
    ''').strip("\n") + "\n", " " * 8) + RELU_FORWARD)]}
# SGD.step sleeps 0.5 s (sgd_step calls it once per variant; its limit is about 2 s): under every
# limit, the wall-clock backstop included, quiet or loaded
SGD_STEP = "        for p in self.params:\n            p.data -= self.lr * p.grad\n"
SLEEPER = {"optim.py": [(SGD_STEP, "        import time\n        time.sleep(0.5)\n" + SGD_STEP)]}
DET_CASES = ["linear_forward", "relu_forward", "relu_backward", "tanh_forward", "softmax_ce_forward", "sgd_step"]


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="the process cap needs a uid of its own per child (root)")
def test_bounded_hostile_submissions_score_the_same_quiet_and_loaded(sandbox, patched_reference) -> None:
    """A process flood, an output flood and a sleeper, graded on a quiet machine and again beside
    four busy processes on two cores: every case scores the same both times."""
    roots = {name: patched_reference(name, patch) for name, patch in
             (("flood", FLOOD_AT_IMPORT), ("output_flood", OUTPUT_FLOOD), ("sleeper", SLEEPER))}
    quiet = {name: graded(root, DET_CASES) for name, root in roots.items()}
    with cpu_load():
        loaded = {name: graded(root, DET_CASES) for name, root in roots.items()}
    for name in roots:
        assert scores(quiet[name]) == scores(loaded[name]), f"{name}:\n{report(quiet[name])}\n\n{report(loaded[name])}"
    # and each scores what it deserves: the flood and the sleeper are correct, the output flood too
    for name in roots:
        assert quiet[name].score == quiet[name].max_score, f"{name}:\n{report(quiet[name])}"


# ----------------------------------------------------------------------------- fair CPU


HOG_AT_IMPORT = {"__init__.py": [(INIT, textwrap.dedent('''
    import os as _os
    import time as _time

    def _hog(n=60, seconds=60.0):
        """Busy processes, each in a session of its own; each ends by itself."""
        for _ in range(n):
            try:
                pid = _os.fork()
            except OSError:
                return
            if pid == 0:
                _os.setsid()
                end = _time.monotonic() + seconds
                while _time.monotonic() < end:
                    pass
                _os._exit(0)

    _hog()
    ''') + INIT)]}


@pytest.mark.slow
@pytest.mark.skipif(not IS_ROOT, reason="the process cap needs a uid of its own per child (root)")
def test_a_hog_graded_beside_the_reference_with_two_jobs_costs_it_nothing(sandbox, patched_reference,
                                                                           tmp_path) -> None:
    """`gradelab grade lab1 reference hog --jobs 2 --case mnist_accuracy --timeout-scale 0.2` (a limit
    of 60 s): the hog's sixty busy processes get one child's CPU share, and the reference's time
    counts its own CPU: the reference keeps full marks. Before, with wall-clock limits and no
    shares, it got about 1/61 of the machine and lost the case ('did not finish within 60 s')."""
    ref = patched_reference("reference", {})
    hog = patched_reference("hog", HOG_AT_IMPORT)
    out = tmp_path / "grades"
    start = time.monotonic()
    code = cli_main(["grade", "lab1", str(ref), str(hog), "--jobs", "2", "--timeout-scale", "0.2",
                     "--case", "mnist_accuracy", "--no-progress", "--out", str(out)])
    seconds = time.monotonic() - start
    assert code == 0
    with open(out / "gradebook.csv", newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    feedback = (out / "submissions" / "reference" / "feedback.md").read_text()
    assert float(rows["reference"]["score"]) == float(rows["reference"]["max_score"]) > 0, feedback
    print(f"reference {rows['reference']['score']}/{rows['reference']['max_score']}, "
          f"hog {rows['hog']['score']}, {seconds:.1f} s")
    time.sleep(0.5)
    assert not _processes_of_gradelab_children(), "the hog's processes outlived grading"


def _processes_of_gradelab_children() -> list[str]:
    """Processes still running as a child uid and started from this checkout's Python (other
    checkouts on the machine may be grading at the same time)."""
    lines = subprocess.run(["ps", "-eo", "uid=,pid=,args="], capture_output=True, text=True).stdout.split("\n")
    return [line for line in lines if line.split() and int(line.split()[0]) >= gsandbox._CHILD_UID_BASE
            and sys.prefix in line]


def test_each_child_gets_its_own_cpu_share_and_cpu_clock() -> None:
    """Where cgroup v1's cpu and cpuacct controllers are writable (the course machines), each
    child's cgroup has its own cpu.shares and counts its CPU time; elsewhere, nothing to check."""
    cgroup = gsandbox.Cgroup.create()
    if cgroup is None or "cpu" not in cgroup.by_controller:
        pytest.skip("no writable cgroup v1 cpu controller here")
    try:
        assert (cgroup.by_controller["cpu"] / "cpu.shares").read_text().strip() == str(gsandbox._CPU_SHARES)
        assert cgroup.cpu_seconds() == 0.0
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                cgroup.enter()
                end = time.process_time() + 0.3
                while time.process_time() < end:
                    pass
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert 0.25 < (cgroup.cpu_seconds() or 0.0) < 2.0
    finally:
        cgroup.close()


def test_cpu_time_of_a_process_tree_without_cgroup() -> None:
    """The fallback clock: a shell whose child burns 0.5 s of CPU counts it (once reaped)."""
    proc = subprocess.Popen(["sh", "-c", f"{sys.executable} -c 'import time\nend=time.process_time()+0.5\n"
                                         "while time.process_time()<end: pass'; sleep 5"],
                            start_new_session=True)
    try:
        time.sleep(0.2)
        deadline = time.monotonic() + 10
        while gsandbox._tree_cpu_seconds(proc.pid) < 0.45 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 0.45 <= gsandbox._tree_cpu_seconds(proc.pid) < 3.0
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
