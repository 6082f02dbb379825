"""The grader survives every submission: hostile submissions (patched copies of the reference)
that block the channel, exhaust time, print undecodable text, return NaN, fill tmpfs, fork-bomb,
ship compiled code, nest folders deeply, or run where there is no sandbox."""

from __future__ import annotations

import importlib._bootstrap_external as bootstrap_external
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from grader import paths, runner
from grader.isolation import protocol
from grader.isolation import sandbox as gsandbox
from grader.isolation.loading import load_cases
from grader.judging.expected import case_timeout
from grader.runner import GradingError, LabResult, grade

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab1", paths.tests_dir())
RELU_FORWARD = "        self._mask = x > 0\n"  # first line of ReLU.forward in the reference
RELU_RETURN = "        return np.where(self._mask, x, 0.0)\n"
RELU_CASES = ["relu_forward", "relu_backward"]
OTHERS = ["linear_forward", "sigmoid_forward"]
IS_ROOT = os.geteuid() == 0


def inject(code: str) -> dict[str, list[tuple[str, str]]]:
    """A patch of layers.py that runs ``code`` at the top of ReLU.forward."""
    return {"layers.py": [(RELU_FORWARD, textwrap.indent(textwrap.dedent(code).strip("\n") + "\n", " " * 8)
                           + RELU_FORWARD)]}


def scores(result: LabResult) -> dict[str, float]:
    return {c.name: c.score for c in result.cases}


def report(result: LabResult) -> str:
    return "\n".join(f"--- {c.name}: {c.score:g}/{c.max_score:g}\n{c.output}" for c in result.cases) + \
        "".join(f"\nnote: {n}" for n in result.notes)


def graded(root: Path, only: list[str], scale: float = 0.2) -> LabResult:
    result = grade(LAB, root, isolated=True, only=only, timeout_scale=scale)
    assert "bubblewrap" in result.isolation, result.isolation
    return result


def relu_fails_others_pass(result: LabResult, needle: str) -> None:
    got = scores(result)
    assert all(got[c] == 0 for c in RELU_CASES if c in got), report(result)
    assert all(got[c] == LAB.get(c).points for c in OTHERS if c in got), report(result)
    assert needle in result.cases[[c.name for c in result.cases].index("relu_forward")].output, report(result)


# ----------------------------------------------------------------------------- time


def test_write_to_a_child_that_stopped_reading_has_a_deadline() -> None:
    """The grader's side of the protocol: a full pipe nobody reads raises Timeout at the deadline."""
    r, w = os.pipe()
    try:
        start = time.monotonic()
        with pytest.raises(protocol.Timeout):
            protocol.write_frame_fd(w, protocol.pack({"case": "x"}, bytes(8 << 20)), time.monotonic() + 1.0)
        assert time.monotonic() - start < 5
    finally:
        os.close(r)
        os.close(w)


def test_child_that_stops_reading_its_stdin_cannot_block_the_grader(sandbox, patched_reference) -> None:
    """ReLU.forward answers its request itself (with the stolen id) and then never returns, so the
    worker never reads again; the next request (MNIST, megabytes) cannot be written. Before write
    deadlines this blocked the grader forever."""
    root = patched_reference("deaf", inject('''
        import fcntl, json, os, struct, sys, time
        f = sys._getframe()
        while f is not None and "request_id" not in f.f_locals:
            f = f.f_back
        head = json.dumps({"id": f.f_locals["request_id"], "status": "ok", "invalid": {}}).encode()
        for name in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{name}").startswith("pipe:") and \\
                        fcntl.fcntl(int(name), fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                    os.write(int(name), b"GLAB" + struct.pack(">IQ", len(head), 0) + head)
            except OSError:
                pass
        time.sleep(10**6)
    '''))
    start = time.monotonic()
    result = grade(LAB, root, isolated=True, only=["relu_forward", "mnist_accuracy"], timeout_scale=0.02)
    assert time.monotonic() - start < 60, report(result)
    assert scores(result) == {"relu_forward": 0, "mnist_accuracy": 0}, report(result)
    assert "did not finish" in result.cases[1].output, report(result)


