"""Lab 1: a naive neural-network framework in NumPy.

Everything the tests and the training routine use is importable from the package, so the
grader loads one package per submission (``labs/lab1`` or a student's copy of it).
Inside the package, import with relative imports (``from .framework import Module``).
"""

from .framework import Module, Parameter, iterate_minibatches
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import SoftmaxCrossEntropy
from .mlp import HPARAMS, build_mlp, fit_mnist, predict, preprocess
from .optim import SGD

__all__ = [
    "HPARAMS",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "SGD",
    "Sequential",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "Tanh",
    "build_mlp",
    "fit_mnist",
    "iterate_minibatches",
    "predict",
    "preprocess",
]
