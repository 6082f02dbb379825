"""Optimizers with PyTorch's update rules and argument names: SGD, Adagrad, RMSprop, Adam, AdamW.

Conventions (the tests rely on them; the handout writes every rule out):
  * An optimizer holds a list of ``Parameter``s (``p.data``, ``p.grad``) and a learning rate
    ``self.lr``. Setting ``optimizer.lr = value`` between two ``step()`` calls changes the lr
    of every later step, and only of those (a scheduler does exactly this).
  * ``p.grad is None`` means "this parameter got no gradient on this step": ``step()`` skips it
    entirely, as ``torch.optim`` does: its data, its state and its step counter stay as they
    are, and no weight decay is applied. A gradient of exact zeros IS a gradient: the state is
    updated (momentum decays, Adam's step counter advances) and weight decay applies.
  * State is per parameter: ``self.state[i]`` is a dict for ``self.params[i]``, created at that
    parameter's first step with a gradient. Nothing is shared between parameters.
  * ``step()`` updates ``p.data`` in place and never modifies ``p.grad``.
  * In the formulas, g is the gradient, p the parameter, t the parameter's step counter
    (1 at its first update), and every operation is elementwise.
"""

from __future__ import annotations

import copy  # noqa: F401 - for state_dict (the stub does not use it yet)
from collections.abc import Iterable
from typing import Any

import numpy as np

from .lab1 import Parameter

State = dict[str, Any]


class Optimizer:
    """Base class: the parameters, the learning rate ``lr`` and each parameter's state.

    Subclasses implement ``step()``. ``self.state`` maps a parameter's index in
    ``self.params`` to its state dict (e.g. ``{"step": 3, "exp_avg": array, ...}``).
    """

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        self.lr = float(lr)
        self.state: dict[int, State] = {}

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__}.step")

    def zero_grad(self) -> None:
        """Sets every existing gradient to zero, in place; a ``None`` gradient stays ``None``.

        In place (``p.grad[...] = 0``) because Lab 1's layers ADD into ``p.grad`` and need an
        array there. (PyTorch sets gradients to None by default; its tensors can add to None.)
        """
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Optimizer.zero_grad: not implemented yet")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: ``{"lr": self.lr, "state": {index: state dict}}``.

        The result must be a COPY: the optimizer keeps updating its own arrays in place, and a
        saved checkpoint must not change when training continues.
        """
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Optimizer.state_dict: not implemented yet")

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores ``lr`` and every parameter's state from ``state_dict`` (copied, not shared).

        After ``opt2.load_state_dict(opt1.state_dict())`` on parameters with the same values,
        ``opt2`` continues exactly the trajectory ``opt1`` would have followed. Hyperparameters
        other than ``lr`` come from ``opt2``'s constructor.
        """
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Optimizer.load_state_dict: not implemented yet")


def _check(name: str, value: float, low: float = 0.0, high: float = float("inf")) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay (PyTorch's).

    For each parameter p with a gradient g, at its step t:

        g   = g + weight_decay * p                      (if weight_decay != 0)
        buf = g                                         (t = 1: the buffer starts AS g)
        buf = momentum * buf + (1 - dampening) * g      (t > 1)
        g   = g + momentum * buf   if nesterov   else   g = buf      (if momentum != 0)
        p   = p - lr * g

    The buffer holds no lr: changing ``lr`` mid-run changes the very next step's size (the
    form ``v = momentum * v - lr * g; p = p + v`` equals this only while lr is constant).
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        _check("momentum", momentum)
        _check("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.nesterov, self.weight_decay = bool(nesterov), float(weight_decay)

    def step(self) -> None:
        """One update of every parameter that has a gradient; state key ``"momentum_buffer"``."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("SGD.step: not implemented yet")


class Adagrad(Optimizer):
    """Adagrad (PyTorch's, with ``initial_accumulator_value=0`` and ``lr_decay=0``).

    For each parameter p with a gradient g:

        g   = g + weight_decay * p                      (if weight_decay != 0)
        sum = sum + g**2                                (sum starts at 0)
        p   = p - lr * g / (sqrt(sum) + eps)            (eps OUTSIDE the square root)

    State keys: ``"step"`` (int) and ``"sum"``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, eps: float = 1e-10,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def step(self) -> None:
        """One update (the class docstring's rule) of every parameter whose grad is not None."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Adagrad.step: not implemented yet")


class RMSprop(Optimizer):
    """RMSprop (PyTorch's, not centered).

    For each parameter p with a gradient g:

        g   = g + weight_decay * p                      (if weight_decay != 0)
        v   = alpha * v + (1 - alpha) * g**2            (v starts at 0)
        d   = sqrt(v) + eps                             (eps OUTSIDE the square root)
        buf = momentum * buf + g / d;  p = p - lr * buf (if momentum > 0; buf starts at 0)
        p   = p - lr * g / d                            (if momentum == 0)

    State keys: ``"step"`` (int), ``"square_avg"`` and (with momentum) ``"momentum_buffer"``.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        _check("alpha", alpha, 0.0, 1.0)
        _check("eps", eps)
        _check("momentum", momentum)
        _check("weight_decay", weight_decay)
        self.alpha, self.eps = float(alpha), float(eps)
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)

    def step(self) -> None:
        """One update (the class docstring's rule) of every parameter whose grad is not None."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("RMSprop.step: not implemented yet")


class Adam(Optimizer):
    """Adam (PyTorch's; ``weight_decay`` is L2: added to the gradient).

    For each parameter p with a gradient g, with its own step counter t (1 at its first update):

        g     = g + weight_decay * p                    (if weight_decay != 0)
        m     = beta1 * m + (1 - beta1) * g             (m, v start at 0)
        v     = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)                      (bias corrections, t incremented BEFORE use)
        v_hat = v / (1 - beta2**t)
        p     = p - lr * m_hat / (sqrt(v_hat) + eps)    (eps OUTSIDE the square root, after correction)

    State keys: ``"step"`` (int), ``"exp_avg"`` (m) and ``"exp_avg_sq"`` (v).
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr)
        beta1, beta2 = betas
        _check("betas[0]", beta1, 0.0, 1.0 - 1e-12)
        _check("betas[1]", beta2, 0.0, 1.0 - 1e-12)
        _check("eps", eps)
        _check("weight_decay", weight_decay)
        self.betas = (float(beta1), float(beta2))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def _decay(self, p: Parameter, g: np.ndarray) -> np.ndarray:
        """Adam's weight decay: L2, ``g + weight_decay * p`` (a new array; AdamW overrides this)."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Adam._decay: not implemented yet")

    def step(self) -> None:
        """One update (the class docstring's rule) of every parameter whose grad is not None.

        Get the gradient to use as ``g = self._decay(p, p.grad)``: that is where Adam (L2) and
        AdamW (decoupled) differ, so AdamW inherits this method unchanged.
        """
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Adam.step: not implemented yet")


class AdamW(Adam):
    """AdamW: Adam with DECOUPLED weight decay (PyTorch's).

    For each parameter p with a gradient g, before Adam's update (which then uses g unchanged):

        p = p * (1 - lr * weight_decay)

    i.e. the decay shrinks the parameter directly, scaled by lr; it never enters m or v.
    """

    def __init__(self, params: Iterable[Parameter], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)

    def _decay(self, p: Parameter, g: np.ndarray) -> np.ndarray:
        """Decoupled decay: shrinks ``p.data`` in place and returns the gradient unchanged."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("AdamW._decay: not implemented yet")
