"""lab4/plot.py (provided to students): the paths it draws are real descents, and it writes its PNGs.

The drawing needs matplotlib (the optional ``plot`` extra); the path computations do not.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from grader import paths
from grader.isolation.loading import load_package


@pytest.fixture
def plot(solutions):
    """The reference package's plot module (imported as a submodule of the loaded package)."""
    lab = load_package(solutions, "lab4")
    return __import__(f"{lab.__name__}.plot", fromlist=["plot"])


@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_every_path_descends(plot, problem) -> None:
    f, grad = getattr(plot, problem)()
    runs, start, steps = ((plot.QUADRATIC_RUNS, (-4.0, 3.0), 60) if problem == "quadratic"
                          else (plot.ROSENBROCK_RUNS, (-1.5, 2.0), 1500))
    for label, cls, kwargs in runs:
        pts = plot.path(cls, kwargs, grad, start, steps)
        assert len(pts) == steps + 1, f"{label} diverged"
        assert f(*pts[-1]) < 0.5 * f(*pts[0]), f"{label} did not descend on {problem}"


def test_rosenbrock_gradient_is_its_derivative(plot) -> None:
    f, grad = plot.rosenbrock()
    p, h = np.array([-0.7, 1.3]), 1e-6
    numeric = [(f(*(p + h * e)) - f(*(p - h * e))) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad(p), numeric, rtol=1e-6)


def test_runs_as_the_handout_says_and_writes_the_pictures(solutions, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    root = paths.tests_dir().parent
    done = subprocess.run([sys.executable, "-m", "solutions.lab4.plot", "--out", str(tmp_path), "--skip-mnist"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("quadratic.png", "rosenbrock.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
