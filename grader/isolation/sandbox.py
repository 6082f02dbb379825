"""Running student code in a child process the grader can kill and the student cannot escape.

A *stage* is a fresh temporary folder holding only what the child needs:

    <stage>/grader/            a copy of this engine (the worker and what it imports)
    <stage>/tests/<lab>/cases.py
    <stage>/submission/<lab>/  a copy of the submission (symlinks are not followed)
    <stage>/work/              cwd and HOME: the only writable place

With bubblewrap (``bwrap``, Debian package ``bubblewrap``) the child runs in new user, PID,
network, IPC and mount namespaces with every capability dropped, and sees an allow-list of
the file system: /usr (and the /bin, /lib links into it), the Python installation and its
site-packages, read-only, and the stage (its work/ a 256 MiB tmpfs). Nothing else exists
there: not the project (solutions/, data/, .git), not other submissions, not /tmp, not any
other copy of the data. It has no network. Without bwrap (a student's laptop) the child is a
plain subprocess in the stage with a scrubbed environment: still a separate process whose
results are only data, but the file system is not hidden; ``isolation_name`` says which ran.
As root without bwrap (Gradescope's containers, ``GRADELAB_UID_WITHOUT_BWRAP=1``), the child
runs as a dedicated unprivileged uid; its caller makes what must stay secret unreadable to it
(``run_autograder``), and every process of that uid is killed with the child (``kill_uid``).

Time. A case's limit counts the CPU time of the child's own processes (its cgroup's ``cpuacct``
where this machine lets us make one, else the CPU time of the process tree from ``/proc``), so a
neighbour that loads the machine cannot make an honest case run out of time; a wall-clock
backstop (``_BACKSTOP_FACTOR`` x the limit + ``_BACKSTOP_SLACK``) stops code that waits instead of
computing. Each child has its own CPU share (cgroup v1 ``cpu.shares``), so a submission with
sixty busy processes gets one child's share of the machine, not sixty. A case that runs out of
time once in a child's life may be paying a one-time cost (a lazy import, a cache, a JIT): it
is let finish within a one-time allowance, and then run again, warm, under the normal limit;
only that second run counts.

The grader owns every channel: the protocol pipes, and the log that the child's stdout and
stderr go to (an unlinked file the grader opened), so nothing the child creates is ever
opened by the grader.
"""

from __future__ import annotations

import functools
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader import paths
from grader.judging.compare import Invalid
from grader.judging.guard import FEEDBACK_TAG

from . import protocol

_MAX_SUBMISSION_BYTES = 50 << 20
_MEMORY_LIMIT = 8 << 30
_FILE_LIMIT = 256 << 20
_WORK_LIMIT = 256 << 20
_TMP_LIMIT = 64 << 20  # the sandbox's /tmp: tmpfs is RAM, so every writable mount has a size
_SHM_LIMIT = 16 << 20
_PROCESS_LIMIT = 256  # RLIMIT_NPROC for the child's own unprivileged uid: a fork bomb stops there
_CHILD_UID_BASE = 1_200_000  # dedicated uids (no account needed) for children when we are root
_STARTUP_SECONDS = 20.0  # Python + NumPy start in well under a second; the rest is the student's import
_ONE_TIME_ALLOWANCE = 5.0  # CPU seconds per submission for one-time costs met inside a case (see run)
_BACKSTOP_FACTOR, _BACKSTOP_SLACK = 5.0, 5.0  # wall clock: a case that waits rather than computes
_POLL = 0.05  # seconds between two looks at the child's CPU time while it runs a case
_DUMP_WAIT = 0.5  # seconds the child gets to write its stack to the log before it is stopped
_CPU_SHARES = 1024  # every child weighs the same, however many processes it starts
_LOG_TAIL = 2000

_BOOT = "import sys; sys.path[:0] = sys.argv[1:2] + sys.argv[3:]; " \
        "from grader.isolation.worker import main; main(sys.argv[1:3])"


