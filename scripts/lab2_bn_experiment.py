"""Lab 2 experiment: the same MLP with and without BatchNorm, at a normal and a large learning rate.

Trains 784-128-128-10 ReLU MLPs with plain SGD on the bundled MNIST split, once with
BatchNorm1d after each hidden Linear and once without, and prints the held-out accuracy and the
last epoch's mean training loss for each learning rate and seed. The handout quotes its output.

    python scripts/lab2_bn_experiment.py                       # the reference (or labs/ in a release)
    python scripts/lab2_bn_experiment.py --impl DIR --lrs 0.1 1.0 2.0 --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from grader import paths
from grader.data import mnist  # first: it pins BLAS to one thread before NumPy does real work
from grader.isolation.loading import load_package


def build(lab: ModuleType, rng: np.random.Generator, batchnorm: bool) -> object:
    layers: list = []
    for d_in, d_out in ((784, 128), (128, 128)):
        layers.append(lab.Linear(d_in, d_out, rng))
        if batchnorm:
            layers.append(lab.BatchNorm1d(d_out))
        layers.append(lab.ReLU())
    layers.append(lab.Linear(128, 10, rng))
    return lab.Sequential(*layers)


def run(lab: ModuleType, split: mnist.MnistSplit, *, batchnorm: bool, lr: float, seed: int,
        epochs: int, batch_size: int) -> tuple[float, float]:
    """(held-out accuracy, mean training loss of the last epoch); NaN loss if training diverged."""
    rng = np.random.default_rng(seed)
    x, y = lab.preprocess(split.train_images), np.asarray(split.train_labels, dtype=np.int64)
    model = build(lab, rng, batchnorm)
    loss_fn = lab.SoftmaxCrossEntropy()
    optimizer = lab.SGD(model.parameters(), lr=lr)
    model.train()
    losses: list[float] = []
    with np.errstate(all="ignore"):  # a diverging run overflows; that is the result, not an error
        for _ in range(epochs):
            losses = []
            order = rng.permutation(len(x))
            for start in range(0, len(x) - batch_size + 1, batch_size):
                idx = order[start:start + batch_size]
                optimizer.zero_grad()
                losses.append(loss_fn(model(x[idx]), y[idx]))
                model.backward(loss_fn.backward())
                optimizer.step()
        accuracy = float((lab.predict(model, split.test_images) == split.test_labels).mean())
    return accuracy, float(np.mean(losses))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = paths.solutions_dir() if paths.solutions_dir().is_dir() else paths.labs_dir()
    parser.add_argument("--impl", type=Path, default=default, help=f"folder laid out like labs/ (default: {default})")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.1, 2.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    lab = load_package(args.impl, "lab2")
    split = mnist.load_mnist()
    print(f"data: {split.source}; MLP 784-128-128-10, ReLU, plain SGD, {args.epochs} epochs, batch {args.batch_size}")
    for lr in args.lrs:
        for batchnorm in (False, True):
            start = time.perf_counter()
            results = [run(lab, split, batchnorm=batchnorm, lr=lr, seed=s, epochs=args.epochs,
                           batch_size=args.batch_size) for s in args.seeds]
            accs = [a for a, _ in results]
            losses = ", ".join(f"{loss:.3f}" for _, loss in results)
            name = "with BatchNorm   " if batchnorm else "without BatchNorm"
            print(f"lr {lr:<4g} {name}: held-out accuracy mean {statistics.mean(accs):.4f} "
                  f"(per seed {', '.join(f'{a:.4f}' for a in accs)}); last-epoch training loss {losses} "
                  f"[{time.perf_counter() - start:.0f} s]")


if __name__ == "__main__":
    try:
        main()
    except NotImplementedError as exc:  # the student's lab is not finished: say so instead of a traceback
        sys.exit(f"{Path(__file__).name}: your code is not finished yet: {exc}\n"
                 "Implement it first (the public tests show what is missing).")
