"""What a student hands in, read safely: a lab folder at some depth, its files flat, or a zip of either.

Shared by Gradescope's ``run_autograder`` (grader/course/gradescope.py) and ``gradelab grade``
(grader/course/submission.py), so an upload is read the same way on every path: symlinks are
never followed, nothing deeper than ``MAX_DEPTH`` folders is read (a tree of any depth is neither
a RecursionError nor an endless walk), and a zip keeps regular files only, refusing absolute
paths, ``..``, links and bombs.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

MAX_UNZIPPED = 50 << 20  # bytes a zip may unpack to
MAX_DEPTH = 32  # folders deeper than this cannot hold a lab; a walk below it is never a RecursionError


def walk_files(top: Path, max_depth: int = MAX_DEPTH) -> list[Path]:
    """Regular files under ``top`` (not through symlinks, at most ``max_depth`` folders down),
    found iteratively: a tree of any depth is neither a RecursionError nor an endless walk."""
    found: list[Path] = []
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            continue  # unreadable or vanished: nothing to grade there
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if depth < max_depth:
                    stack.append((entry, depth + 1))
            elif entry.is_file():
                found.append(entry)
    return found


def safe_extract(archive: Path, dest: Path) -> None:
    """Unzips regular files only, refusing absolute paths, ``..``, members nested deeper than
    ``MAX_DEPTH`` folders and zip bombs. ``dest`` exists afterwards, even if nothing was kept."""
    total = 0
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = Path(info.filename)
            if info.is_dir() or name.is_absolute() or ".." in name.parts or "__MACOSX" in name.parts:
                continue
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                continue  # a symlink
            if len(name.parts) > MAX_DEPTH:
                continue
            total += info.file_size
            if total > MAX_UNZIPPED:
                raise ValueError(f"the zip unpacks to more than {MAX_UNZIPPED >> 20} MiB")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def find_lab_folder(top: Path, lab: str, depth: int = 3) -> Path | None:
    if (top / lab).is_dir() and not (top / lab).is_symlink():
        return top / lab
    if depth == 0:
        return None
    try:
        subs = sorted(p for p in top.iterdir() if p.is_dir() and not p.is_symlink() and p.name != "__MACOSX")
    except OSError:
        return None
    for sub in subs:
        found = find_lab_folder(sub, lab, depth - 1)
        if found:
            return found
    return None
