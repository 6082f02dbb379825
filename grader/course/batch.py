"""Grading many submissions: in parallel on this machine (``--jobs``) or on Dask (``--scheduler``).

Each submission is one task, ``grade_task``: the same sandboxed grading as ``gradelab test
--isolated``, run in a worker process (a local process pool, or a Dask worker). Only the
result (a ``Graded``: the ``LabResult``, numbers and text, and the content hash of the copy that was
graded) comes back; the client alone writes the gradebook, one transaction per submission as each
finishes, so a kill loses at most the submissions in flight. Each worker uses one BLAS thread: N
jobs on N cores do not fight over them.

A local worker exits when the grader dies, even by ``kill -9`` (which runs no cleanup): the kernel
sends it SIGTERM when its parent ends (``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread that polls
``os.getppid()``), which unwinds its grading (the sandboxed child and the stage are removed) and
then ends it. Without this a worker waits on the pool's queue forever, since it holds that
queue's write end itself.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from grader.runner import GradingError

from .submission import ONE_THREAD, Graded, Options, grade_copy

SLOW_AFTER = 30.0  # seconds: a submission in flight longer than this is named on the progress line


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds: every sandbox stage is removed by its finally/close


def exit_on_sigterm() -> None:
    """SIGTERM (and SIGHUP) end the process through Python's unwinding, so cleanups run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_parent: int | None = None  # the grader's pid, in a local pool's worker


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


def _exit_with_parent(parent: int) -> None:
    """SIGTERM to this worker when ``parent`` ends (see the module's docstring)."""
    global _parent
    _parent = parent
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):  # not Linux: poll
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="gradelab-parent").start()
    if os.getppid() != parent:  # the grader died before the signal was armed
        os._exit(1)


def _worker_init(parent: int | None = None) -> None:
    os.environ.update(ONE_THREAD)
    exit_on_sigterm()
    if parent is not None:
        _exit_with_parent(parent)


def grade_task(path: str, options: Options) -> Graded:
    """Grades one submission (a folder or a zip) from a copy: the unit of work of a job or a Dask task."""
    try:
        return grade_copy(path, options)
    finally:
        if _parent is not None and os.getppid() != _parent:
            # The grader is gone: this grading was unwound by the SIGTERM (its child and stage are
            # removed); the pool would catch the SystemExit and wait on its queue forever.
            os._exit(128 + signal.SIGTERM)


OnResult = Callable[[str, str, Graded], None]


class _Progress:
    """A tqdm bar with counts and ETA on stderr, and the slowest submission in flight."""

    def __init__(self, total: int, enabled: bool, file: Any = None) -> None:
        from tqdm import tqdm

        self.file = file or sys.stderr
        self.bar = tqdm(total=total, unit="sub", desc="grading", file=self.file, disable=not enabled,
                        dynamic_ncols=True, mininterval=0.5)

    def tick(self, in_flight: dict[str, float]) -> None:
        now = time.monotonic()
        slow = max(in_flight.items(), key=lambda kv: now - kv[1], default=None)
        if slow and now - slow[1] > SLOW_AFTER:
            self.bar.set_postfix_str(f"slow: {slow[0]} ({now - slow[1]:.0f} s)", refresh=False)
        else:
            self.bar.set_postfix_str("", refresh=False)
        self.bar.refresh()

    def done(self, line: str) -> None:
        self.bar.write(line, file=self.file)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _drive(todo: Sequence[tuple[str, str]], submit: Callable[[str], Any], width: int,
           on_result: OnResult, progress: _Progress) -> None:
    """Keeps ``width`` tasks in flight (so the start time of each is when it really started),
    hands each finished result to ``on_result`` in this process."""
    pending = list(reversed(todo))
    flying: dict[Any, tuple[str, str, float]] = {}
    try:
        while pending or flying:
            while pending and len(flying) < width:
                sub_id, path = pending.pop()
                flying[submit(path)] = (sub_id, path, time.monotonic())
            finished = [f for f in flying if f.done()]
            for fut in finished:
                sub_id, path, _ = flying.pop(fut)
                graded = fut.result()  # GradingError propagates: it concerns every submission
                on_result(sub_id, path, graded)
                progress.done(f"  {sub_id:<30} {graded.result.score:>6g} / {graded.result.max_score:g}")
            if not finished:
                progress.tick({sid: t for sid, _, t in flying.values()})
                time.sleep(0.2)
    finally:
        for fut in flying:
            fut.cancel()


def run_local(todo: Sequence[tuple[str, str]], options: Options, jobs: int, on_result: OnResult,
              *, progress: bool = True) -> None:
    """Grades ``todo`` ([(id, path)]) with ``jobs`` worker processes on this machine."""
    os.environ.update(ONE_THREAD)  # inherited by the spawned workers before they import NumPy
    bar = _Progress(len(todo), progress)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        _drive(todo, lambda path: pool.submit(grade_task, path, options), max(1, jobs), on_result, bar)
    except BrokenProcessPool as exc:
        raise GradingError("a grading worker process died (killed by the system: out of memory?); every "
                           "grade finished before it is saved: rerun the same command to continue") from exc
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)


CONNECT_TIMEOUT = 10.0  # seconds for a reachable scheduler to answer Dask's handshake


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """A plain TCP connection to a ``tcp://``/``tls://`` (or bare ``host:port``) scheduler first: an
    address nobody listens on is a one-line GradingError at once, not Dask's traceback after its timeout."""
    scheme, _, rest = address.rpartition("://")
    host, _, port = rest.rpartition(":")
    if scheme not in ("", "tcp", "tls") or not host or not port.isdigit():
        return  # another transport (inproc, ucx) or no port: Dask itself will say
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise GradingError(f"--scheduler {address}: cannot connect ({exc.strerror or exc}); is the "
                           "scheduler running (dask scheduler), and is the address right?") from None


def run_dask(todo: Sequence[tuple[str, str]], options: Options, scheduler: str, jobs: int,
             on_result: OnResult, *, progress: bool = True) -> None:
    """Grades ``todo`` on Dask: ``scheduler`` is an address (``tcp://host:8786``), or ``local`` for
    a LocalCluster of ``jobs`` single-threaded worker processes on this machine. Workers need
    the project (and bubblewrap) at the same path as here."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise GradingError("--scheduler needs Dask: pip install 'gradelab[dask]'") from exc
    os.environ.update(ONE_THREAD)
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        _check_reachable(scheduler)
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:  # e.g. something else listens there
            raise GradingError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT:g} s "
                               f"({type(exc).__name__})") from None
    bar = _Progress(len(todo), progress)
    try:
        width = max(1, sum(client.nthreads().values()))
        _drive(todo, lambda path: client.submit(grade_task, path, options, pure=False), width, on_result, bar)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
