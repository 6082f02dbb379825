"""Loads gradelab's pytest plugin (grader/pytest_support.py: --impl, one test per case, the score line).

It is loaded here, not with ``-p`` on the command line, so that a pytest from outside the kit's
environment fails with a message that says what to do instead of an import traceback.
"""

from pathlib import Path

import pytest

# The lab named in the message below: a release holds its own labs' tests only (tests/lab2 in a Lab 2 release).
_LABS = sorted(p.parent.name for p in (Path(__file__).parent / "tests").glob("lab*/cases.py"))
_LAB = _LABS[0] if len(_LABS) == 1 else "lab1"

try:
    # grader first: it pins BLAS to one thread, which works only before NumPy is imported
    # (with NumPy first, Lab 2's MNIST case took 124 s under pytest instead of 11 s on the loaded
    # 2-core machine).
    import grader  # noqa: F401, I001  (the plugin itself is imported by pytest, below)
    import numpy  # noqa: F401
    import pytest_timeout  # noqa: F401
except ImportError as exc:
    raise pytest.UsageError(
        f"this pytest runs outside the kit's environment ({exc}). Activate it first:\n"
        f"    source .venv/bin/activate        (then: pytest tests/{_LAB})\n"
        "or call its pytest directly:\n"
        f"    .venv/bin/pytest tests/{_LAB}\n"
        "(no .venv yet? `bash scripts/setup.sh` creates it)") from exc

pytest_plugins = ["grader.pytest_support"]
