"""A notebook per lab, for students and for nbgrader, built from code (never edited by hand).

The notebook loads the data, runs one autograded test cell per public case of the lab (worth
the case's points), then trains the lab's model and draws pictures::

    from grader.course.notebooks import check
    check("lab1", "linear_forward", IMPL)   # prints "passed" or the grader's whole message

"Run All" completes at every stage of the lab: a case cell prints its failure instead of
raising, and each later section first asks ``ready(...)`` whether the cases it builds on pass in
this kernel, and otherwise says which to implement first and skips its work. The kernel uses one
BLAS thread, as the grader does (on a shared machine, two threads made Lab 2's training 20x
slower), and training shows a progress bar.

The test cells carry nbgrader's cell metadata (schema version 3: ``grade: true``, a unique
``grade_id``, ``points``, ``locked: true``), so a course can put the notebook in
``source/<lab>/`` and run ``nbgrader generate_assignment``. The notebook holds no solution code
(the work is in ``labs/<lab>/*.py``), so nothing needs stripping; ``gradelab release --check``
scans its cells like every other file. What a notebook's own kernel computes is a self-check:
the grade comes from ``gradelab nbgrader import`` (sandboxed), see grader/course/nbgrader_bridge.py.

The JSON is written directly (nbformat 4.5, the same structure ``nbformat.v4`` builds), so the
default install does not need Jupyter; the tests validate it with nbformat.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from grader import paths
from grader.isolation.loading import load_cases

__all__ = ["build_notebook", "check", "grade_id", "write_notebook"]

SCHEMA_VERSION = 3


def grade_id(lab: str, case: str) -> str:
    """The nbgrader grade cell id of a case: unique in the notebook, stable across releases."""
    return f"{lab}_{case}"


def _source(text: str) -> list[str]:
    return textwrap.dedent(text).strip("\n").splitlines(keepends=True)


def _cell(kind: str, text: str, cell_id: str, nbgrader: dict | None = None) -> dict:
    cell: dict = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": _source(text)}
    if nbgrader is not None:
        # every locked or graded cell needs a unique grade_id (nbgrader's schema 3)
        cell["metadata"]["nbgrader"] = {"schema_version": SCHEMA_VERSION, "grade_id": cell_id, **nbgrader}
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    return cell


_LOCKED = {"grade": False, "locked": True, "solution": False, "task": False}

_SETUP = '''
import os

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")  # one BLAS thread, as the grader: before NumPy is imported
import importlib
import sys
from pathlib import Path

import numpy as np

here = Path.cwd()
if (here / "{lab}" / "__init__.py").is_file():  # nbgrader: the package beside the notebook
    IMPL = here
else:  # the student repository: notebooks/ beside labs/ and the kit's own grader/
    ROOT = next(p for p in [here, *here.parents] if (p / "labs" / "{lab}").is_dir())
    IMPL = ROOT / "labs"
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(IMPL))
{lab} = importlib.import_module("{lab}")
try:
    import matplotlib.pyplot as plt
except ImportError:  # the pictures need the nbgrader extra: pip install -e ".[nbgrader]"
    plt = None
print("{lab} imported from", Path({lab}.__file__).parent)
from grader.course.notebooks import check, ready, summary
'''

_DATA = '''
from grader.data.mnist import load_mnist

data = load_mnist()
print("train:", data.train_images.shape, "test:", data.test_images.shape)
if plt is not None:
    fig, axes = plt.subplots(2, 8, figsize=(8, 2.4))
    for ax, image, label in zip(axes.flat, data.train_images, data.train_labels):
        ax.imshow(image, cmap="gray")
        ax.set_title(int(label))
        ax.axis("off")
    plt.show()
'''

# Labs whose package trains on MNIST (``fit_mnist`` and ``predict``, labs 1-4): train it, then
# show what it gets wrong and what its first layer looks at (conv filters, or 28x28 weights).
_TRAIN = '''
model = None
if ready("{lab}", "training the model"):
    model = {lab}.fit_mnist(data.train_images, data.train_labels, seed=0, progress=True)
    predicted = {lab}.predict(model, data.test_images)
    accuracy = float(np.mean(predicted == data.test_labels))
    print(f"held-out accuracy: {{accuracy:.4f}}")
'''

_PICTURES = '''
if plt is not None and model is not None:
    wrong = np.flatnonzero(predicted != data.test_labels)[:16]
    cols = max(1, min(8, len(wrong)))
    fig, axes = plt.subplots(-(-max(len(wrong), 1) // cols), cols, figsize=(cols, 1.3 * -(-max(len(wrong), 1) // cols)),
                             squeeze=False)
    for ax in axes.flat[len(wrong):]:
        ax.remove()  # no empty panels
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(data.test_images[i], cmap="gray")
        ax.set_title(f"{predicted[i]} (is {data.test_labels[i]})", fontsize=8)
        ax.axis("off")
    fig.suptitle("misclassified digits: predicted (true)")
    plt.show()
'''

# The first layer's weights of an MLP (labs 1, 2, 4): each hidden unit's 784 weights as a 28x28 image.
_WEIGHTS = '''
if plt is not None and model is not None:
    first = next(p.data for p in model.parameters() if 784 in p.data.shape)
    units = (first if first.shape[0] != 784 else first.T).reshape(-1, 28, 28)[:16]
    cols = min(8, len(units))
    fig, axes = plt.subplots(-(-len(units) // cols), cols, figsize=(cols, 1.1 * -(-len(units) // cols) + 0.3),
                             squeeze=False)
    for ax in axes.flat[len(units):]:
        ax.remove()  # no empty panels
    for ax, w in zip(axes.flat, units):
        limit = abs(w).max()
        ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.axis("off")
    fig.suptitle(f"first-layer weights of {len(units)} hidden units (red > 0, blue < 0)")
    plt.show()
'''

# Lab 3: the first convolution's filters and one digit's feature maps through the CNN (lab3/pictures.py).
_CNN_PICTURES = '''
if plt is not None and model is not None:
    pictures = importlib.import_module("{lab}.pictures")
    pictures.draw_filters(plt, model)
    plt.show()
    pictures.draw_feature_maps(plt, model, data.test_images[0], int(data.test_labels[0]))
    plt.show()
'''

# Lab 4: each optimizer's path on two 2-D problems, one panel each (lab4/plot.py).
_PATHS = '''
if plt is not None and ready("{lab}", "the optimizers' paths"):
    plot = importlib.import_module("{lab}.plot")
    for name in plot.PROBLEMS:
        plot.problem_figure(plt, name)
        plt.show()
'''

# Lab 2: the handout's experiment, shortened (lab2/pictures.py): with and without BatchNorm.
_BN_MD = '''
## What BatchNorm does

The handout's experiment, shortened to a few seconds: the same 784-128-128-10 MLP with plain
SGD, without BatchNorm and with a `BatchNorm1d` after each hidden `Linear`, 250 mini-batches at
lr 0.1 and at lr 2.0, with your layers. The pictures show what each hidden layer's ReLU receives
during training (its distribution over the batch), the training loss, and the first BatchNorm's
running statistics following the batch statistics (eval mode normalises with them).
'''

_BN_PICTURES = '''
if plt is None:
    print("The BatchNorm pictures need matplotlib: pip install -e '.[nbgrader]'")
elif ready("{lab}", "the BatchNorm experiment"):
    pictures = importlib.import_module("{lab}.pictures")
    runs = pictures.experiment(data.train_images, data.train_labels, lrs=(0.1, 2.0), steps=250, seed=0)
    for (lr, batchnorm), run in runs.items():
        print(f"lr {{lr:g}}, {{'with' if batchnorm else 'without'}} BatchNorm: mean training loss of the "
              f"last 50 steps {{np.mean(run.losses[-50:]):.3f}}")
    pictures.draw_activations(plt, runs, lr=2.0)
    plt.show()
    pictures.draw_losses(plt, runs)
    plt.show()
    pictures.draw_running_stats(plt, runs[(0.1, True)], data.train_images[:4000])
    plt.show()
'''


# Labs whose package detects digits on canvases (``fit_detector`` and ``detect``, lab 5): train
# the detector on generated canvases and draw its boxes (red) over the true ones (green).
_DETECT = '''
import torch
from grader.data.canvases import lab5_canvases

found = None
if ready("{lab}", "training the detector"):
    train, test = lab5_canvases("B", "train", 4000, 0), lab5_canvases("B", "test", 8, 0)
    t = torch.from_numpy
    detector = {lab}.fit_detector(t(train.images), t(train.boxes), t(train.labels), t(train.image_index), seed=0,
                                  progress=True)
    found = {lab}.detect(detector, t(test.images))
'''
_DETECT_DRAW = '''
if plt is not None and found is not None:
    # Drawn by lab5/show.py (as `python -m lab5.show` does): labels on dark boxes, placed apart.
    show = importlib.import_module("{lab}.show")
    truth = [[(box, int(digit)) for box, digit in zip(test.boxes[test.image_index == i],
                                                      test.labels[test.image_index == i])]
             for i in range(len(test.images))]
    predicted = [[(box.double().numpy(), int(digit), float(score))
                  for box, score, digit in zip(*detections) if score >= 0.3] for detections in found]
    fig, ax = plt.subplots(figsize=(12, 6.4), layout="constrained")
    ax.imshow(show.grid_image(test.images, truth, predicted), interpolation="nearest")
    ax.axis("off")
    ax.set_title("true boxes (green, digit above) and detections with score >= 0.3 (red, digit and score below)")
    plt.show()
'''


def _exports(root: Path, lab: str, *names: str) -> bool:
    init = root / "solutions" / lab / "__init__.py"
    text = init.read_text() if init.is_file() else ""
    return all(f'"{n}"' in text for n in names)


def _provides(root: Path, lab: str, name: str) -> bool:
    """The lab's package ships the provided module ``name`` (e.g. its pictures)."""
    return (root / "solutions" / lab / name).is_file()


