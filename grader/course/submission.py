"""One submission's grade: the single place where every path (``gradelab grade`` and its workers,
Dask tasks, the nbgrader import, Gradescope's ``run_autograder``) turns a submission folder into a
``LabResult``.

A submission is a folder laid out like ``labs/`` (``<sub>/<lab>/__init__.py``), or a zip of one
(unpacked as Gradescope's ``run_autograder`` does, with the same extractor and lab-folder finder,
also when the folder holds no ``<lab>/`` but a zip). ``grade_copy`` first copies it once (regular
files only: a symlink is never followed, whatever it points at), hashes that copy and grades that
copy, so the content hash in the gradebook is the hash of exactly the bytes that were graded, even
when the folder changes during the batch. It is graded in the
sandboxed child with the public and hidden seeds and the reference computed live
(``grader.runner.grade(..., isolated=True)``). Nothing a submission does raises out of here: a
missing package or a failure of the grading itself is a 0 with the reason; only ``GradingError``
(the grader's own set-up: no sandbox, no reference) propagates, since it is the same for everyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from grader import paths
from grader.data.mnist import COURSE_DATA_ENV as MNIST_ENV  # read by load_mnist(): the course's held-out set
from grader.isolation.loading import load_cases
from grader.isolation.sandbox import _STAGE_PREFIX
from grader.runner import GradingError, LabResult, _printable_result, grade, zero_result

from .gradebook import content_hash
from .uploads import find_lab_folder, safe_extract

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Options:
    """What every task needs to grade a submission the same way (picklable, for workers)."""

    lab: str
    only: tuple[str, ...] | None = None
    timeout_scale: float = 1.0
    allow_unsandboxed: bool = False
    data: str | None = None

    def key(self) -> dict[str, object]:
        """The options that change a grade, for the gradebook's grading key."""
        return {"only": self.only, "timeout_scale": self.timeout_scale,
                "allow_unsandboxed": self.allow_unsandboxed, "data": self.data}


def use_data(data: str | None) -> None:
    """Points the accuracy cases (built in this process) at the course's own MNIST, or the bundled one."""
    if data:
        os.environ[MNIST_ENV] = str(Path(data).resolve())
    else:
        os.environ.pop(MNIST_ENV, None)


def zero_for(options: Options, path: Path, reason: str) -> LabResult:
    """A 0 for every case this run grades (``options.only``: a row's maximum is the same whether
    the submission could be graded or not), saying why."""
    lab = load_cases(options.lab, paths.tests_dir())
    if options.only is not None:
        lab = dataclasses.replace(lab, cases=[c for c in lab.cases if c.name in options.only])
    return _printable_result(zero_result(lab, path, reason))


def grade_submission(path: Path | str, options: Options) -> LabResult:
    """Grades one submission folder in the sandbox; a 0 with the reason when it cannot be graded."""
    os.environ.update(ONE_THREAD)
    use_data(options.data)
    lab = load_cases(options.lab, paths.tests_dir())
    path = Path(path)
    if not (path / options.lab / "__init__.py").is_file():
        return zero_for(
            options, path, f"no {options.lab}/ package in the submission: a submission is a folder laid out like "
                       f"labs/, holding {options.lab}/__init__.py and the lab's modules")
    try:
        return grade(lab, path, isolated=True, only=options.only, timeout_scale=options.timeout_scale,
                     allow_unsandboxed=options.allow_unsandboxed)
    except GradingError:
        raise  # the grader's own set-up (no reference, no sandbox): the same for every submission
    except Exception as exc:  # noqa: BLE001 - nothing one submission does may stop the others
        return zero_for(options, path, f"grading this submission failed ({type(exc).__name__}: {exc}); "
                                    "the instructor should look at it")


SNAPSHOT_LIMIT = 200 << 20  # bytes copied per submission (the sandbox then takes at most 50 MiB of source)


@dataclass
class Graded:
    """A submission's result and the content hash of the copy it was graded from."""

    result: LabResult
    content_hash: str


def _copy_file(src: str | Path, dst: Path, budget: list[int], limit: int) -> bool:
    """Copies one regular file without following a link (``O_NOFOLLOW``: a file swapped for a link
    after the folder was listed is not opened); False when ``src`` is not a regular file."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with os.fdopen(os.dup(fd), "rb") as fin, open(dst, "wb") as fout:
            for chunk in iter(lambda: fin.read(1 << 20), b""):  # noqa: B023 - fin is this call's file
                budget[0] -= len(chunk)
                if budget[0] < 0:
                    raise ValueError(f"the submission is larger than {limit >> 20} MiB")
                fout.write(chunk)
        return True
    finally:
        os.close(fd)


def copy_without_links(src: Path, dst: Path, limit: int = SNAPSHOT_LIMIT,
                       ignore: Callable[[str], bool] | None = None) -> list[str]:
    """Copies the folder ``src`` to ``dst``: folders and regular files only, iteratively (any depth,
    no RecursionError); returns a note per entry left out. A symlink is never followed, wherever it
    points (``solutions/``, another student, itself: a loop is just one skipped entry). Entries
    whose name ``ignore`` accepts are left out without a note. Raises ValueError past ``limit``
    bytes, and OSError when ``src`` itself cannot be listed."""
    notes: list[str] = []
    budget = [limit]
    stack: list[tuple[Path, Path, str]] = [(Path(src), Path(dst), "")]
    while stack:
        folder, target, rel = stack.pop()
        target.mkdir(parents=True, exist_ok=True)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            if not rel:
                raise
            notes.append(f"{rel} (a folder that could not be read: {exc.strerror})")
            continue
        for e in entries:
            if ignore is not None and ignore(e.name):
                continue
            name = os.fsencode(rel + e.name).decode("utf-8", "backslashreplace")
            try:
                if e.is_symlink():
                    notes.append(f"{name} (a symlink: links in a submission are never followed)")
                elif e.is_dir(follow_symlinks=False):
                    stack.append((Path(e.path), target / e.name, rel + e.name + "/"))
                elif not (e.is_file(follow_symlinks=False) and _copy_file(e.path, target / e.name, budget, limit)):
                    notes.append(f"{name} (not a regular file)")
            except OSError as exc:  # vanished, unreadable, or turned into a link since it was listed
                notes.append(f"{name} (could not be copied: {exc.strerror or exc})")
    return notes


def _sha256_file(path: Path) -> str:
    """sha256 of a regular file (``O_NONBLOCK``: a FIFO put in its place cannot hang the batch)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError(0, "not a regular file")
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):  # noqa: B023 - f is this call's file
            h.update(chunk)
    return h.hexdigest()