def test_a_submission_has_a_wall_clock_budget(sandbox, patched_reference, monkeypatch) -> None:
    """Each ReLU.forward sleeps 1 s (under every case's own timeout); with a 3 s budget for the
    submission, grading stops near 3 s, and the cases left score 0 saying why."""
    root = patched_reference("sleepy", inject("import time; time.sleep(1.0)"))
    monkeypatch.setattr(runner, "submission_budget", lambda lab, only, scale: 3.0)
    start = time.monotonic()
    result = grade(LAB, root, isolated=True, only=[*RELU_CASES, "sigmoid_forward"], timeout_scale=1.0)
    took = time.monotonic() - start
    assert took < 3.0 + 10, took  # the budget, plus starting the child and the reference's work
    assert scores(result)["sigmoid_forward"] == 0 and "time budget" in result.cases[-1].output, report(result)
    assert any("time budget of 3 s" in n for n in result.notes), report(result)


def test_default_budget_is_the_cases_timeouts_plus_a_margin() -> None:
    only = ["linear_forward", "mnist_accuracy"]
    want = (case_timeout(LAB.get("linear_forward")) + case_timeout(LAB.get("mnist_accuracy"))
            + runner.BUDGET_MARGIN) * 0.5
    assert case_timeout(LAB.get("linear_forward")) < LAB.get("linear_forward").timeout  # measured, not the cap
    assert runner.submission_budget(LAB, only, 0.5) == pytest.approx(want)


# ----------------------------------------------------------------------------- text


def _odd_text_submission(patched_reference) -> Path:
    root = patched_reference("subs/odd", inject('raise ValueError("lone surrogate \\ud800 and \\udcff here")'))
    (root / "lab1" / os.fsdecode(b"notes-\xff\xfe.py")).write_text("x = 1\n")  # a non-UTF-8 file name
    weird = root.parent / os.fsdecode(b"stud\xe9nt")  # a Latin-1 folder name
    weird.mkdir()
    shutil.copytree(paths.solutions_dir() / "lab1", weird / "lab1", ignore=shutil.ignore_patterns("*.toml"))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "utf-8:strict", "LANG": "C.UTF-8"},
                                 {"LANG": "C", "LC_ALL": "C", "PYTHONIOENCODING": "ascii:strict"}],
                         ids=["strict-utf8", "LANG=C"])
