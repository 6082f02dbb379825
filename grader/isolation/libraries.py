"""Which libraries a submission may import: Labs 1-4 are NumPy labs.

The point of Labs 1-4 is to write the framework (forward, backward, optimizers) by hand, so a
submission may import NumPy, the Python standard library and its own lab packages, nothing
else; the handouts say so. Without this rule a submission that computes a loss with PyTorch
lost cases to time limits (importing torch takes 1.5-2.5 s, more than a small case's limit) and
never learnt why. With it, importing another library fails at once with a message that names
the rule, on every run, on a quiet or a busy machine. Lab 5 is a PyTorch lab: no rule.

This is a rule for honest students, not a security boundary: code that runs in the same
process could remove the finder. What the grader trusts is unchanged (the sandbox).
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

NUMPY_ONLY_LABS = frozenset({"lab1", "lab2", "lab3", "lab4"})
_ALLOWED = frozenset({"numpy", "grader", "tests"})  # NumPy; the engine and the cases (imported by the grader)
_INSTALLED = ("site-packages", "dist-packages")  # where installed libraries live (pip, Debian)


def refused_message(top: str, lab: str) -> str:
    return (f"{top} is not allowed in {lab}: Labs 1-4 are written with NumPy and the Python standard "
            f"library only (see the handout, 'Libraries'); grading refuses any other library. "
            f"Rewrite this part with NumPy")


def _installed(spec: ModuleSpec) -> bool:
    places = [spec.origin] if spec.origin else list(spec.submodule_search_locations or [])
    return any(part in _INSTALLED for place in places for part in Path(place).parts)


class NumpyOnly:
    """A meta-path finder that refuses every installed library except NumPy.

    Only top-level names are decided (a submodule's parent was already allowed). A name is
    refused when the ordinary path finder would load it from an installed library's folder
    (site-packages); the standard library, the submission's own files and anything else it
    loads from its own folder are left to the ordinary finders.
    """

    def __init__(self, lab: str) -> None:
        self.lab = lab

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if "." in name or name in _ALLOWED or name in sys.stdlib_module_names:
            return None
        spec = PathFinder.find_spec(name)
        if spec is not None and _installed(spec):
            raise ModuleNotFoundError(refused_message(name, self.lab), name=name)
        return None  # not ours to decide: the ordinary finders look it up


def install(lab: str) -> NumpyOnly | None:
    """Puts the finder first on ``sys.meta_path`` for a NumPy lab; returns it (None for other labs).
    Modules imported before this call (the grader's own) stay importable from ``sys.modules``."""
    if lab not in NUMPY_ONLY_LABS:
        return None
    finder = NumpyOnly(lab)
    sys.meta_path.insert(0, finder)
    return finder


def remove(finder: NumpyOnly | None) -> None:
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)


def _cached_import_guard(lab: str, original: Callable[..., ModuleType]) -> Callable[..., ModuleType]:
    """``__import__`` that also refuses a library the process already holds (an in-process run shares
    the process with the grader, a notebook or pytest, where torch may be imported already: the
    meta-path finder is never asked about a module in ``sys.modules``). Imports made by installed
    code itself (a library loading its own parts) are left alone."""

    def guarded(name: str, globals: dict | None = None, locals: dict | None = None,  # noqa: A002
                fromlist: Sequence[str] = (), level: int = 0) -> ModuleType:
        top = name.partition(".")[0]
        held = sys.modules.get(top) if level == 0 else None
        if held is not None and top not in _ALLOWED and top not in sys.stdlib_module_names:
            importer = (globals or {}).get("__file__") or ""
            origin = getattr(held, "__file__", None) or ""
            if not any(part in _INSTALLED for part in Path(importer).parts) and \
                    any(part in _INSTALLED for part in Path(origin).parts):
                raise ModuleNotFoundError(refused_message(top, lab), name=top)
        return original(name, globals, locals, fromlist, level)

    return guarded


@contextmanager
def numpy_only(lab: str) -> Iterator[None]:
    """The rule for the duration of a block (in-process runs share the process with the grader)."""
    finder = install(lab)
    original = builtins.__import__
    if finder is not None:
        builtins.__import__ = _cached_import_guard(lab, original)
    try:
        yield
    finally:
        builtins.__import__ = original
        remove(finder)
