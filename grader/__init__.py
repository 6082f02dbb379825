"""gradelab's grading engine.

The engine turns a lab's *cases* (``tests/<lab>/cases.py``) into scores. A case builds its
inputs from a seeded RNG, runs the implementation under test and returns named arrays; the
engine compares them with the reference's arrays and awards the case's points.

Layers, lowest first; a module imports only its own layer and lower ones
(tests/engine/test_layout.py checks it):

    paths, text       where the project's parts live; text from submissions made safe to print
    data/             the MNIST IDX reader and split; Lab 5's detection canvases
    judging/          how a case is declared and judged: case, compare, gradcheck, casekit,
                      guard (the call guard), expected (fixtures or the live reference)
    isolation/        running student code where it cannot reach the grade: sandbox, worker,
                      protocol, loading
    runner            runs a lab's cases in-process (students) or in a sandboxed child (grading)
    authoring/        instructor tools: stubs (solutions/ -> labs/), fixtures (public expected values)
    course/           course operations: submission (one submission's grade, on every path),
                      grading (a class into a gradebook), batch (--jobs, Dask), gradebook,
                      report, release, ci, gradescope, nbgrader_bridge, notebooks
    cli, course_cli, pytest_support   entry points: the ``gradelab`` command, the pytest plugin
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
