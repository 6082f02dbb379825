"""Importing implementations and case modules under private module names.

A submission is a folder laid out like ``labs/``: ``<root>/<lab>/__init__.py`` and the lab's
modules. It is imported as a package under a fresh private name, so the reference, the stubs
and many submissions can be loaded side by side in one process, and no import of the bare
name ``lab1`` can find the wrong one. Files inside the package import each other relatively.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import os
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from types import ModuleType

from grader.judging import guard
from grader.judging.case import Lab

_counter = itertools.count()
_PRIVATE_NAME = re.compile(r"_gradelab_(\w+?)_\d+")


class LoadError(Exception):
    """The implementation could not be imported; the message is meant for the student."""


IMPORT_FAILED = "importing "  # every LoadError of a package that exists starts like this


def load_package(root: Path, lab: str) -> ModuleType:
    """Imports ``root/<lab>/`` as a package with a private name; raises LoadError on failure."""
    pkg_dir = Path(root) / lab
    init = pkg_dir / "__init__.py"
    if not init.is_file():
        raise LoadError(f"no {lab} package in {root}: expected {init} (a submission is laid out "
                        f"like labs/, e.g. {root}/{lab}/__init__.py)")
    _only_source(pkg_dir)
    name = f"_gradelab_{lab}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(pkg_dir)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt too: it is the student's import
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        # The package's name, not its path: in grading that is a sandbox stage the student never saw.
        raise LoadError(f"{IMPORT_FAILED}your package {lab}/ failed:\n{student_traceback(exc, pkg_dir)}"
                        f"{_import_hint(exc, pkg_dir)}") from exc
    return module


def _import_hint(exc: BaseException, pkg_dir: Path) -> str:
    """For 'No module named lab1' (or a sibling file's name): use relative imports."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return ""
    top = exc.name.split(".")[0]
    siblings = {p.stem for p in pkg_dir.glob("*.py")} | {p.name for p in pkg_dir.iterdir() if p.is_dir()}
    if top == pkg_dir.name or top in siblings:
        return (f"\nhint: the grader imports your package under another name, so `import {exc.name}` cannot "
                f"work: inside the package use relative imports, e.g. `from .framework import Module` instead "
                f"of `from {pkg_dir.name}.framework import Module` or `import framework`")
    return ""


_COMPILED = (".so", ".pyd", ".pyc", ".pyo", ".dylib", ".dll")


def _only_source(pkg_dir: Path) -> None:
    """Only the visible source is graded, in-process too: compiled modules in the package are
    refused, and bytecode caches next to the sources (``__pycache__``, which could hold code
    that is not the source) are never read: this process keeps its caches in a private folder."""
    if sys.pycache_prefix is None:
        # private to this process (a shared one could serve a stale .pyc for a resubmitted file with
        # the same mtime and size), and removed at exit
        sys.pycache_prefix = tempfile.mkdtemp(prefix="gradelab-pycache-")
        atexit.register(shutil.rmtree, sys.pycache_prefix, ignore_errors=True)
    compiled, stack = [], [pkg_dir]
    while stack:  # iterative: any depth
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                stack.append(Path(entry.path))
            elif entry.name.lower().endswith(_COMPILED) and entry.is_file(follow_symlinks=False):
                compiled.append(os.path.relpath(entry.path, pkg_dir.parent))
    if compiled:
        raise LoadError(f"{IMPORT_FAILED}{pkg_dir} refused: it contains compiled code, which is never graded: "
                        f"{', '.join(sorted(compiled))}; delete it and submit the .py source only")


def student_traceback(exc: BaseException, root: Path | None = None) -> str:
    """The exception with only the frames in ``root`` (the student's files), most recent last."""
    # "raise X from Y" where Y came from student code (e.g. an overflow): show Y's frames first.
    cause = ""
    if exc.__cause__ is not None and exc.__cause__.__traceback__ is not None:
        cause = student_traceback(exc.__cause__, root) + "\n\n"
    if isinstance(exc, guard.Feedback):  # the grader's own finding: the message says it all
        text = _PRIVATE_NAME.sub(lambda m: m.group(1), str(exc))
        return cause + text if cause else guard.FEEDBACK_TAG + text
    return cause + _format(exc, root)


def _format(exc: BaseException, root: Path | None) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    root_s = str(Path(root).resolve()) if root else None
    if isinstance(exc, SyntaxError) and exc.filename:
        name = exc.filename.replace(str(Path(root_s).parent) + "/", "") if root_s else exc.filename
        return f"  File {name}, line {exc.lineno}\n    {(exc.text or '').strip()}\n{type(exc).__name__}: {exc.msg}"
    mine = [f for f in frames if root_s and str(Path(f.filename).resolve()).startswith(root_s)]
    # Only the student's frames: the engine's (or the sandbox stage's) are noise to them.
    text = f"{''.join(traceback.format_list(mine))}{type(exc).__name__}: {exc}".rstrip()
    text = _PRIVATE_NAME.sub(lambda m: m.group(1), text)  # "module '_gradelab_lab1_3'" -> "module 'lab1'"
    # Paths relative to the submission ("lab1/layers.py"): the same in a sandbox stage as at home.
    return text.replace(str(Path(root_s).parent) + "/", "") if root_s else text


def load_cases(lab: str, tests_root: Path) -> Lab:
    """The ``LAB`` object of ``tests_root/<lab>/cases.py``."""
    path = Path(tests_root) / lab / "cases.py"
    if not path.is_file():
        raise LoadError(f"unknown lab {lab!r}: no {path}")
    name = f"_gradelab_cases_{lab}"
    if name in sys.modules:
        return sys.modules[name].LAB
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    lab_obj = getattr(module, "LAB", None)
    if not isinstance(lab_obj, Lab):
        raise LoadError(f"{path} defines no LAB = Lab(...)")
    return lab_obj
