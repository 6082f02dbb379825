"""gradelab's grading engine.

The engine turns a lab's *cases* (``tests/<lab>/cases.py``) into scores. A case builds its
inputs from a seeded RNG, runs the implementation under test and returns named arrays; the
engine compares them with the reference's arrays and awards the case's points.

Modules:
    paths      where the project's parts live (labs/, solutions/, tests/, data/)
    case       Case, Check and Lab: how a lab declares what is graded
    compare    array comparison with messages a stuck student can act on
    gradcheck  central-difference numerical gradients (float64)
    loading    importing an implementation (a folder laid out like labs/) under a private name
    runner     running cases in-process (students) or in a sandboxed child (grading)
    sandbox    the child process: bubblewrap when available, a plain subprocess otherwise
    protocol   the frames between grader and child (JSON header + uncompressed npz)
    worker     the child's side: imports the submission, runs cases on request
    report     Gradescope-shaped results and score tables
    fixtures   public expected values, generated from the reference
    stubs      solutions/ -> labs/ stub generation and its drift/leak check
    mnist      IDX reader, checksums and the fixed stratified split
    pytest_support  the pytest plugin: --impl, one test per case, the score line
    cli        the ``gradelab`` command
"""

import os as _os

__version__ = "0.1.0"

# One BLAS thread unless the user says otherwise. The labs multiply small matrices (batches of
# 32), where multi-threaded OpenBLAS gains nothing and, with any other load on a 2-core machine,
# thrashes: two seeds of Lab 1's MNIST training took 64.5 s with default threading and 6.7 s
# with one thread (scripts/measure_accuracy.py --seeds 0 1, under load). The sandboxed child
# uses one thread too, so local and graded numerics match. Effective only if NumPy is not yet
# imported, which is why it sits in the package's first module.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_var, "1")
