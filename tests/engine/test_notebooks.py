"""Every lab's released notebook runs top to bottom (nbclient, a real kernel) at both ends of the lab:
on the untouched stubs, where each case cell shows its failure and the training sections say what to
implement first, and on the reference, where every case passes and the model trains and draws."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader.course import release
from grader.isolation.loading import load_cases

ROOT = Path(__file__).resolve().parents[2]
LABS = ["lab1", "lab2", "lab3", "lab4", "lab5"]

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("solutions")]


def _run(lab: str, out: Path) -> tuple[list, str]:
    """Executes the release's notebook of ``lab``; returns (error outputs, all text printed)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(out / "notebooks" / f"{lab}.ipynb", as_version=4)
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend puts the pictures in the outputs
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(out / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    images = sum(1 for o in outputs if "image/png" in o.get("data", {}))
    return errors, text + f"\n[{images} pictures]"


def _release(lab: str, tmp_path: Path) -> Path:
    out = tmp_path / "rel"
    release.build([lab], out, root=ROOT, git=False, log=lambda *_: None)
    return out


@pytest.mark.parametrize("lab", LABS)
def test_notebook_runs_on_the_untouched_stubs(lab: str, tmp_path: Path) -> None:
    if lab == "lab5":
        pytest.importorskip("torch")
    out = _release(lab, tmp_path)
    errors, text = _run(lab, out)
    assert not errors, [e.get("ename", "") + ": " + e.get("evalue", "") for e in errors]
    cases = load_cases(lab, ROOT / "tests").cases
    failed = [c.name for c in cases if f"{c.name}: FAILED" in text]
    assert len(failed) >= len(cases) - 1, text[-3000:]  # every case fails on the stubs, with its message
    assert "not implemented yet" in text
    assert f"{lab}: 0 / 100 points on the public cases" in text
    assert "Skipped training" in text and "Implement them first" in text, text[-2000:]


@pytest.mark.parametrize("lab", LABS)
def test_notebook_runs_on_the_reference(lab: str, tmp_path: Path) -> None:
    if lab == "lab5":
        pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    out = _release(lab, tmp_path)
    for f in (ROOT / "solutions" / lab).glob("*.py"):
        shutil.copyfile(f, out / "labs" / lab / f.name)
    errors, text = _run(lab, out)
    assert not errors, [e.get("ename", "") + ": " + e.get("evalue", "") for e in errors]
    assert "FAILED" not in text and "Skipped" not in text, text[-3000:]
    assert f"{lab}: 100 / 100 points on the public cases; all public cases pass" in text
    if lab == "lab5":
        assert "[3 pictures]" in text or "[2 pictures]" in text  # the canvases and the detections
    else:
        assert "held-out accuracy: 0.9" in text
        # digits, mistakes, first-layer weights; Lab 2 adds its BatchNorm experiment's three pictures,
        # Lab 3 shows its filters and one digit's feature maps instead of the weights, Lab 4 its two paths pictures
        assert int(text.rsplit("[", 1)[1].split()[0]) >= {"lab2": 6, "lab3": 4, "lab4": 5}.get(lab, 3), text[-2000:]
