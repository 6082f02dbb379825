"""Lab 5's graded cases as pytest tests: one test per case, same scores as `gradelab test lab5`.

Lab 5 needs PyTorch (pip install torch==2.13.0). The two training cases are marked slow:
`pytest tests/lab5 -m "not slow"` checks the pieces in seconds.
The cases themselves are in cases.py beside this file.
"""

import pytest

from grader.pytest_support import case_params, check_case


@pytest.mark.parametrize("case", case_params("lab5"))
def test_case(case, grading):
    check_case(grading, "lab5", case)
