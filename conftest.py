"""Loads gradelab's pytest plugin (grader/pytest_support.py: --impl, one test per case, the score line).

It is loaded here, not with ``-p`` on the command line, so that a pytest from outside the kit's
environment fails with a message that says what to do instead of an import traceback.
"""

import pytest

try:
    import numpy  # noqa: F401
    import pytest_timeout  # noqa: F401

    import grader  # noqa: F401  (the plugin itself is imported by pytest, below)
except ImportError as exc:
    raise pytest.UsageError(
        f"this pytest runs outside the kit's environment ({exc}). Activate it first:\n"
        "    source .venv/bin/activate        (then: pytest tests/lab1)\n"
        "or call its pytest directly:\n"
        "    .venv/bin/pytest tests/lab1\n"
        "(no .venv yet? `bash scripts/setup.sh` creates it)") from exc

pytest_plugins = ["grader.pytest_support"]
