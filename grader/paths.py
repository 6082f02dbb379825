"""Where the project's parts live.

gradelab is a course kit used from a checkout, so every path is relative to the project root
(the folder holding ``grader/``). ``GRADELAB_ROOT`` overrides it, e.g. for a student release
laid out elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project root: ``$GRADELAB_ROOT`` if set, else the parent of the ``grader`` package."""
    env = os.environ.get("GRADELAB_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def labs_dir() -> Path:
    """Student stubs, generated from ``solutions/``."""
    return project_root() / "labs"


def solutions_dir() -> Path:
    """Reference solutions (absent in a student release)."""
    return project_root() / "solutions"


def tests_dir() -> Path:
    """Each lab's cases and fixtures, and the engine's own tests."""
    return project_root() / "tests"


def data_dir() -> Path:
    """Bundled data sets."""
    return project_root() / "data"