def _trains_on_mnist(root: Path, lab: str) -> bool:
    init = root / "solutions" / lab / "__init__.py"
    text = init.read_text() if init.is_file() else ""
    return '"fit_mnist"' in text and '"predict"' in text


def build_notebook(lab: str, root: Path | None = None) -> dict:
    """The notebook of ``lab`` as nbformat-4 JSON data."""
    root = root or paths.project_root()
    cases = load_cases(lab, root / "tests")
    cells = [
        _cell("markdown", f"""
            # {cases.title}

            Your code lives in `labs/{lab}/` (the handout is `labs/{lab}/README.md`); this notebook
            calls it. Restart the kernel after editing the package, then Run All: it completes at
            every stage of the lab. The public cases come first, one cell per case with its points
            (the course grades your package with hidden variants too); training and pictures follow
            once the cases they need pass.
            """, "intro", _LOCKED),
        _cell("code", _SETUP.format(lab=lab), "setup", _LOCKED),
        _cell("markdown", "## The data", "data-md", _LOCKED),
        _cell("code", _DATA, "data", _LOCKED),
    ]
    cells.append(_cell("markdown", f"""
        ## The public cases ({cases.max_score:g} points)

        One cell per case: it prints `passed`, or what is wrong and where. Work through them in
        order; the sections after them need them.
        """, "cases-md", _LOCKED))
    for case in cases.cases:
        cells.append(_cell("code", f"""
            # {case.description} ({case.points:g} points)
            check("{lab}", "{case.name}", IMPL)
            """, f"case-{case.name}".replace("_", "-"),
            {"grade": True, "grade_id": grade_id(lab, case.name), "locked": True, "points": case.points,
             "solution": False, "task": False}))
    cells.append(_cell("code", f'summary("{lab}")', "cases-summary", _LOCKED))
    if _trains_on_mnist(root, lab):
        cells += [_cell("markdown", "## Training on MNIST\n\nRuns once the cases it needs pass (the cell says "
                                    "which are missing).", "train-md", _LOCKED),
                  _cell("code", _TRAIN.format(lab=lab), "train", _LOCKED),
                  _cell("code", _PICTURES, "pictures", _LOCKED)]
        if _provides(root, lab, "pictures.py") and _exports(root, lab, "Conv2d"):
            cells.append(_cell("code", _CNN_PICTURES.format(lab=lab), "cnn-pictures", _LOCKED))
        else:
            cells.append(_cell("code", _WEIGHTS, "weights", _LOCKED))
    if _provides(root, lab, "plot.py"):
        cells += [_cell("markdown", "## Each optimizer's path\n\nYour optimizers on an ill-conditioned "
                                    "quadratic and on the Rosenbrock valley, one panel each (`python -m "
                                    f"labs.{lab}.plot` writes them as PNGs).", "paths-md", _LOCKED),
                  _cell("code", _PATHS.format(lab=lab), "paths", _LOCKED)]
    if _provides(root, lab, "pictures.py") and _exports(root, lab, "BatchNorm1d"):
        cells += [_cell("markdown", _BN_MD, "batchnorm-md", _LOCKED),
                  _cell("code", _BN_PICTURES.format(lab=lab), "batchnorm", _LOCKED)]
    if _exports(root, lab, "fit_detector", "detect"):
        cells += [_cell("markdown", "## Detecting digits\n\nRuns once the cases it needs pass (the cell says "
                                    "which are missing).", "detect-md", _LOCKED),
                  _cell("code", (_DETECT + _DETECT_DRAW).format(lab=lab), "detect", _LOCKED)]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"},
                                         "language_info": {"name": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def write_notebook(lab: str, path: Path, root: Path | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_notebook(lab, root), indent=1) + "\n")
    return path


