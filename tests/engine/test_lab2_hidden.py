"""Lab 2's hidden variants change hyperparameters and shapes, not only random values.

A submission that hard-codes what the public inputs happen to use (momentum 0.1, eps 1e-5, a drop
probability of 0.3, D = 4 features) passes every public case in-process, and loses those cases
in isolated grading, where hidden variant i builds its inputs with the case's hidden_inputs[i].
"""

from __future__ import annotations

import pytest

from grader import paths
from grader.isolation.loading import load_cases
from grader.runner import grade

pytestmark = pytest.mark.sandbox

LAB = load_cases("lab2", paths.tests_dir())
HANDOUT = (paths.labs_dir() / "lab2" / "README.md").read_text(encoding="utf-8")
BN, DR = "batchnorm.py", "dropout.py"

HARD_CODED = {
    # momentum ignored: always the public 0.1 (eval cases are judged given the student's own running
    # statistics, so they pass: the bug costs points in the running-statistics cases only)
    "momentum-hard-coded": ({BN: [("m = self.momentum", "m = 0.1")]}, ["bn1d_running_stats", "bn2d_running_stats"]),
    # eps ignored in the training forward: always the public 1e-5
    "eps-hard-coded": ({BN: [("std = np.sqrt(var + self.eps)", "std = np.sqrt(var + 1e-5)")]},
                       ["bn1d_train_forward", "bn2d_train_forward", "bn2d_backward"]),
    # the public p of dropout_train_forward (0.3) instead of self.p
    "dropout-p-hard-coded": ({DR: [("(self.rng.random(x.shape) >= self.p) / (1.0 - self.p)",
                                    "(self.rng.random(x.shape) >= 0.3) / (1.0 - 0.3)")]},
                             ["dropout_train_forward"]),
}


@pytest.mark.parametrize("bug_id", list(HARD_CODED))
def test_hard_coded_public_hyperparameters_fail_only_on_hidden_variants(sandbox, patched_reference, bug_id) -> None:
    patches, cases = HARD_CODED[bug_id]
    root = patched_reference(bug_id, patches, lab="lab2")
    public = grade(LAB, root, isolated=False, only=cases)
    assert all(c.passed for c in public.cases), {c.name: c.output for c in public.cases}
    hidden = grade(LAB, root, isolated=True, only=cases)
    for case in hidden.cases:
        assert not case.passed, f"{case.name} passed its hidden variants with {bug_id}"
        assert "hidden variant" in case.output, case.output
        assert "(inputs: " in case.output, case.output  # says what kind of input the variant used
        if bug_id == "momentum-hard-coded" and case.name == "bn1d_running_stats":  # the handout quotes it
            quoted = " ".join(HANDOUT.split("e.g. `", 1)[1].split("`", 1)[0].split())
            assert case.output.splitlines()[0] == f"{quoted}:", (case.output, quoted)
