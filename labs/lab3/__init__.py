"""Lab 3: convolution and pooling, naive and fast, and a CNN on MNIST.

Lab 1's framework (Module, Parameter, Linear, ReLU, Sequential, SoftmaxCrossEntropy, SGD) is
provided, complete, in the subpackage ``lab3.lab1``; this package re-exports what the CNN needs.
"""

from .cnn import HPARAMS, TRAINING_BUDGET_S, TrainingTooSlow, build_cnn, fit_mnist, predict, preprocess
from .conv import Conv2d, col2im, conv2d_naive, conv_output_size, im2col
from .lab1 import SGD, Linear, Module, Parameter, ReLU, Sequential, SoftmaxCrossEntropy
from .pooling import AvgPool2d, Flatten, MaxPool2d

__all__ = [
    "HPARAMS",
    "SGD",
    "TRAINING_BUDGET_S",
    "AvgPool2d",
    "Conv2d",
    "Flatten",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "SoftmaxCrossEntropy",
    "TrainingTooSlow",
    "build_cnn",
    "col2im",
    "conv2d_naive",
    "conv_output_size",
    "fit_mnist",
    "im2col",
    "predict",
    "preprocess",
]
