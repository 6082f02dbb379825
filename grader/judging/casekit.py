"""Helpers that every lab's cases share: conventions, stability, parameter losses.

A lab's ``tests/<lab>/cases.py`` runs in the grading process and, in isolated grading, in a
sandbox stage that holds only ``grader/`` and that one file; so what more than one lab needs
lives here, not in another lab's cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from grader.data import mnist

from .case import Arrays
from .gradcheck import require_float64


class ConventionError(Exception):
    """The implementation does not follow a convention the handout fixes (raised by cases)."""


@contextmanager
def numerically_stable(what: str, hint: str) -> Iterator[None]:
    """Overflow, invalid operations and division by zero become errors (NumPy only warns).

    A naive sigmoid or softmax returns the right values at +-1000 by luck (exp overflows to inf,
    1/inf is 0) with a warning nobody reads; stability is part of the task, so it is graded.
    Underflow stays allowed: exp(-2000) = 0 is the correct limit.
    """
    try:
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            yield
    except FloatingPointError as exc:
        raise ConventionError(f"{what} is not numerically stable: NumPy reports '{exc}' on inputs "
                              f"near +-1000. {hint}") from exc


def batch_factor(inputs: Arrays) -> dict[str, float]:
    """Names the batch size N (the first axis of ``x`` or ``logits``) for the 'off by a factor' hint."""
    first = inputs.get("x", inputs.get("logits"))
    return {"N (the batch size)": float(len(first))} if first is not None else {}


def param_loss(module: Any, param: Any, x: np.ndarray, upstream: np.ndarray) -> Callable[[np.ndarray], float]:
    """L(p) = sum(module(x) * upstream) as a function of one parameter's values.

    The parameter's data is restored after every evaluation, so the module is left as it was.
    """

    def loss(value: np.ndarray) -> float:
        saved = param.data.copy()
        param.data[...] = value
        try:
            return float(np.sum(require_float64(module(x), f"{type(module).__name__}.forward") * upstream))
        finally:
            param.data[...] = saved

    return loss


def mnist_inputs(rng: np.random.Generator) -> Arrays:
    """The MNIST split every training case uses (``rng`` unused: the split is fixed).

    ``test_labels`` must be declared private by the case: held-out labels never reach the
    implementation. ``gradelab grade --data DIR`` points ``load_mnist`` at a course's own set.
    """
    split = mnist.load_mnist()
    return {"train_images": split.train_images, "train_labels": split.train_labels,
            "test_images": split.test_images, "test_labels": split.test_labels}
