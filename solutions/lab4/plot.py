"""Lab 4 pictures: each optimizer's path on two 2-D functions, and MNIST training-loss curves.

Provided (not a task). It draws with YOUR optimizers from this package and writes three PNGs:

    quadratic.png   paths on an ill-conditioned, rotated quadratic (condition number 50), one panel each
    rosenbrock.png  paths on the Rosenbrock function (a curved, flat-bottomed valley), one panel each
    mnist_loss.png  the training loss of Lab 1's MLP on MNIST per optimizer (no schedule)

Run it from the root of the kit (the folder that holds ``labs/`` and ``grader/``)::

    python -m labs.lab4.plot                          # PNGs in out/lab4/
    python -m labs.lab4.plot --out plots/ --skip-mnist

matplotlib is an optional extra (``pip install -e '.[plot]'``); grading never imports this file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

from grader.data import mnist

from . import optim
from .lab1 import Parameter
from .train import HPARAMS, OPTIMIZERS, train_mnist

Grad = Callable[[np.ndarray], np.ndarray]

# On each 2-D problem: (label, class name, keyword arguments), lrs chosen so each one behaves typically.
QUADRATIC_RUNS = [
    ("SGD lr 0.035", "SGD", {"lr": 0.035}),
    ("SGD momentum 0.9", "SGD", {"lr": 0.01, "momentum": 0.9}),
    ("SGD Nesterov 0.9", "SGD", {"lr": 0.01, "momentum": 0.9, "nesterov": True}),
    ("Adagrad lr 0.5", "Adagrad", {"lr": 0.5}),
    ("RMSprop lr 0.05", "RMSprop", {"lr": 0.05}),
    ("Adam lr 0.2", "Adam", {"lr": 0.2}),
]
ROSENBROCK_RUNS = [
    ("SGD lr 1e-3", "SGD", {"lr": 1e-3}),
    ("SGD momentum 0.9", "SGD", {"lr": 2e-4, "momentum": 0.9}),
    ("Adagrad lr 0.3", "Adagrad", {"lr": 0.3}),
    ("RMSprop lr 0.01", "RMSprop", {"lr": 0.01}),
    ("Adam lr 0.05", "Adam", {"lr": 0.05}),
    ("AdamW lr 0.05", "AdamW", {"lr": 0.05, "weight_decay": 0.1}),
]


def quadratic() -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], Grad]:
    """f(x) = 0.5 x^T A x with A's eigenvalues 1 and 50, rotated by 30 degrees."""
    c, s = np.cos(np.pi / 6), np.sin(np.pi / 6)
    rot = np.array([[c, -s], [s, c]])
    a = rot @ np.diag([1.0, 50.0]) @ rot.T

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 0.5 * (a[0, 0] * x * x + 2 * a[0, 1] * x * y + a[1, 1] * y * y)

    return f, lambda p: a @ p


