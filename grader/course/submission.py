"""One submission's grade: the single place where every path (``gradelab grade`` and its workers,
Dask tasks, the nbgrader import, Gradescope's ``run_autograder``) turns a submission folder into a
``LabResult``.

A submission is a folder laid out like ``labs/`` (``<sub>/<lab>/__init__.py``). It is graded in the
sandboxed child with the public and hidden seeds and the reference computed live
(``grader.runner.grade(..., isolated=True)``). Nothing a submission does raises out of here: a
missing package or a failure of the grading itself is a 0 with the reason; only ``GradingError``
(the grader's own set-up: no sandbox, no reference) propagates, since it is the same for everyone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grader import paths
from grader.data.mnist import COURSE_DATA_ENV as MNIST_ENV  # read by load_mnist(): the course's held-out set
from grader.isolation.loading import load_cases
from grader.runner import GradingError, LabResult, _printable_result, grade, zero_result

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Options:
    """What every task needs to grade a submission the same way (picklable, for workers)."""

    lab: str
    only: tuple[str, ...] | None = None
    timeout_scale: float = 1.0
    allow_unsandboxed: bool = False
    data: str | None = None

    def key(self) -> dict[str, object]:
        """The options that change a grade, for the gradebook's grading key."""
        return {"only": self.only, "timeout_scale": self.timeout_scale,
                "allow_unsandboxed": self.allow_unsandboxed, "data": self.data}


def use_data(data: str | None) -> None:
    """Points the accuracy cases (built in this process) at the course's own MNIST, or the bundled one."""
    if data:
        os.environ[MNIST_ENV] = str(Path(data).resolve())
    else:
        os.environ.pop(MNIST_ENV, None)


def grade_submission(path: Path | str, options: Options) -> LabResult:
    """Grades one submission folder in the sandbox; a 0 with the reason when it cannot be graded."""
    os.environ.update(ONE_THREAD)
    use_data(options.data)
    lab = load_cases(options.lab, paths.tests_dir())
    path = Path(path)
    if not (path / options.lab / "__init__.py").is_file():
        return _printable_result(zero_result(
            lab, path, f"no {options.lab}/ package in the submission: a submission is a folder laid out like "
                       f"labs/, holding {options.lab}/__init__.py and the lab's modules"))
    try:
        return grade(lab, path, isolated=True, only=options.only, timeout_scale=options.timeout_scale,
                     allow_unsandboxed=options.allow_unsandboxed)
    except GradingError:
        raise  # the grader's own set-up (no reference, no sandbox): the same for every submission
    except Exception as exc:  # noqa: BLE001 - nothing one submission does may stop the others
        return _printable_result(zero_result(lab, path, f"grading this submission failed "
                                                        f"({type(exc).__name__}: {exc}); "
                                                        "the instructor should look at it"))