def test_undecodable_names_and_lone_surrogates_never_crash_reports(sandbox, patched_reference, tmp_path,
                                                                     env) -> None:
    root = _odd_text_submission(patched_reference)
    out = tmp_path / "out"
    subs = [str(root), os.fsdecode(os.fsencode(root.parent) + b"/stud\xe9nt")]
    done = subprocess.run([sys.executable, "-m", "grader.cli", "grade", "lab1", *subs, "--out", str(out),
                           "--case", "relu_forward", "--case", "linear_forward", "--timeout-scale", "0.2",
                           "--no-progress", "--details"],
                          capture_output=True, cwd=paths.project_root(), timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    assert b"\\ud800" in done.stdout  # the message, escaped, not dropped
    csv_text = (out / "gradebook.csv").read_text(encoding="utf-8")  # strict UTF-8
    assert "\nodd," in csv_text and "\nstud\\xe9nt," in csv_text, csv_text
    fb = (out / "submissions" / "odd" / "feedback.md").read_text(encoding="utf-8")
    assert "lone surrogate \\ud800" in fb
    assert json.loads((out / "submissions" / "odd" / "results.json").read_text(encoding="utf-8"))["score"] == 4
    assert json.loads((out / "submissions" / "stud\\xe9nt" / "results.json").read_text())["score"] == 7


# ----------------------------------------------------------------------------- NaN


def test_nan_outputs_score_that_case_zero_only(sandbox, patched_reference) -> None:
    root = patched_reference("nan", {"layers.py": [(RELU_RETURN, "        return np.where(self._mask, x, np.nan)\n")]})
    result = graded(root, [*RELU_CASES, *OTHERS])
    assert scores(result)["relu_forward"] == 0 and all(scores(result)[c] > 0 for c in OTHERS), report(result)
    assert "nan" in result.cases[0].output.lower(), report(result)


def test_inf_predictions_fail_the_accuracy_case_with_a_message(sandbox, patched_reference) -> None:
    """predict returns float predictions holding inf: the accuracy case scores 0 with a message;
    every other case still counts (test --isolated does not die)."""
    anchor = "    return np.concatenate(out).astype(np.int64)\n"
    root = patched_reference("inf", {"mlp.py": [(anchor, "    return np.full(len(x), np.inf)\n")]})
    result = graded(root, ["mnist_accuracy", *OTHERS], scale=0.5)
    assert scores(result)["mnist_accuracy"] == 0 and all(scores(result)[c] > 0 for c in OTHERS), report(result)
    assert result.cases[0].output.strip(), report(result)


# ----------------------------------------------------------------------------- memory and processes


def test_tmpfs_mounts_have_size_limits(sandbox, patched_reference) -> None:
    """/tmp, /dev/shm and work/ are tmpfs (RAM): writing more than their size fails in the child;
    /dev is read-only."""
    root = patched_reference("filler", inject('''
        import os
        report = []
        for folder, mib in (("/tmp", 100), ("/dev/shm", 40), (os.getcwd(), 300)):
            try:
                with open(os.path.join(folder, "fill"), "wb") as f:
                    for _ in range(mib):
                        f.write(bytes(1 << 20))
                report.append(f"{folder}: wrote {mib} MiB")
            except OSError as exc:
                report.append(f"{folder}: {exc.strerror}")
        try:
            open("/dev/evil", "w")
            report.append("/dev: writable")
        except OSError as exc:
            report.append(f"/dev: {exc.strerror}")
        raise RuntimeError("; ".join(report))
    '''))
    result = graded(root, ["relu_forward", *OTHERS], scale=5)
    text = result.cases[0].output
    assert "/tmp: No space left on device" in text and "/dev/shm: No space left on device" in text, text
    assert "wrote" not in text and "/dev: Read-only file system" in text, text
    relu_fails_others_pass(result, "RuntimeError")


def test_reply_larger_than_the_cap_is_refused_not_buffered(sandbox, patched_reference) -> None:
    big = protocol.MAX_REPLY // 8 + (1 << 20)  # float64s: just over the cap
    root = patched_reference("huge_reply", {"layers.py": [(RELU_RETURN, f"        return np.zeros({big})\n")]})
    result = graded(root, ["relu_forward", *OTHERS], scale=5)
    relu_fails_others_pass(result, "frame too large")
    assert protocol.MAX_REPLY <= 256 << 20


@pytest.mark.skipif(not IS_ROOT, reason="a uid of its own per child needs root")
def test_child_runs_as_an_unprivileged_uid(sandbox, patched_reference) -> None:
    code = 'import os; raise RuntimeError(f"uid={os.getuid()} euid={os.geteuid()}")'
    root = patched_reference("whoami", inject(code))
    result = graded(root, ["relu_forward"])
    text = result.cases[0].output.split("RuntimeError: ")[-1]  # the message, not the source line
    uid = int(text.split("uid=")[1].split()[0])
    assert uid >= gsandbox._CHILD_UID_BASE and f"euid={uid}" in text, text


def test_child_cannot_create_nested_user_namespaces(sandbox, patched_reference) -> None:
    """A user namespace of its own would let the child mount tmpfs without the sandbox's sizes."""
    root = patched_reference("userns", inject('''
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x10000000) == 0:  # CLONE_NEWUSER
            raise RuntimeError("nested user namespace: created")
        raise RuntimeError(f"nested user namespace: refused ({os.strerror(ctypes.get_errno())})")
    '''))
    result = graded(root, ["relu_forward"])
    assert "nested user namespace: refused" in result.cases[0].output, report(result)


@pytest.mark.skipif(not IS_ROOT, reason="RLIMIT_NPROC bounds a fork bomb only for a uid of its own (needs root)")
def test_fork_bomb_is_bounded_and_cleaned_up(sandbox, patched_reference) -> None:
    """ReLU.forward forks until fork fails; the children sleep. The count stops at the child's
    process cap, the case fails, the next cases pass, and no process of that uid survives."""
    root = patched_reference("forkbomb", inject('''
        import os, time
        n = 0
        try:
            while n < 5000:
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                n += 1
        except OSError as exc:
            raise RuntimeError(f"forked {n} then {exc.strerror} as uid {os.getuid()}")
        raise RuntimeError(f"forked {n} unbounded")
    '''))
    result = graded(root, ["relu_forward", *OTHERS], scale=5)
    text = result.cases[0].output.split("RuntimeError: ")[-1]
    assert "forked" in text and "unbounded" not in text, text
    n, uid = int(text.split("forked ")[1].split()[0]), int(text.split("as uid ")[1].split()[0])
    assert n < gsandbox._PROCESS_LIMIT, text
    assert all(s > 0 for c, s in scores(result).items() if c in OTHERS), report(result)
    time.sleep(0.5)
    survivors = subprocess.run(["ps", "-o", "pid=", "-u", str(uid)], capture_output=True, text=True).stdout.split()
    assert not survivors, f"processes of uid {uid} survived: {survivors}"


# ----------------------------------------------------------------------------- only visible source


def _pyc_of(source: str, like: Path) -> bytes:
    """Bytecode of ``source`` with a header claiming it was compiled from the file ``like``."""
    st = like.stat()
    code = compile(source, str(like), "exec")
    return bytes(bootstrap_external._code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size))


