"""Lab 4: optimizers and learning-rate schedules, with PyTorch's update rules.

Everything the tests and the training routine use is importable from the package. Lab 1's
framework (Parameter, Module, the layers, the loss, the MLP) is provided complete in ``lab1/``.
"""

from .lab1 import Parameter
from .optim import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop
from .schedulers import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR
from .train import HPARAMS, OPTIMIZERS, fit_mnist, make_optimizer, predict, train_mnist

__all__ = [
    "HPARAMS",
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "LinearLR",
    "Optimizer",
    "Parameter",
    "RMSprop",
    "SequentialLR",
    "StepLR",
    "fit_mnist",
    "make_optimizer",
    "predict",
    "train_mnist",
]