def _source(path: Path, lab: str) -> tuple[str, Path]:
    """What a submission path holds: ("folder", <path>/<lab>), ("zip", the zip), ("file", it) for
    any other regular file, ("special", it) for a FIFO or a device, ("none", path) for a folder
    with no package nor zip, ("missing", path)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing", path
    if stat.S_ISREG(mode):
        return ("zip" if zipfile.is_zipfile(path) else "file"), path
    if not stat.S_ISDIR(mode):
        return "special", path  # a FIFO, a socket, a device: never opened
    package = path / lab
    if package.is_symlink():
        return "none", path  # a linked package is never graded (the sandbox does not follow it either)
    if package.is_dir():
        return "folder", package
    try:
        zips = sorted(p for p in path.iterdir() if p.suffix.lower() == ".zip" and p.is_file() and not p.is_symlink())
    except OSError:
        zips = []
    return ("zip", zips[0]) if zips else ("none", path)


def source_hash(path: Path | str, lab: str) -> str:
    """The content hash ``grade_copy`` will record for ``path`` if it does not change until then:
    what decides, before grading, that a submission is unchanged since its row was written."""
    kind, src = _source(Path(path), lab)
    if kind == "folder":
        return content_hash(src.parent, lab)
    if kind in ("zip", "file"):
        try:
            return f"{kind}:{_sha256_file(src)}"
        except OSError as exc:
            return f"unreadable: {exc.strerror}"
    return {"none": "no-package", "special": "special"}.get(kind, "missing")


def _take(path: Path, lab: str, work: Path) -> tuple[Path, str, list[str], str]:
    """Copies the submission at ``path`` into ``work`` once: (root laid out like labs/ to grade,
    content hash of that copy, notes, why it cannot be graded or '')."""
    kind, src = _source(path, lab)
    root = work / "submission"
    root.mkdir()
    if kind == "missing":
        return root, "missing", [], ("the submission cannot be opened: a broken link, or removed or renamed "
                                     "during the batch")
    if kind == "none":
        return root, "no-package", [], ""  # grade_submission says what a submission must hold
    if kind == "special":
        return root, "special", [], "the submission is not a folder nor a regular file (a FIFO or a device?)"
    if kind == "folder":
        notes = copy_without_links(src, root / lab)
        return root, content_hash(root, lab), notes, ""
    copy = work / "upload"
    # the path given may itself be a link (the course's layout; links between submissions are the
    # batch's to flag); a zip found inside a folder never is (``_source``)
    if not _copy_file(os.path.realpath(src) if src == path else src, copy, [SNAPSHOT_LIMIT], SNAPSHOT_LIMIT):
        return root, "missing", [], "the submission is not a regular file"
    chash = f"{kind}:{_sha256_file(copy)}"
    name = os.fsencode(src.name).decode("utf-8", "backslashreplace")
    if kind == "file":
        return root, chash, [], (f"{name} is neither a folder nor a zip: a submission is a folder laid out like "
                                 f"labs/ (holding {lab}/), or a zip of one")
    try:
        safe_extract(copy, work / "unzipped")
    except (zipfile.BadZipFile, ValueError, OSError, RecursionError) as exc:
        return root, chash, [], f"could not unpack {name}: {exc}"
    found = find_lab_folder(work / "unzipped", lab) if (work / "unzipped").is_dir() else None
    if found is None:
        return root, chash, [], f"{name} holds no {lab}/ folder: zip the folder {lab}/ itself"
    return found.parent, chash, [f"graded the {lab}/ folder found in {name}"], ""


def grade_copy(path: Path | str, options: Options) -> Graded:
    """Copies ``path`` once (``_take``), hashes that copy and grades that copy: a 0 with the
    reason when it cannot be graded. The copy lives under a stage-like name of this process,
    so ``sweep_stale_stages`` removes it if this process is killed."""
    path = Path(path)
    work = Path(tempfile.mkdtemp(prefix=f"{_STAGE_PREFIX}{os.getpid()}-copy-"))
    try:
        try:
            root, chash, notes, problem = _take(path, options.lab, work)
        except (OSError, ValueError) as exc:
            root, chash, notes, problem = work, "uncopied", [], f"the submission could not be copied: {exc}"
        if problem:
            result = zero_for(options, path, problem)
        else:
            result = grade_submission(root, options)
        result.impl = str(path)
        result.notes = notes + result.notes
        return Graded(_printable_result(result), chash)
    finally:
        shutil.rmtree(work, ignore_errors=True)