def _smuggler(patched_reference) -> Path:
    """layers.py (the source) has a ReLU bug; __pycache__ holds correct bytecode that claims to be
    that source; and a stray compiled module sits in the package."""
    bug = "        return np.where(self._mask, x, 0.0) + 1\n"
    root = patched_reference("smuggler", {"layers.py": [(RELU_RETURN, bug)]})
    layers = root / "lab1" / "layers.py"
    good = (paths.solutions_dir() / "lab1" / "layers.py").read_text()
    cache = root / "lab1" / "__pycache__"
    cache.mkdir()
    (cache / f"layers.{sys.implementation.cache_tag}.pyc").write_bytes(_pyc_of(good, layers))
    return root


def test_pycache_is_never_used_isolated(sandbox, patched_reference) -> None:
    root = _smuggler(patched_reference)
    (root / "lab1" / "fast.so").write_bytes(b"\x7fELF not really")
    result = graded(root, ["relu_forward", *OTHERS])
    relu_fails_others_pass(result, "relu_forward")
    notes = " ".join(result.notes)
    assert "__pycache__/ (compiled bytecode" in notes and "fast.so (compiled code" in notes, notes


def test_pycache_is_never_used_in_process(patched_reference) -> None:
    root = _smuggler(patched_reference)
    result = grade(LAB, root, isolated=False, only=["relu_forward", "linear_forward"])
    assert scores(result) == {"relu_forward": 0, "linear_forward": 4}, report(result)


def test_compiled_modules_are_refused_in_process(patched_reference) -> None:
    root = patched_reference("compiled", {})
    (root / "lab1" / "helper.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    result = grade(LAB, root, isolated=False, only=["linear_forward"])
    assert scores(result) == {"linear_forward": 0}
    assert "compiled code" in report(result) and "helper.cpython-311-x86_64-linux-gnu.so" in report(result)


# ----------------------------------------------------------------------------- stages


def _my_stages() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"gradelab-stage-{os.getpid()}-*"))