# "1": behave as if bwrap were unusable (``run_autograder --no-bwrap``: tests Gradescope's fallback
# on a machine that has bwrap). Read when the probe first runs (its answer is cached).
NO_BWRAP_ENV = "GRADELAB_NO_BWRAP"


@functools.lru_cache(maxsize=1)
def bwrap_available() -> bool:
    """True if bubblewrap is installed, recent enough for the limits we set (0.8: ``--size``,
    ``--perms``, ``--chmod``, ``--disable-userns``), and can create its namespaces here."""
    if os.environ.get(NO_BWRAP_ENV) == "1":
        return False
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        usage = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=20).stdout
        if not all(flag in usage for flag in _BWRAP_FLAGS):
            return False  # an older bwrap would refuse our command line, or run without the limits
        done = subprocess.run([exe, "--ro-bind", "/", "/", "--unshare-all", "--cap-drop", "ALL",
                               "--", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


_BWRAP_FLAGS = ("--size", "--perms", "--chmod", "--disable-userns", "--remount-ro")


def isolation_name(use_bwrap: bool) -> str:
    if not use_bwrap and uid_without_bwrap() and _child_uid() is not None:
        return "process as a dedicated unprivileged uid with rlimits (no file-system sandbox: bwrap unavailable)"
    return "sandbox (bubblewrap)" if use_bwrap else "process (no file-system sandbox: bwrap unavailable)"


# Gradescope's run_autograder sets this: its containers run as root and may refuse bwrap's
# namespaces, and then the child still gets a uid of its own (the Python installation must be
# readable by others, as /usr and /autograder are; here, under /root, it is not: hence opt-in).
UID_WITHOUT_BWRAP_ENV = "GRADELAB_UID_WITHOUT_BWRAP"


def uid_without_bwrap() -> bool:
    return os.environ.get(UID_WITHOUT_BWRAP_ENV) == "1"


def _setpriv(uid: int | None) -> list[str]:
    """Without bwrap: switch to ``uid`` (no groups, no capabilities) before Python starts."""
    if uid is None:
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--"]


def _open_stage_to(stage: Path, user: str | int) -> None:
    """Lets ``user`` read the stage (mkdtemp made it private to us) and write its work/ only."""
    for folder, _dirs, files in os.walk(stage):
        os.chmod(folder, 0o755)
        for f in files:
            os.chmod(os.path.join(folder, f), 0o644)
    shutil.chown(stage / "work", user)


# Only visible source runs: compiled code in a submission is never copied (nor, in-process, imported).
COMPILED_SUFFIXES = (".so", ".pyd", ".pyc", ".pyo", ".dylib", ".dll")
_MAX_DEPTH = 64


def _copy_tree(src: Path, dst: Path, budget: list[int], skipped: list[str]) -> None:
    """Copies regular files and folders only, iteratively (any depth: no RecursionError).

    Skipped, with a note: symlinks (they could point at solutions/), compiled code (``*.so``,
    ``*.pyd``, ``*.pyc``; ``__pycache__``), anything but regular files (FIFOs, devices), and
    folders deeper than ``_MAX_DEPTH``.
    """
    stack = [(src, dst, 0)]
    while stack:
        folder, target, depth = stack.pop()
        target.mkdir(parents=True, exist_ok=True)
        for entry in sorted(folder.iterdir()):
            name = os.fsencode(entry.name).decode("utf-8", "backslashreplace")
            if entry.is_symlink():
                skipped.append(f"{name} (a symlink)")
            elif entry.is_dir():
                if entry.name == "__pycache__":
                    skipped.append(f"{name}/ (compiled bytecode: only source files are graded)")
                elif depth >= _MAX_DEPTH:
                    skipped.append(f"{name}/ (nested deeper than {_MAX_DEPTH} folders)")
                else:
                    stack.append((entry, target / entry.name, depth + 1))
            elif entry.name.lower().endswith(COMPILED_SUFFIXES):
                skipped.append(f"{name} (compiled code: only source files are graded)")
            elif entry.is_file():
                budget[0] -= entry.stat().st_size
                if budget[0] < 0:
                    raise ValueError(f"the submission is larger than {_MAX_SUBMISSION_BYTES >> 20} MiB")
                shutil.copyfile(entry, target / entry.name)


def make_stage(impl_root: Path, lab: str) -> tuple[Path, list[str]]:
    """A fresh stage for one submission; returns (stage, notes about skipped files)."""
    sweep_stale_stages()
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE_PREFIX}{os.getpid()}-"))
    try:
        return stage, _fill_stage(stage, impl_root, lab)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # a failed copy (too large, unreadable) leaves nothing
        raise


_STAGE_PREFIX = "gradelab-stage-"


def sweep_stale_stages() -> None:
    """Removes stages whose grading process is gone (it was killed with SIGKILL: no cleanup ran)."""
    for old in Path(tempfile.gettempdir()).glob(f"{_STAGE_PREFIX}*-*"):
        pid = old.name[len(_STAGE_PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except PermissionError:
            pass


def _fill_stage(stage: Path, impl_root: Path, lab: str) -> list[str]:
    skipped: list[str] = []
    engine = Path(__file__).resolve().parent.parent  # grader/, with its subpackages
    for f in engine.rglob("*.py"):
        rel = f.relative_to(engine)
        if "__pycache__" in rel.parts or "templates" in rel.parts:
            continue
        (stage / "grader" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, stage / "grader" / rel)
    cases = paths.tests_dir() / lab / "cases.py"
    (stage / "tests" / lab).mkdir(parents=True)
    shutil.copyfile(cases, stage / "tests" / lab / "cases.py")
    (stage / "submission").mkdir()
    (stage / "work").mkdir()
    src = Path(impl_root) / lab
    if src.is_dir() and not src.is_symlink():
        _copy_tree(src, stage / "submission" / lab, [_MAX_SUBMISSION_BYTES], skipped)
    return skipped


def _site_dirs() -> list[str]:
    """Where the child finds NumPy: it starts with -S, so site-packages are passed explicitly."""
    dirs = [sysconfig.get_paths()[k] for k in ("purelib", "platlib")]
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    return list(dict.fromkeys(d for d in dirs if os.path.isdir(d)))


def _python_paths() -> list[str]:
    """The interpreter's installation, its standard library and site-packages (real paths)."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")), *_site_dirs()}
    real = sorted({os.path.realpath(p) for p in found if os.path.isdir(p)} | {p for p in found if os.path.isdir(p)})
    if "/" in real:
        raise RuntimeError("Python is installed at / here: the sandbox cannot expose it without exposing everything")
    kept: list[str] = []
    for p in sorted(real, key=len):  # a folder inside one already bound needs no bind of its own
        if not any(p == k or p.startswith(k + "/") for k in kept):
            kept.append(p)
    return kept


def _bwrap_command(stage: Path, uid: int | None = None, *, guard: bool = True) -> list[str]:
    """An allow-list of the file system: what Python and NumPy need, and the stage.

    ``uid``: we are root; the child drops to this uid of its own, inside the sandbox, through
    setpriv (bwrap runs as root, without a user namespace, so that it can bind a Python that
    lives in a folder private to root; the only capabilities left are those setpriv needs to
    switch, and it gives them up), and then a second bwrap, unprivileged, disables nested user
    namespaces. Otherwise bwrap runs unprivileged in a user namespace, with nested user
    namespaces disabled.
    """
    # --unshare-user + --disable-userns: no nested namespaces (a way around the limits);
    # /dev read-only (it is a tmpfs without a size option) with a small /dev/shm; a small /tmp.
    if uid is None:
        cmd = ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    else:
        cmd = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
               "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    cmd += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr", "--proc", "/proc",
            "--dev", "/dev", "--perms", "1777", "--size", str(_SHM_LIMIT), "--tmpfs", "/dev/shm",
            "--remount-ro", "/dev", "--perms", "1777", "--size", str(_TMP_LIMIT), "--tmpfs", "/tmp"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):  # merged /usr: these are links into it
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for p in _python_paths():
        if not p.startswith("/usr/"):
            cmd += ["--ro-bind", p, p]
    work = str(stage / "work")
    cmd += ["--ro-bind", str(stage), str(stage), "--perms", "1777", "--size", str(_WORK_LIMIT), "--tmpfs", work,
            "--setenv", "HOME", work, "--chdir", work]
    if uid is not None:
        # bwrap makes the folders leading to a bind private (0700): the child's uid must pass them
        bound = [p for p in _python_paths() if not p.startswith("/usr/")] + [str(stage)]
        parents = {str(a) for p in bound for a in Path(p).parents if str(a) not in ("/", "/tmp")} - set(bound)
        for a in sorted(parents, key=len):
            cmd += ["--chmod", "0755", a]
        cmd += ["--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all"]
        if guard and _inner_userns_guard():
            # a second, unprivileged bwrap as that uid: same view, but nested user namespaces disabled
            cmd += ["--", *_INNER_GUARD]
    return cmd


_INNER_GUARD = ["bwrap", "--unshare-user", "--disable-userns", "--die-with-parent", "--dev-bind", "/", "/"]


@functools.lru_cache(maxsize=1)
def _inner_userns_guard() -> bool:
    """True if, as root, the child can run an inner unprivileged bwrap with --disable-userns (the
    kernel must allow unprivileged user namespaces); probed once."""
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE_PREFIX}{os.getpid()}-probe-"))
    try:
        (stage / "work").mkdir()
        _open_stage_to(stage, _CHILD_UID_BASE)
        outer = _bwrap_command(stage, _CHILD_UID_BASE, guard=False)
        done = subprocess.run([*outer, "--", *_INNER_GUARD, "--", "/bin/true"], capture_output=True, timeout=20)
        return done.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _child_uid() -> int | None:
    """A fresh unprivileged uid for one child when the grader runs as root (with bwrap and
    setpriv), else None.

    RLIMIT_NPROC counts the processes of a real uid across the machine and is ignored for
    root, so only a uid of its own bounds a submission's fork bomb without touching anyone
    else's processes (cgroup v2 pids.max would too; it is not delegated on every machine).
    """
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    return _CHILD_UID_BASE + secrets.randbelow(1_000_000)


def kill_uid(uid: int) -> None:
    """Kills every process of ``uid``, a child's own uid: only the submission's processes have it,
    daemons included (double fork, ``setsid``: out of the child's process group, still its uid).

    ``kill(-1)`` sent *as* that uid reaches every process it may signal, which is exactly the
    processes of that uid, in one kernel call: a process that keeps forking cannot outrun it as it
    could a walk of /proc. The killed processes' parents are gone, so they are reaped by init.
    """
    try:
        subprocess.run(["/bin/sh", "-c", "kill -KILL -1"], user=uid, group=uid, extra_groups=[],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=20, close_fds=True)
    except (OSError, subprocess.SubprocessError):
        pass


def _limits(uid: int | None = None, cgroup: Cgroup | None = None) -> None:
    """Runs in the child before exec: caps memory, file size, core dumps, and, when the child will
    run as a uid of its own (``uid``), that uid's number of processes (inherited through bwrap
    and setpriv; the kernel checks it against the real uid at each fork)."""
    limits = [(resource.RLIMIT_AS, _MEMORY_LIMIT), (resource.RLIMIT_FSIZE, _FILE_LIMIT), (resource.RLIMIT_CORE, 0)]
    if uid is not None:
        limits.append((resource.RLIMIT_NPROC, _PROCESS_LIMIT))
    if cgroup is not None:
        cgroup.enter()
    for limit, value in limits:
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


_CGROUP_MEMORY = 4 << 30  # all of one child's processes together (RLIMIT_AS is per process)
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# (controller, setting, value, required): without pids and memory there is no cgroup at all (the
# rlimits alone apply, as before); cpu (a share of its own) and cpuacct (its CPU time) are used
# where they can be made
def _controllers() -> tuple[tuple[str, str | None, int, bool], ...]:
    return (("pids", "pids.max", _PROCESS_LIMIT, True), ("memory", "memory.limit_in_bytes", _CGROUP_MEMORY, True),
            ("cpu", "cpu.shares", _CPU_SHARES, False), ("cpuacct", None, 0, False))


class Cgroup:
    """A control group of one child's own, where this machine lets us make one: cgroup v1's
    ``pids`` and ``memory`` controllers (writable by root on the course machines), and its ``cpu``
    and ``cpuacct`` ones where present. Caps the number of processes and the memory of all of them
    together, gives the child one CPU share, counts its CPU time; ``close`` kills what is left.
    (cgroup v2 needs a delegated subtree; not handled: there the rlimits alone apply, and CPU time
    is read from /proc.)"""

    def __init__(self, dirs: list[Path], by_controller: dict[str, Path] | None = None) -> None:
        self.dirs = dirs
        self.by_controller = by_controller or {}

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that ever ran in the cgroup (cpuacct.usage), or None."""
        d = self.by_controller.get("cpuacct")
        try:
            return int((d / "cpuacct.usage").read_text()) / 1e9 if d else None
        except (OSError, ValueError):
            return None

    def refused_forks(self) -> int:
        """How many times the process cap refused a new process or thread (pids.events ``max``)."""
        d = self.by_controller.get("pids")
        try:
            for line in (d / "pids.events").read_text().splitlines() if d else []:
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    @classmethod
    def create(cls) -> Cgroup | None:
        if os.geteuid() != 0 or (_CGROUP_ROOT / "cgroup.controllers").exists():
            return None
        own = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for c in controllers.split(","):
                    own[c] = path
        except (OSError, ValueError):
            return None
        name = f"gradelab-{os.getpid()}-{secrets.token_hex(4)}"
        dirs: list[Path] = []
        by_controller: dict[str, Path] = {}
        for controller, setting, value, required in _controllers():
            if controller not in own or not (_CGROUP_ROOT / controller).is_dir():
                continue
            parent = _CGROUP_ROOT / controller / own[controller].lstrip("/")
            d = parent / name
            try:
                if d.resolve() not in {x.resolve() for x in dirs}:  # cpu,cpuacct may be one hierarchy
                    _sweep_stale_cgroups(parent)
                    d.mkdir()
                    dirs.append(d)
                if setting is not None:
                    (d / setting).write_text(str(value))
                by_controller[controller] = d
            except OSError:
                if required:
                    Cgroup(dirs).close()
                    return None
        return cls(dirs, by_controller) if dirs else None

    def enter(self) -> None:
        """Called in the child before exec: moves it (and so all its descendants) in."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        for d in self.dirs:
            for _ in range(50):
                try:
                    pids = [int(x) for x in (d / "cgroup.procs").read_text().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _sweep_stale_cgroups(parent: Path) -> None:
    """Removes cgroups left by a grading process that was killed with SIGKILL (no close ran)."""
    for old in parent.glob("gradelab-*-*"):
        pid = old.name.split("-")[1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            Cgroup([old]).close()
        except PermissionError:
            pass


class CpuLimit(Exception):
    """The child's processes used up a case's CPU time."""


@dataclass
class _Clock:
    """One wait for the child: CPU time counted from ``cpu0`` up to ``cpu_limit`` seconds, and a
    wall-clock backstop (``wall``, time.monotonic())."""

    cpu0: float
    cpu_limit: float
    wall: float


def _backstop(limit: float) -> float:
    return _BACKSTOP_FACTOR * limit + _BACKSTOP_SLACK


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(root: int) -> float:
    """CPU time of ``root`` and its descendants, from /proc (where there is no cgroup of our own):
    user + system time of each live process, plus what it collected from children it reaped.
    Processes that left the tree (reparented to init) are no longer counted."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2:].split()
        try:
            stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS)
        except (IndexError, ValueError):
            continue
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
            todo += children.get(pid, [])
    return total


@dataclass
class Reply:
    """What came back for one case: arrays, or why there are none."""

    outputs: dict[str, object] | None
    error: str | None
    log: str


class Child:
    """One sandboxed worker process for one submission; restarted after it dies or hangs."""

    def __init__(self, impl_root: Path, lab: str, *, use_bwrap: bool) -> None:
        self.impl_root, self.lab, self.use_bwrap = Path(impl_root), lab, use_bwrap
        self.stage, self.notes = make_stage(self.impl_root, lab)
        self.proc: subprocess.Popen[bytes] | None = None
        self.broken: str | None = None  # set when the child cannot even start: no use retrying
        self._log = tempfile.TemporaryFile()  # unlinked: the child can write to it, never replace it
        os.fchmod(self._log.fileno(), 0o600)  # passed as an fd: the child needs no permission on it
        self._cgroup = Cgroup.create() if use_bwrap else None
        self._log_pos = 0
        self._refused_seen = 0
        self._allowance = _ONE_TIME_ALLOWANCE  # CPU seconds, for the whole submission (see run)
        self._uids: list[int] = []  # the uids children ran as: their leftovers are killed with them

    def _start(self, timeout: float) -> None:
        py = [sys.executable, "-I", "-S", "-c", _BOOT, str(self.stage), self.lab, *_site_dirs()]
        uid = _child_uid() if self.use_bwrap or uid_without_bwrap() else None
        cmd = (_bwrap_command(self.stage, uid) + ["--"] if self.use_bwrap else _setpriv(uid)) + py
        # TMPDIR: without bwrap the child shares the machine's /tmp, and a child that is killed never
        # cleans up (its private bytecode cache, the student's temp files): the stage goes with it
        work = str(self.stage / "work")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": work, "TMPDIR": work,
               "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if uid is not None:  # the child switches to a uid of its own: let it read the stage
            _open_stage_to(self.stage, uid)
            self._uids.append(uid)
        cpu0 = self._cgroup_cpu() or 0.0
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env, cwd=self.stage / "work",
                                     preexec_fn=functools.partial(_limits, uid, self._cgroup),
                                     start_new_session=True)
        self._refused_seen = self._cgroup.refused_forks() if self._cgroup else 0
        header, _ = self._next_frame(_Clock(cpu0, timeout, time.monotonic() + _backstop(timeout)))
        if header.get("status") != "ready":
            raise protocol.ProtocolError("unexpected greeting")

    def _cgroup_cpu(self) -> float | None:
        return self._cgroup.cpu_seconds() if self._cgroup is not None else None

    def cpu_seconds(self) -> float:
        """CPU time used so far by the child's processes: its cgroup's, else its process tree's."""
        own = self._cgroup_cpu()
        if own is not None:
            return own
        return _tree_cpu_seconds(self.proc.pid) if self.proc is not None else 0.0

    def _next_frame(self, clock: _Clock) -> tuple[dict, bytes]:
        """The next frame from the child. While nothing arrives, the child's CPU time is checked
        against the clock (CpuLimit) and the wall clock against its backstop (protocol.Timeout);
        once a frame starts, the rest of it has until the backstop."""
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        while True:
            wait = min(_POLL, clock.wall - time.monotonic())
            if wait <= 0:
                raise protocol.Timeout()
            if select.select([fd], [], [], wait)[0]:
                return protocol.read_frame_fd(fd, clock.wall)
            used = self.cpu_seconds() - clock.cpu0
            if used >= clock.cpu_limit:
                raise CpuLimit(used)

    def _stop_with_stack(self) -> int | None:
        """Asks the worker to write its stack to the log (its helper thread does: the main thread
        is in student code), gives it ``_DUMP_WAIT`` s to do so, then kills the child."""
        if self.proc is not None and self.proc.poll() is None and self.proc.stdin is not None:
            fd, size = self._log.fileno(), os.fstat(self._log.fileno()).st_size
            try:
                protocol.write_frame_fd(self.proc.stdin.fileno(), protocol.pack({"dump": True}),
                                        time.monotonic() + 0.2)
                until = time.monotonic() + _DUMP_WAIT
                while time.monotonic() < until and os.fstat(fd).st_size == size:
                    time.sleep(0.02)
                time.sleep(0.05)  # the dump is written in a few pieces
            except (protocol.Timeout, OSError):
                pass
        return self._kill()

    def _kill(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.proc.wait()
        for uid in self._uids:  # what it started outside its process group (a daemon) goes too
            kill_uid(uid)
        self._uids.clear()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream:
                stream.close()
        self.proc = None
        return code

    def _log_tail(self) -> str:
        """What the child printed since the last call (its last ``_LOG_TAIL`` characters)."""
        fd = self._log.fileno()
        size = os.fstat(fd).st_size
        if size <= self._log_pos:  # nothing new (or the child truncated its log)
            self._log_pos = size
            return ""
        start = max(self._log_pos, size - 4 * _LOG_TAIL)  # never read more than a tail
        text = os.pread(fd, size - start, start).decode(errors="replace")
        cut = start > self._log_pos or len(text) > _LOG_TAIL
        self._log_pos = size
        return "..." + text[-_LOG_TAIL:] if cut else text

    def _reply(self, request_id: str, clock: _Clock) -> tuple[dict, bytes]:
        """The reply to this request; frames with another id (forged or stale) are dropped."""
        for _ in range(64):
            header, body = self._next_frame(clock)
            if header.get("id") == request_id:
                return header, body
        raise protocol.ProtocolError("too many frames that answer no request")

    def _cap_note(self, error: str) -> str:
        """Says so when the process cap is what stopped the submission (it explains errors such as
        'can't start new thread' or 'Resource temporarily unavailable' from fork)."""
        refused = self._cgroup.refused_forks() if self._cgroup else 0
        new, self._refused_seen = refused - self._refused_seen, refused
        if new > 0:
            return (f"\nnote: your code reached the sandbox's cap of {_PROCESS_LIMIT} processes and threads "
                    f"(all of them together); {new} attempts to start another were refused")
        if any(s in error for s in ("Resource temporarily unavailable", "can't start new thread")):
            return (f"\nnote: this is what happens when your code reaches the sandbox's cap of {_PROCESS_LIMIT} "
                    "processes and threads")
        return ""

    def run(self, case_name: str, inputs: dict[str, np.ndarray], timeout: float) -> Reply:
        """Runs one case in the child; never raises for anything the student's code does.

        ``timeout`` is CPU seconds of the child's processes, with a wall-clock backstop."""
        reply = self._run(case_name, inputs, timeout)
        if reply.error and not reply.error.startswith(FEEDBACK_TAG):
            reply.error += self._cap_note(reply.error + reply.log)
        return reply

    def _run(self, case_name: str, inputs: dict[str, np.ndarray], timeout: float, *,
             warm_rerun: str = "") -> Reply:
        if self.broken:
            return Reply(None, self.broken, "")
        try:
            if self.proc is None:
                self._start(timeout + _STARTUP_SECONDS)
        except (protocol.Timeout, CpuLimit):
            self._kill()
            self.broken = (f"importing your package did not finish within {timeout + _STARTUP_SECONDS:g} s "
                           "(code at module level that loops or waits?)")
            return Reply(None, self.broken, self._log_tail())
        except (protocol.ProtocolError, OSError) as exc:
            code = self._kill()
            reason = _death_message(code) if isinstance(exc, (protocol.ChannelClosed, OSError)) else \
                f"the process running your code sent garbage while starting: {exc}"
            return Reply(None, reason.replace("while running this case", "while importing your package"),
                         self._log_tail())
        request_id = secrets.token_hex(8)
        extended = 0.0
        clock = _Clock(self.cpu_seconds(), timeout, time.monotonic() + _backstop(timeout))
        try:
            assert self.proc and self.proc.stdin
            # with a deadline: a child that stops reading its stdin must not block the grader
            protocol.write_frame_fd(self.proc.stdin.fileno(),
                                    protocol.pack({"case": case_name, "id": request_id, "timeout": timeout},
                                                  protocol.encode_arrays(inputs)), clock.wall)
            try:
                header, body = self._reply(request_id, clock)
            except CpuLimit:
                if warm_rerun or self._allowance <= 0:
                    raise
                # Perhaps a one-time cost (a lazy import, a cache): let it finish within the allowance,
                # then run the case again, warm; only that run counts.
                extended = extra = self._allowance
                self._allowance = 0.0  # spent, unless the run ends within it (below)
                self._reply(request_id, _Clock(clock.cpu0, timeout + extra,
                                               time.monotonic() + _backstop(timeout + extra)))
                used = self.cpu_seconds() - clock.cpu0
                self._allowance = max(0.0, extra - max(0.0, used - timeout))
                self._log_tail()  # what the cold run printed is not this case's output
                return self._run(case_name, inputs, timeout, warm_rerun=f"{used:.3g}")
        except (protocol.Timeout, CpuLimit) as exc:
            self._stop_with_stack()
            if isinstance(exc, protocol.Timeout):
                why = (f"did not finish within {_backstop(timeout):g} s of wall-clock time (code that waits, "
                       f"sleeps or blocks?); the process was stopped")
            else:
                why = f"did not finish within {timeout:g} s of CPU time"
                if warm_rerun:
                    why += (f" (its first run, given a one-time allowance for start-up costs such as imports, "
                            f"took {warm_rerun} s; run again, warm, it still needed more than the limit)")
                elif extended:
                    why += (f", nor within a one-time allowance of {extended:.3g} s more for start-up costs "
                            "such as imports (given once per submission)")
                why += " (an endless loop, or very slow code?); the process was stopped"
            return Reply(None, why, self._log_tail())
        except (protocol.ChannelClosed, BrokenPipeError):
            code = self._kill()
            return Reply(None, _death_message(code), self._log_tail())
        except protocol.ProtocolError as exc:
            self._kill()
            return Reply(None, f"the process running your code sent garbage: {exc}", self._log_tail())
        log = self._log_tail()
        if header.get("status") == "error":
            return Reply(None, str(header.get("error")), log)
        try:
            outputs: dict[str, object] = dict(protocol.decode_arrays(body))
        except protocol.ProtocolError as exc:
            return Reply(None, f"the process running your code sent garbage: {exc}", log)
        invalid = header.get("invalid") or {}
        if not isinstance(invalid, dict):
            return Reply(None, "the process running your code sent garbage: bad 'invalid' field", log)
        outputs.update({str(k): Invalid(str(v)) for k, v in invalid.items()})
        return Reply(outputs, None, log)

    def close(self) -> None:
        self._kill()
        if self._cgroup is not None:
            self._cgroup.close()  # kills whatever the child left behind (daemonized processes too)
        self._log.close()
        shutil.rmtree(self.stage, ignore_errors=True)


def _death_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return (f"the process running your code was killed by {name} while running this case "
                "(a crash in native code, or running out of memory?)")
    if code is not None and code > 128 and code - 128 in {s.value for s in signal.Signals}:
        return (f"the process running your code was killed by {signal.Signals(code - 128).name} "
                "while running this case (a crash in native code, or running out of memory?)")
    return (f"the process running your code exited (exit code {code}) while running this case: "
            "does your code call exit(), sys.exit() or os._exit()? No result counts as a failure")