_RESULTS: dict[str, dict[str, bool]] = {}  # lab -> case -> passed, in this kernel


def check(lab: str, case: str, impl: Path | None = None) -> bool:
    """Runs one public case against ``labs/`` in this kernel and prints the outcome; never raises,
    so that Run All goes on (the grade comes from sandboxed grading, not from this kernel)."""
    from grader.runner import grade

    result = grade(load_cases(lab, paths.tests_dir()), impl or paths.labs_dir(), isolated=False, only=[case])
    outcome = result.cases[0]
    _RESULTS.setdefault(lab, {})[case] = outcome.passed
    if outcome.passed:
        print(f"{case}: {outcome.score:g}/{outcome.max_score:g} ({outcome.output})")
    else:
        print(f"{case}: FAILED, 0/{outcome.max_score:g}\n\n{outcome.output}")
    return outcome.passed


def _needed(lab: str) -> list[str]:
    """The cases a training section builds on: every public case that does not train a model."""
    return [c.name for c in load_cases(lab, paths.tests_dir()).cases if not c.slow]


def ready(lab: str, what: str) -> bool:
    """True when every case ``what`` builds on has passed in this kernel; else prints which to
    implement first (or which were not run yet) and returns False."""
    seen = _RESULTS.get(lab, {})
    failing = [c for c in _needed(lab) if seen.get(c) is False]
    not_run = [c for c in _needed(lab) if c not in seen]
    if not failing and not not_run:
        return True
    if failing:
        print(f"Skipped {what}: it needs the cases above, and these fail: {', '.join(failing)}. "
              f"Implement them first (labs/{lab}/), restart the kernel and Run All.")
    else:
        print(f"Skipped {what}: run the case cells above first ({', '.join(not_run)} not run in this kernel).")
    return False


def summary(lab: str) -> None:
    """The public score so far in this kernel, and the first case to work on."""
    cases = load_cases(lab, paths.tests_dir()).cases
    seen = _RESULTS.get(lab, {})
    points = sum(c.points for c in cases if seen.get(c.name))
    total = sum(c.points for c in cases)
    todo = [c.name for c in cases if not seen.get(c.name)]
    print(f"{lab}: {points:g} / {total:g} points on the public cases"
          + (f"; next: {todo[0]}" if todo else "; all public cases pass"))