def test_deep_nesting_is_copied_without_recursion_and_stages_are_removed(sandbox, patched_reference) -> None:
    root = patched_reference("deep", {})
    chain = [root / "lab1" / "d"]
    for _ in range(1200):  # deeper than Python's recursion limit (os.makedirs would recurse too)
        chain[-1].mkdir()
        chain.append(chain[-1] / "d")
    (chain[-2] / "x.txt").write_text("bottom")
    try:
        result = graded(root, ["linear_forward"])
        assert scores(result) == {"linear_forward": 4}, report(result)
        assert any("nested deeper than" in n for n in result.notes), result.notes
        assert not _my_stages()
    finally:
        (chain[-2] / "x.txt").unlink()
        for folder in reversed(chain[:-1]):  # so that pytest's recursive cleanup can cope
            folder.rmdir()


def test_stage_is_removed_when_submission_is_too_large(monkeypatch, patched_reference) -> None:
    root = patched_reference("big", {})
    monkeypatch.setattr(gsandbox, "_MAX_SUBMISSION_BYTES", 1000)
    with pytest.raises(ValueError):
        gsandbox.Child(root, "lab1", use_bwrap=False)
    assert not _my_stages()


@pytest.mark.slow
def test_sigterm_removes_stages_and_stale_stages_are_swept(sandbox, patched_reference, tmp_path) -> None:
    root = patched_reference("slowpoke", inject("import time; time.sleep(60)"))
    proc = subprocess.Popen([sys.executable, "-m", "grader.cli", "grade", "lab1", str(root), "--out",
                             str(tmp_path / "out"), "--case", "relu_forward", "--jobs", "1", "--no-progress"],
                            cwd=paths.project_root(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)

    def stages() -> list[Path]:
        return [p for p in Path(tempfile.gettempdir()).glob("gradelab-stage-*")
                if p.name.split("-")[2] in pids(proc.pid)]

    def pids(pid: int) -> set[str]:  # the CLI and its worker processes
        out = subprocess.run(["ps", "-o", "pid=", "-s", str(pid)], capture_output=True, text=True).stdout
        return set(out.split())

    deadline = time.monotonic() + 60
    while not stages() and time.monotonic() < deadline:
        time.sleep(0.2)
    found = stages()
    assert found, "no stage appeared"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)  # the CLI waits for its workers, which remove their stages on the way out
    assert not any(p.exists() for p in found), found
    # A stage whose owner was killed with SIGKILL is swept by the next grading.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Path(tempfile.gettempdir()) / f"gradelab-stage-{dead.stdout.strip()}-test"
    stale.mkdir()
    gsandbox.sweep_stale_stages()
    assert not stale.exists()


# ----------------------------------------------------------------------------- no silent unsandboxed grading


def test_no_sandbox_is_refused_unless_allowed(patched_reference, monkeypatch) -> None:
    root = patched_reference("plain", {})
    monkeypatch.setattr(runner, "bwrap_available", lambda: False)
    with pytest.raises(GradingError, match="--allow-unsandboxed"):
        grade(LAB, root, isolated=True, only=["linear_forward"])
    result = grade(LAB, root, isolated=True, only=["linear_forward"], allow_unsandboxed=True, timeout_scale=0.2)
    assert "NOT sandboxed" in result.isolation and scores(result) == {"linear_forward": 4}