def rosenbrock() -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], Grad]:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1)."""

    def f(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (1 - x) ** 2 + 100 * (y - x * x) ** 2

    def grad(p: np.ndarray) -> np.ndarray:
        x, y = p
        return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])

    return f, grad


def path(cls: str, kwargs: dict, grad: Grad, start: tuple[float, float], steps: int) -> np.ndarray:
    """The points the optimizer ``cls`` (of this package) visits from ``start``: (steps + 1, 2)."""
    p = Parameter(np.array(start, dtype=np.float64))
    opt = getattr(optim, cls)([p], **kwargs)
    points = [p.data.copy()]
    for _ in range(steps):
        p.grad = grad(p.data)
        opt.step()
        points.append(p.data.copy())
        if not np.all(np.isfinite(p.data)) or np.abs(p.data).max() > 1e3:
            break  # diverged: draw what there is
    return np.array(points)


def paths_figure(plt: ModuleType, problem, runs, start, steps, box, minimum, title: str):
    """Small multiples: one panel per run, each on the same contour map, so that no path hides another.

    Each panel draws its path (dots every step, so the step size shows), the start (circle), where it
    ended (cross) and the minimum (star); its title gives the final value of f.
    """
    f, grad = problem
    xs = np.linspace(box[0], box[1], 300)
    ys = np.linspace(box[2], box[3], 300)
    xx, yy = np.meshgrid(xs, ys)
    zz = f(xx, yy)
    levels = np.geomspace(max(zz.min(), 1e-3), zz.max(), 25)
    rows, cols = -(-len(runs) // 3), min(len(runs), 3)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows + 0.6), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    for ax in axes.flat[len(runs):]:
        ax.remove()  # no empty panels
    for k, (ax, (label, cls, kwargs)) in enumerate(zip(axes.flat, runs, strict=False)):
        pts = path(cls, kwargs, grad, start, steps)
        final = f(*pts[-1])
        ax.contour(xx, yy, zz, levels=levels, colors="0.8", linewidths=0.6)
        color = f"C{k}"
        ax.plot(pts[:, 0], pts[:, 1], ".-", color=color, markersize=2.5, linewidth=1)
        ax.plot(*pts[0], "o", color=color, markersize=6, markerfacecolor="white")
        ax.plot(*pts[-1], "X", color=color, markersize=8, markeredgecolor="k")
        ax.plot(*minimum, "k*", markersize=11)
        ended = "diverged, stopped" if len(pts) < steps + 1 else f"f = {final:.2g}"
        ax.set_title(f"{label}\n{ended} after {len(pts) - 1} steps", fontsize=10)
        ax.set(xlim=box[:2], ylim=box[2:])
    fig.suptitle(f"{title}: {steps} steps from {start} (circle) to the cross; minimum: star", fontsize=11)
    return fig


def draw_paths(plt: ModuleType, problem, runs, start, steps, box, minimum, title: str, out: Path) -> None:
    """Writes ``paths_figure`` to ``out`` (PNG)."""
    fig = paths_figure(plt, problem, runs, start, steps, box, minimum, title)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


#: The 2-D problems drawn: name -> (problem, runs, start, steps, (xmin, xmax, ymin, ymax), minimum, title).
PROBLEMS = {
    "quadratic": (quadratic, QUADRATIC_RUNS, (-4.0, 3.0), 60, (-5, 5, -4, 4), (0, 0),
                  "ill-conditioned quadratic (eigenvalues 1 and 50)"),
    "rosenbrock": (rosenbrock, ROSENBROCK_RUNS, (-1.5, 2.0), 1500, (-2, 2, -1, 3), (1, 1), "Rosenbrock"),
}


def problem_figure(plt: ModuleType, name: str):
    """The small multiples of one of PROBLEMS (the notebook shows them, ``main`` writes them)."""
    problem, runs, start, steps, box, minimum, title = PROBLEMS[name]
    return paths_figure(plt, problem(), runs, start, steps, box, minimum, title)


def draw_mnist(plt: ModuleType, out: Path, epochs: int) -> None:
    split = mnist.load_mnist()
    HPARAMS["epochs"] = epochs
    fig, ax = plt.subplots(figsize=(8, 5))
    for name in OPTIMIZERS:
        losses: list[float] = []
        train_mnist(split.train_images, split.train_labels, seed=0, optimizer=name, schedule=False,
                        losses=losses)
        smooth = np.convolve(losses, np.ones(25) / 25, mode="valid")  # a moving average over 25 batches
        ax.plot(smooth, linewidth=1, label=f"{name} (last: {np.mean(losses[-50:]):.3f})")
        print(f"  {name}: mean loss over the last 50 batches {np.mean(losses[-50:]):.4f}")
    ax.set(yscale="log", xlabel="mini-batch", ylabel="training loss (moving average of 25)",
           title=f"Lab 1's MLP on MNIST, {epochs} epochs, constant lr (lab4.train.OPTIMIZERS)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/lab4"))
    parser.add_argument("--epochs", type=int, default=2, help="MNIST epochs per optimizer")
    parser.add_argument("--skip-mnist", action="store_true")
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("lab4.plot needs matplotlib, an optional extra: pip install -e '.[plot]' "
              "(grading does not need it)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for name in PROBLEMS:
        fig = problem_figure(plt, name)
        fig.savefig(args.out / f"{name}.png", dpi=120)
        plt.close(fig)
        print(f"wrote {args.out / f'{name}.png'}")
    if not args.skip_mnist:
        draw_mnist(plt, args.out / "mnist_loss.png", args.epochs)
    return 0


def unfinished(exc: NotImplementedError) -> str:
    """What to implement first, when the pictures reach code of yours that is still a stub."""
    return (f"lab4.plot: your code is not finished yet: {exc}\n"
            "Implement it first (the public tests show what is missing: pytest tests/lab4)."
            )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except NotImplementedError as exc:  # a stub, not a bug: say what to do instead of a traceback
        sys.exit(unfinished(exc))
