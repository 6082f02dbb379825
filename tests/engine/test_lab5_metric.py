"""Who scores Lab 5's trained models: the grader's metric in grading, the student's own in a release.

The two training cases' ``Metric`` checks name the lab functions that compute them
(``Metric.scored_by``). The grading process scores with the reference package (one source of
truth, no copy in grader/); a local in-process run of a student release (no solutions/) scores
with the student's own functions and says so; a sandboxed run never does, and without a
reference it fails as a grader set-up error. A student metric that inflates its own score
therefore passes locally (saying whose metric it was) and changes nothing in isolated grading.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.judging.case import MetricPackage
from grader.judging.compare import evaluate
from grader.runner import InProcess, describe_pass, grade, metric_package

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]
LAB = load_cases("lab5", paths.tests_dir())
OWN = "scored with your own mean_average_precision; the grade uses the grader's metric"

# A submission whose detector is junk (one fixed box per canvas, no training) and whose
# mean_average_precision claims 0.99 whatever it is given: appended to a copy of the reference.
JUNK_DETECTOR_INFLATED_METRIC = '''

import torch

def fit_detector(images, boxes, labels, image_index, seed=0):
    return None


def detect(model, images):
    box = torch.tensor([[0.0, 0.0, 20.0, 20.0]], dtype=torch.float64)
    return [(box, torch.tensor([0.5], dtype=torch.float64), torch.tensor([k % 10])) for k in range(len(images))]


def mean_average_precision(*args, **kwargs):
    return 0.99, torch.full((10,), 0.99, dtype=torch.float64)
'''


def _detector_inputs(n: int = 40) -> dict[str, np.ndarray]:
    from grader.data.canvases import lab5_canvases

    test = lab5_canvases("B", "test", n, 0)
    return {"test_boxes": test.boxes, "test_labels": test.labels, "test_index": test.image_index}


def _perfect(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"det_boxes": inputs["test_boxes"], "det_scores": np.linspace(1, 0.5, len(inputs["test_boxes"])),
            "det_labels": inputs["test_labels"], "det_index": inputs["test_index"]}


def _submission(root: Path, extra: str) -> Path:
    """root/labs/lab5: the reference with ``extra`` appended to its __init__.py."""
    pkg = root / "labs" / "lab5"
    shutil.copytree(ROOT / "solutions" / "lab5", pkg, ignore=shutil.ignore_patterns("__pycache__", "*.toml",
                                                                                    "instructor", "README.md"))
    (pkg / "__init__.py").write_text((pkg / "__init__.py").read_text() + extra)
    return root / "labs"


def _student_release(tmp_path: Path) -> Path:
    """A project root laid out like a student release: no solutions/, Lab 5's tests, the data."""
    root = tmp_path / "release"
    shutil.copytree(ROOT / "tests" / "lab5", root / "tests" / "lab5", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "data").symlink_to(ROOT / "data")
    return root


def test_grading_scores_with_the_reference_not_the_implementation(solutions) -> None:
    case = LAB.get("detector_map")
    executor = SimpleNamespace(isolation="sandboxed", module=None)  # any executor that is not in-process
    package = metric_package(case, executor)
    assert package is not None and not package.own
    assert Path(package.module.__file__).parent == solutions / "lab5"  # the reference package
    assert metric_package(LAB.get("box_iou_random"), executor) is None  # no scored Metric: nothing to load


def test_without_a_package_the_check_fails_as_a_grader_setup_error() -> None:
    inputs = _detector_inputs()
    [msg] = evaluate(LAB.get("detector_map"), inputs, _perfect(inputs), {})
    assert "grader set-up error" in msg and "not a problem in your code" in msg


def test_a_release_scores_with_the_students_functions_and_says_so(tmp_path, monkeypatch) -> None:
    root = _student_release(tmp_path)
    monkeypatch.setenv("GRADELAB_ROOT", str(root))
    labs = _submission(root, "")  # the student's metric is right here; their outputs are made up
    executor = InProcess(labs, "lab5", use_alarm=False)
    case = LAB.get("detector_map")
    package = metric_package(case, executor)
    assert package is not None and package.own and package.module is executor.module
    inputs = _detector_inputs()
    assert evaluate(case, inputs, _perfect(inputs), {}, package) == []
    assert OWN in describe_pass(case, package)
    empty = {"det_boxes": np.zeros((0, 4)), "det_scores": np.zeros(0), "det_labels": np.zeros(0, np.int64),
             "det_index": np.zeros(0, np.int64)}
    [msg] = evaluate(case, inputs, empty, {}, package)
    assert "0.0000 is below the threshold" in msg and OWN in msg
    # a sandboxed run in a release never falls back to the student's functions
    assert metric_package(case, SimpleNamespace(isolation="sandboxed")) is None


def test_own_metric_raising_says_whose_metric_it_was() -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    package = MetricPackage(SimpleNamespace(mean_average_precision=broken), own=True)  # type: ignore[arg-type]
    inputs = _detector_inputs()
    [msg] = evaluate(LAB.get("detector_map"), inputs, _perfect(inputs), {}, package)
    assert "could not be scored (with your own mean_average_precision" in msg and "boom" in msg


@pytest.mark.slow
def test_an_inflating_student_metric_passes_locally_but_not_in_isolated_grading(sandbox, solutions, tmp_path,
                                                                               monkeypatch) -> None:
    release = _student_release(tmp_path)
    labs = _submission(release, JUNK_DETECTOR_INFLATED_METRIC)
    with monkeypatch.context() as m:
        m.setenv("GRADELAB_ROOT", str(release))
        local_result = grade(LAB, labs, isolated=False, only=["detector_map"])
    local = local_result.cases[0]
    assert any("detector_map scored with your own metric functions" in n for n in local_result.notes)
    assert local.passed and OWN in local.output, local.output
    assert local.own_metric
    graded_result = grade(LAB, labs, isolated=True, only=["detector_map"])  # solutions/ present: the grader's
    graded = graded_result.cases[0]
    assert not graded.own_metric and not any("your own" in n for n in graded_result.notes)
    assert not graded.passed and graded.score == 0, graded.output
    assert "is below the threshold 0.4200" in graded.output and "your own" not in graded.output
