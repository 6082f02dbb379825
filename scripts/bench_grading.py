"""Benchmark of instructor grading, in one run: sandbox start-up, seconds per Lab 1 submission,
and throughput with 1 job, N jobs, and a 2-worker Dask LocalCluster.

    .venv/bin/python scripts/bench_grading.py [--submissions 4] [--jobs N] [--fast]

Every submission is a copy of the reference (full marks), graded exactly as `gradelab grade`
grades (sandboxed child, hidden variants, the MNIST training case unless --fast). The ratios
are measured in the same run; on a machine shared with other work the absolute figures move.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import paths
from grader.course import batch  # noqa: E402
from grader.isolation.loading import load_cases  # noqa: E402
from grader.isolation.sandbox import Child, _bwrap_command, bwrap_available  # noqa: E402
from grader.runner import LabResult  # noqa: E402


def startup_seconds(root: Path, repeats: int = 5) -> list[float]:
    """Time from starting the sandboxed child to its 'ready' (Python, NumPy, the student's import)."""
    times = []
    for _ in range(repeats):
        child = Child(root, "lab1", use_bwrap=True)
        try:
            start = time.perf_counter()
            child._start(60.0)
            times.append(time.perf_counter() - start)
        finally:
            child.close()
    return times


def bwrap_seconds(repeats: int = 5) -> list[float]:
    """bubblewrap alone: the sandbox's own start-up (namespaces, mounts), running /bin/true."""
    stage = Path(tempfile.mkdtemp(prefix="gradelab-bench-stage-"))
    (stage / "work").mkdir()
    cmd = _bwrap_command(stage) + ["--", "/bin/true"]
    times = []
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(cmd, check=True)
            times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return times


def machine_parallelism(n: int) -> float:
    """Control: the throughput ratio of n CPU-bound Python processes at once vs one. On an idle
    n-core machine it is about n; when the cores are shared, it is what any grader can expect."""
    code = [sys.executable, "-c", "sum(range(3 * 10**7))"]
    start = time.perf_counter()
    subprocess.run(code, check=True)
    one = time.perf_counter() - start
    start = time.perf_counter()
    procs = [subprocess.Popen(code) for _ in range(n)]
    for proc in procs:
        proc.wait()
    return n * one / (time.perf_counter() - start)


def throughput(todo: list[tuple[str, str]], options: batch.Options, *, jobs: int,
               scheduler: str | None = None) -> tuple[float, list[LabResult]]:
    results: list[LabResult] = []

    def keep(sub_id: str, path: str, graded: batch.Graded) -> None:
        results.append(graded.result)

    start = time.perf_counter()
    if scheduler:
        batch.run_dask(todo, options, scheduler, jobs, keep, progress=False)
    else:
        batch.run_local(todo, options, jobs, keep, progress=False)
    return time.perf_counter() - start, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--fast", action="store_true", help="leave out the MNIST training case")
    args = parser.parse_args()
    if not bwrap_available():
        print("bubblewrap is not usable here: nothing to measure", file=sys.stderr)
        return 2
    lab = load_cases("lab1", paths.tests_dir())
    only = tuple(c.name for c in lab.cases if not c.slow) if args.fast else None
    options = batch.Options("lab1", only=only)
    tmp = Path(tempfile.mkdtemp(prefix="gradelab-bench-"))
    try:
        for i in range(args.submissions):
            shutil.copytree(paths.solutions_dir() / "lab1", tmp / f"s{i}" / "lab1",
                            ignore=shutil.ignore_patterns("__pycache__", "*.toml"))
        todo = [(f"s{i}", str(tmp / f"s{i}")) for i in range(args.submissions)]
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
              "(other work on the machine makes every figure noisier)")
        print(f"lab1 {'without' if args.fast else 'with'} the MNIST training case; "
              f"{args.submissions} submissions (copies of the reference)")

        bw = bwrap_seconds()
        print(f"sandbox start-up, bubblewrap alone (namespaces + mounts, /bin/true): median "
              f"{statistics.median(bw):.3f} s, min {min(bw):.3f} s over {len(bw)}")
        st = startup_seconds(tmp / "s0")
        print(f"child ready (bwrap + Python + NumPy + the grader + importing the submission): median "
              f"{statistics.median(st):.3f} s, min {min(st):.3f} s over {len(st)}")

        one, res1 = throughput(todo, options, jobs=1)
        assert all(r.score == r.max_score for r in res1), [r.score for r in res1]
        per_sub = statistics.median(r.seconds for r in res1)
        print(f"seconds per submission (1 job, grading time inside the worker): median {per_sub:.2f} s")
        print(f"1 job:  {args.submissions} submissions in {one:.1f} s = {args.submissions / one * 60:.1f} per minute")
        print(f"control: {args.jobs} CPU-bound processes at once do {machine_parallelism(args.jobs):.2f}x the work "
              "of one on this machine right now (how much the other work on it leaves; compare the speed-ups below)")
        n, _ = throughput(todo, options, jobs=args.jobs)
        print(f"{args.jobs} jobs: {args.submissions} submissions in {n:.1f} s = "
              f"{args.submissions / n * 60:.1f} per minute; speed-up {one / n:.2f}x")
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("Dask: not installed (pip install 'gradelab[dask]'); skipped")
        else:
            d, _ = throughput(todo, options, jobs=2, scheduler="local")
            print(f"Dask LocalCluster, 2 worker processes (start-up included): {args.submissions} submissions in "
                  f"{d:.1f} s = {args.submissions / d * 60:.1f} per minute; speed-up {one / d:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
