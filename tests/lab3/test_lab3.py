"""Lab 3's graded cases as pytest tests: one test per case, same scores as `gradelab test lab3`.

Each failure message says which check failed, by how much, where, and usually why.
The cases themselves are in cases.py beside this file.
"""

import pytest

from grader.pytest_support import case_params, check_case


@pytest.mark.parametrize("case", case_params("lab3"))
def test_case(case, grading):
    check_case(grading, "lab3", case)