def test_cli_without_bwrap_exits_2_or_says_unsandboxed_in_the_gradebook(patched_reference, tmp_path) -> None:
    root = patched_reference("subs/plain", {})
    env = {**os.environ, "PATH": str(tmp_path / "empty")}  # no bwrap (and no setpriv) on the PATH
    cmd = [sys.executable, "-m", "grader.cli", "grade", "lab1", str(root), "--out", str(tmp_path / "out"),
           "--case", "linear_forward", "--timeout-scale", "0.2", "--no-progress"]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.project_root(), env=env, timeout=120)
    assert refused.returncode == 2 and "--allow-unsandboxed" in refused.stderr, refused.stderr
    allowed = subprocess.run([*cmd, "--allow-unsandboxed"], capture_output=True, text=True,
                             cwd=paths.project_root(), env=env, timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    csv_text = (tmp_path / "out" / "gradebook.csv").read_text()
    assert "NOT sandboxed" in csv_text and "NOT sandboxed" in (
        tmp_path / "out" / "submissions" / "plain" / "results.json").read_text()


def test_cli_test_isolated_without_bwrap_refuses_unless_allowed(patched_reference, tmp_path) -> None:
    root = patched_reference("plain2", {})
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    cmd = [sys.executable, "-m", "grader.cli", "test", "lab1", "--impl", str(root), "--isolated",
           "--case", "linear_forward", "--timeout-scale", "0.5"]
    refused = subprocess.run(cmd, capture_output=True, text=True, cwd=paths.project_root(), env=env, timeout=120)
    assert refused.returncode == 2 and "--allow-unsandboxed" in refused.stderr, refused.stderr
    allowed = subprocess.run([*cmd, "--allow-unsandboxed"], capture_output=True, text=True,
                             cwd=paths.project_root(), env=env, timeout=120)
    assert allowed.returncode == 0 and "NOT sandboxed" in allowed.stdout, allowed.stdout + allowed.stderr


def test_a_bwrap_too_old_for_our_limits_counts_as_no_sandbox(tmp_path, monkeypatch) -> None:
    """A bwrap whose --help lacks --size/--perms/--disable-userns (before 0.8) would refuse our
    command line or run without the limits: it is not a usable sandbox."""
    old = tmp_path / "bin" / "bwrap"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'usage: bwrap [OPTIONS...] [--] COMMAND'; echo '    --ro-bind SRC DEST'\n")
    old.chmod(0o755)
    monkeypatch.setenv("PATH", str(old.parent))
    assert gsandbox.bwrap_available.__wrapped__() is False


def _cgroups_here() -> bool:
    cgroup = gsandbox.Cgroup.create()
    if cgroup is None:
        return False
    cgroup.close()
    return True


@pytest.mark.skipif(not _cgroups_here(), reason="no writable cgroup (v1 pids+memory) here")
def test_cgroup_caps_the_memory_of_all_the_childs_processes_together(sandbox, patched_reference,
                                                                      monkeypatch) -> None:
    """Three processes of 120 MiB each: under each one's address-space limit, over the child's
    cgroup (lowered to 200 MiB for the test): the case fails, the next cases pass, and the cgroup
    is gone afterwards."""
    monkeypatch.setattr(gsandbox, "_CGROUP_MEMORY", 200 << 20)
    root = patched_reference("hog", inject('''
        import os, time
        kids = []
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                block = bytearray(120 << 20)  # zero-filled: really resident
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(60)
                os._exit(0)
            kids.append(pid)
        time.sleep(3)
        states = [os.waitpid(k, os.WNOHANG) for k in kids]
        raise RuntimeError(f"children after 3 s: {states}")
    '''))
    before = {p.name for p in Path("/sys/fs/cgroup/memory").rglob("gradelab-*")}
    result = graded(root, ["relu_forward", *OTHERS], scale=5)
    text = result.cases[0].output
    assert scores(result)["relu_forward"] == 0 and all(scores(result)[c] > 0 for c in OTHERS), report(result)
    assert "(0, 0), (0, 0), (0, 0)" not in text, text  # not all three survived: the cgroup killed some
    assert {p.name for p in Path("/sys/fs/cgroup/memory").rglob("gradelab-*")} <= before


@pytest.mark.skipif(not _cgroups_here(), reason="no writable cgroup (v1 pids+memory) here")
def test_stale_cgroups_of_a_killed_grader_are_swept() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cgroup = gsandbox.Cgroup.create()
    assert cgroup is not None
    stale = [d.with_name(f"gradelab-{dead.stdout.strip()}-test") for d in cgroup.dirs]
    for d in stale:
        d.mkdir()
    cgroup.close()
    gsandbox.Cgroup.create().close()  # the next child's creation sweeps them
    assert not any(d.exists() for d in stale)
