"""A small CNN for MNIST, and the (provided) routine that trains it within a time budget.

Your task here is ``build_cnn``; ``fit_mnist`` and ``predict`` are provided and call your layers
and Lab 1's loss and optimizer. You may tune ``HPARAMS``.

The budget: training must take about TRAINING_BUDGET_S seconds at most on the course machine
(one BLAS thread). ``fit_mnist`` times the first mini-batches and stops at once with
``TrainingTooSlow`` when the whole run would take far longer (a Conv2d written with Python loops
over the batch or the output positions is about a hundred times too slow): vectorise it.
"""

from __future__ import annotations

import time

import numpy as np

from .conv import Conv2d  # noqa: F401 (for build_cnn, your task)
from .lab1 import SGD, Linear, Module, ReLU, Sequential, SoftmaxCrossEntropy  # noqa: F401 (idem)
from .lab1.framework import epochs, iterate_minibatches
from .pooling import Flatten, MaxPool2d  # noqa: F401 (idem)

#: Training hyperparameters used by ``fit_mnist``. The reference reaches the accuracy given in
#: the handout with these; the grader calls ``fit_mnist`` with defaults only.
HPARAMS: dict[str, float] = {"epochs": 8, "lr": 0.1, "batch_size": 32}

#: Seconds the whole training may take on the course machine (the reference needs far less).
TRAINING_BUDGET_S = 60.0
#: fit_mnist gives up when the first batches project a training time above this many seconds:
#: several times the budget, so that a correct vectorised layer is never stopped, while a
#: loop-based one (about a hundred times slower) is stopped after its first batch.
ABORT_AFTER_S = 4 * TRAINING_BUDGET_S
#: How many first mini-batches are timed. Steps are timed in CPU time of this process
#: (time.process_time), not wall-clock time: other programs on a busy machine do not count, and
#: the fastest of the timed steps counts (the first one also pays for memory allocation).
TIMED_BATCHES = 3


class TrainingTooSlow(RuntimeError):
    """fit_mnist would run far past its time budget."""


def build_cnn(rng: np.random.Generator) -> Module:
    """A CNN classifier for (N, 1, 28, 28) images -> (N, 10) logits.

    Suggested architecture (the reference):
        Conv2d(1, 8, 3, padding=1) -> ReLU -> MaxPool2d(2)      (N, 8, 14, 14)
        Conv2d(8, 16, 3, padding=1) -> ReLU -> MaxPool2d(2)     (N, 16, 7, 7)
        Flatten -> Linear(16*7*7, 64) -> ReLU -> Linear(64, 10)
    Initialise every Conv2d and Linear with ``rng`` so that training is reproducible. No softmax
    at the end: SoftmaxCrossEntropy takes raw logits.
    """
    ### BEGIN SOLUTION
    return Sequential(
        Conv2d(1, 8, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Conv2d(8, 16, 3, padding=1, rng=rng), ReLU(), MaxPool2d(2),
        Flatten(), Linear(16 * 7 * 7, 64, rng), ReLU(), Linear(64, 10, rng),
    )
    ### END SOLUTION


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float64 (N, 1, 28, 28) in [0, 1] (one input channel)."""
    return images.reshape(len(images), 1, 28, 28).astype(np.float64) / 255.0


def _slowest_layers(model: Module, x: np.ndarray) -> str:
    """Forward CPU time of each layer of a Sequential on ``x``, slowest first (for the error message)."""
    layers = getattr(model, "layers", None)
    if not isinstance(layers, list):
        return ""
    times = []
    for layer in layers:
        start = time.process_time()
        x = layer(x)
        times.append((time.process_time() - start, type(layer).__name__))
    times.sort(reverse=True)
    return "; forward CPU time per layer on that batch: " + ", ".join(f"{name} {t:.3g} s" for t, name in times[:4])


def _check_budget(seconds: list[float], n_steps: int, model: Module, batch: np.ndarray) -> None:
    """Raises TrainingTooSlow if the fastest timed step, times the number of steps, is over ABORT_AFTER_S."""
    projected = min(seconds) * n_steps
    if projected > ABORT_AFTER_S:
        raise TrainingTooSlow(
            f"fit_mnist stopped: one training step (forward + backward + SGD on a batch of {len(batch)}) "
            f"took {min(seconds):.2f} s of CPU time, so {n_steps} steps would take about {projected:.0f} s; the "
            f"budget is {TRAINING_BUDGET_S:.0f} s (the reference takes a few seconds per epoch). Vectorise your "
            "layers: Conv2d.forward/backward must use im2col/col2im and matrix products, with Python loops only "
            "over the kernel offsets (u, v), never over the batch, channels or output positions "
            "(conv2d_naive is for understanding, not for training)" + _slowest_layers(model, batch) + ".")


def fit_mnist(images: np.ndarray, labels: np.ndarray, seed: int = 0, progress: bool = False) -> Module:
    """Builds the CNN and trains it with mini-batch SGD on (images, labels), within the time budget.

    Args:
        images: (N, 28, 28) uint8.
        labels: (N,) integers 0..9.
        seed: seeds initialisation and shuffling, so a run is reproducible.
        progress: show a progress bar (the notebooks do).
    Returns:
        the trained model.
    Raises:
        TrainingTooSlow: the first steps show that training would take far longer than the budget.
    """
    rng = np.random.default_rng(seed)
    x, y = preprocess(images), np.asarray(labels, dtype=np.int64)
    model = build_cnn(rng)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(model.parameters(), lr=float(HPARAMS["lr"]))
    batch_size, n_epochs = int(HPARAMS["batch_size"]), int(HPARAMS["epochs"])
    n_steps = n_epochs * -(-len(x) // batch_size)
    step_seconds: list[float] = []
    model.train()
    for _ in epochs(n_epochs, progress):
        for idx in iterate_minibatches(len(x), batch_size, rng):
            start = time.process_time()
            optimizer.zero_grad()
            loss_fn(model(x[idx]), y[idx])
            model.backward(loss_fn.backward())
            optimizer.step()
            if len(step_seconds) < TIMED_BATCHES and len(idx) == batch_size:
                step_seconds.append(time.process_time() - start)
                _check_budget(step_seconds, n_steps, model, x[idx])
    return model


def predict(model: Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted class (argmax of the logits) for each image: (N, 28, 28) -> (N,) int64."""
    model.eval()
    x = preprocess(images)
    out = [model(x[idx]).argmax(axis=1) for idx in iterate_minibatches(len(x), batch_size)]
    return np.concatenate(out).astype(np.int64)
