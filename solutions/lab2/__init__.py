"""Lab 2: BatchNorm and Dropout, in training and in eval mode.

What Lab 2 needs from Lab 1 (Module, Parameter, Linear, ReLU, Sequential, SoftmaxCrossEntropy,
SGD) is provided, complete, in the subpackage ``lab1`` (generated from Lab 1's reference; do
not edit it): a bug in your own Lab 1 never costs points here.
"""

from .batchnorm import BatchNorm1d, BatchNorm2d
from .dropout import Dropout
from .lab1 import SGD, Linear, Module, Parameter, ReLU, Sequential, SoftmaxCrossEntropy, Tanh
from .model import HPARAMS, build_model, fit_mnist, predict, preprocess

__all__ = [
    "HPARAMS",
    "SGD",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "Linear",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "SoftmaxCrossEntropy",
    "Tanh",
    "build_model",
    "fit_mnist",
    "predict",
    "preprocess",
]
