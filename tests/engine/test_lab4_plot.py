"""scripts/lab4_plot.py: the optimizer paths it draws are real descents, and it writes its PNGs.

The drawing needs matplotlib (the optional ``plot`` extra); the path computations do not.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from grader import paths
from grader.loading import load_package


def _script():
    path = paths.tests_dir().parent / "scripts" / "lab4_plot.py"
    spec = importlib.util.spec_from_file_location("lab4_plot", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("problem", ["quadratic", "rosenbrock"])
def test_every_path_descends(solutions, problem) -> None:
    script = _script()
    lab = load_package(solutions, "lab4")
    f, grad = getattr(script, problem)()
    runs, start, steps = ((script.QUADRATIC_RUNS, (-4.0, 3.0), 60) if problem == "quadratic"
                          else (script.ROSENBROCK_RUNS, (-1.5, 2.0), 1500))
    for label, cls, kwargs in runs:
        pts = script.path(lab, cls, kwargs, grad, start, steps)
        assert len(pts) == steps + 1, f"{label} diverged"
        assert f(*pts[-1]) < 0.5 * f(*pts[0]), f"{label} did not descend on {problem}"


def test_writes_the_pictures(solutions, tmp_path, monkeypatch) -> None:
    pytest.importorskip("matplotlib")
    script = _script()
    monkeypatch.setattr(sys, "argv", ["lab4_plot.py", "--impl", str(solutions), "--out", str(tmp_path),
                                      "--skip-mnist"])
    assert script.main() == 0
    for name in ("quadratic.png", "rosenbrock.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_rosenbrock_gradient_is_its_derivative() -> None:
    f, grad = _script().rosenbrock()
    p, h = np.array([-0.7, 1.3]), 1e-6
    numeric = [(f(*(p + h * e)) - f(*(p - h * e))) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(grad(p), numeric, rtol=1e-6)
