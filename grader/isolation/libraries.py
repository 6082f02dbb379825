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

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

NUMPY_ONLY_LABS = frozenset({"lab1", "lab2", "lab3", "lab4"})
_ALWAYS = frozenset({"numpy", "grader", "tests"})  # NumPy; the engine and the cases (imported by the grader)


def refused_message(top: str, lab: str) -> str:
    return (f"{top} is not allowed in {lab}: Labs 1-4 are written with NumPy and the Python standard "
            f"library only (see the handout, 'Libraries'); grading refuses any other library. "
            f"Rewrite this part with NumPy")


class NumpyOnly:
    """A meta-path finder that refuses every top-level module except NumPy, the standard library
    and the given packages (the submission's own lab packages)."""

    def __init__(self, lab: str, own: Sequence[str] = ()) -> None:
        self.lab = lab
        self.allowed = _ALWAYS | frozenset(own) | frozenset(sys.stdlib_module_names)

    def find_spec(self, name: str, path: object = None, target: ModuleType | None = None) -> ModuleSpec | None:
        top = name.partition(".")[0]
        if top in self.allowed or top.startswith("_gradelab_"):  # loading.py's private package names
            return None  # not ours to decide: the normal finders look it up
        raise ModuleNotFoundError(refused_message(top, self.lab), name=name)


def install(lab: str, own: Sequence[str] = ()) -> NumpyOnly | None:
    """Puts the finder first on ``sys.meta_path`` for a NumPy lab; returns it (None for other labs).
    Modules imported before this call (the grader's own) stay importable from ``sys.modules``."""
    if lab not in NUMPY_ONLY_LABS:
        return None
    finder = NumpyOnly(lab, own)
    sys.meta_path.insert(0, finder)
    return finder


def remove(finder: NumpyOnly | None) -> None:
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)


@contextmanager
def numpy_only(lab: str, own: Sequence[str] = ()) -> Iterator[None]:
    """The rule for the duration of a block (in-process runs share the process with the grader)."""
    finder = install(lab, own)
    try:
        yield
    finally:
        remove(finder)
