"""What Lab 2's structurally broken models reach on MNIST, against the accuracy threshold.

``mnist_model_structure`` (tests/lab2/cases.py) fails a model without BatchNorm1d, without Dropout,
or trained by a ``fit_mnist`` that its seed does not fix. This script measures why that case is
needed: it trains each broken variant of the reference's model with the reference's own
``fit_mnist`` (same data, hyperparameters and seeds as ``scripts/measure_accuracy.py --lab lab2``)
and prints its held-out accuracy next to ``ACCURACY_THRESHOLD``. A variant at or above the
threshold passes ``mnist_accuracy``: only the structure case can tell it from the lab's model.
The handout (solutions/lab2/README.md, section 6) quotes its output.

    python scripts/lab2_structure_accuracy.py                  # every variant, seeds 0-4
    python scripts/lab2_structure_accuracy.py --variants no-batchnorm --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

from grader import paths
from grader.data import mnist  # before NumPy loads: it pins BLAS to one thread
from grader.isolation.loading import load_cases, load_package

if TYPE_CHECKING:
    import numpy as np

Builder = Callable[[ModuleType, "np.random.Generator"], object]


def _mlp(lab: ModuleType, rng: np.random.Generator, *, batchnorm: bool, dropout: bool, seeded: bool = True) -> object:
    """The handout's suggested MLP, with BatchNorm1d and/or Dropout left out, or its Dropout unseeded."""
    layers: list[object] = [lab.Linear(784, 128, rng)]
    if batchnorm:
        layers.append(lab.BatchNorm1d(128))
    layers.append(lab.ReLU())
    if dropout:
        layers.append(lab.Dropout(0.2, rng=rng) if seeded else lab.Dropout(0.2))
    layers.append(lab.Linear(128, 10, rng))
    return lab.Sequential(*layers)


VARIANTS: dict[str, Builder] = {
    "reference": lambda lab, rng: _mlp(lab, rng, batchnorm=True, dropout=True),
    "no-batchnorm": lambda lab, rng: _mlp(lab, rng, batchnorm=False, dropout=True),
    "no-dropout": lambda lab, rng: _mlp(lab, rng, batchnorm=True, dropout=False),
    "neither": lambda lab, rng: _mlp(lab, rng, batchnorm=False, dropout=False),
    # trains as well as the reference; not reproducible from the seed (mnist_model_structure fails it)
    "dropout-unseeded": lambda lab, rng: _mlp(lab, rng, batchnorm=True, dropout=True, seeded=False),
}


def accuracy(lab: ModuleType, build: Builder, split: mnist.MnistSplit, seed: int) -> float:
    """Held-out accuracy of the reference's fit_mnist with ``build`` in place of build_model."""
    lab.model.build_model = lambda rng: build(lab, rng)  # fit_mnist looks build_model up at call time
    model = lab.fit_mnist(split.train_images, split.train_labels, seed=seed)
    return float((lab.predict(model, split.test_images) == split.test_labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    threshold = load_cases("lab2", paths.tests_dir()).get("mnist_accuracy").checks[0].threshold
    lab = load_package(paths.solutions_dir(), "lab2")
    split = mnist.load_mnist()
    print(f"data: {split.source}; train {len(split.train_labels)}, held-out {len(split.test_labels)}; "
          f"hyperparameters {lab.HPARAMS}; threshold {threshold}")
    for name in args.variants:
        start = time.perf_counter()
        accs = [accuracy(lab, VARIANTS[name], split, seed) for seed in args.seeds]
        verdict = "passes" if min(accs) >= threshold else "fails" if max(accs) < threshold else "mixed"
        print(f"{name:<17} mean {statistics.mean(accs):.4f}, min {min(accs):.4f}, max {max(accs):.4f} "
              f"(seeds {' '.join(map(str, args.seeds))}; {verdict} mnist_accuracy; "
              f"{time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
