"""An MLP with BatchNorm and Dropout for MNIST, and the (provided) routine that trains it.

Your task here is ``build_model``; ``fit_mnist``, ``predict`` and ``preprocess`` are provided
(the same as Lab 1's, with ``build_model``), and call your layers. You may tune ``HPARAMS``.
"""

from __future__ import annotations

import numpy as np

# The layers build_model needs (noqa: in the stub they are not used until you write it).
from .batchnorm import BatchNorm1d  # noqa: F401
from .dropout import Dropout  # noqa: F401
from .lab1 import SGD, Linear, Module, ReLU, Sequential, SoftmaxCrossEntropy  # noqa: F401
from .lab1.framework import epochs, iterate_minibatches

#: Training hyperparameters used by ``fit_mnist``. The reference reaches the accuracy given in
#: the handout with these; the grader calls ``fit_mnist`` with defaults only.
HPARAMS: dict[str, float] = {"epochs": 10, "lr": 0.1, "batch_size": 64}


def build_model(rng: np.random.Generator) -> Module:
    """An MLP classifier with BatchNorm and Dropout: (N, 784) -> (N, 10) logits.

    Suggested architecture: Linear(784, 128) -> BatchNorm1d(128) -> ReLU -> Dropout(0.2)
    -> Linear(128, 10). Initialise every Linear with ``rng`` and give the Dropout ``rng=rng``,
    so that training is reproducible. No softmax at the end (the loss takes raw logits).
    """
    ### BEGIN SOLUTION
    return Sequential(Linear(784, 128, rng), BatchNorm1d(128), ReLU(), Dropout(0.2, rng=rng),
                      Linear(128, 10, rng))
    ### END SOLUTION


def preprocess(images: np.ndarray) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float64 features (N, 784) in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def fit_mnist(images: np.ndarray, labels: np.ndarray, seed: int = 0, progress: bool = False) -> Module:
    """Builds the model and trains it with mini-batch SGD on (images, labels), in training mode.

    Args:
        images: (N, 28, 28) uint8.
        labels: (N,) integers 0..9.
        seed: seeds initialisation, dropout masks and shuffling, so a run is reproducible.
    Returns:
        the trained model.
    """
    rng = np.random.default_rng(seed)
    x, y = preprocess(images), np.asarray(labels, dtype=np.int64)
    model = build_model(rng)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(model.parameters(), lr=float(HPARAMS["lr"]))
    model.train()
    batch_size = int(HPARAMS["batch_size"])
    for _ in epochs(int(HPARAMS["epochs"]), progress):
        for idx in iterate_minibatches(len(x), batch_size, rng):
            if len(idx) < 2:  # BatchNorm needs two samples for a batch variance
                continue
            optimizer.zero_grad()
            loss_fn(model(x[idx]), y[idx])
            model.backward(loss_fn.backward())
            optimizer.step()
    return model


def predict(model: Module, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Predicted class for each image, in EVAL mode (running statistics, no dropout): (N,) int64."""
    model.eval()
    x = preprocess(images)
    out = [model(x[idx]).argmax(axis=1) for idx in iterate_minibatches(len(x), batch_size)]
    return np.concatenate(out).astype(np.int64)
