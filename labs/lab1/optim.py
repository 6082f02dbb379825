"""Stochastic gradient descent (plain: no momentum, no weight decay; those come in lab 4)."""

from __future__ import annotations

from collections.abc import Iterable

from .framework import Parameter


class SGD:
    """Plain SGD: ``p.data <- p.data - lr * p.grad`` for every parameter.

    The update is IN PLACE (``p.data -= ...``): the layers hold these same arrays, so a new
    array bound to ``p.data`` would work too, but in-place is what PyTorch does and what the
    tests check. ``step`` does not touch the gradients; ``zero_grad`` resets them.
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        self.params = list(params)
        self.lr = lr

    def step(self) -> None:
        """One update of every parameter."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("SGD.step: not implemented yet")

    def zero_grad(self) -> None:
        for p in self.params:
            p.zero_grad()
