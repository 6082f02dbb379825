"""The provided skeleton of the framework: parameters, modules and mini-batches.

Nothing in this file is a task; read it, because every layer you write builds on it.

Conventions (the tests rely on them):
  * Arrays are float64 NumPy arrays; a batch is the first axis (shape (N, ...)).
  * ``forward`` caches what ``backward`` needs on ``self``.
  * ``backward(grad_output)`` receives dL/d(output) and returns dL/d(input).
  * Parameter gradients ACCUMULATE: ``backward`` adds into ``p.grad`` (``p.grad += ...``),
    and only ``zero_grad()`` resets them, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


class Parameter:
    """A trainable array and the gradient of the loss with respect to it.

    Attributes:
        data: the values, float64, any shape.
        grad: dL/d(data), same shape as ``data``; zero until a backward pass adds into it.
    """

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.array(data, dtype=np.float64)  # a private copy: callers keep theirs
        self.grad = np.zeros_like(self.data)

    def zero_grad(self) -> None:
        self.grad[...] = 0.0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape})"


class Module:
    """Base class of every layer and model, shaped like ``torch.nn.Module``.

    Subclasses implement ``forward`` and ``backward``. Parameters and sub-modules are found
    by looking at the instance's attributes in the order they were assigned: a ``Parameter``,
    a ``Module``, or a list/tuple of ``Module``s.
    """

    def __init__(self) -> None:
        self.training = True

    def forward(self, *args: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, *args: np.ndarray) -> np.ndarray:
        return self.forward(*args)

    def children(self) -> Iterator[Module]:
        """The direct sub-modules, in attribute order."""
        for value in vars(self).values():
            if isinstance(value, Module):
                yield value
            elif isinstance(value, (list, tuple)):
                yield from (v for v in value if isinstance(v, Module))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs, this module's first, then each child's (depth first)."""
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield prefix + name, value
            elif isinstance(value, Module):
                yield from value.named_parameters(f"{prefix}{name}.")
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield from item.named_parameters(f"{prefix}{name}.{i}.")

    def parameters(self) -> list[Parameter]:
        """Every parameter of this module and its sub-modules, in a fixed order."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        """Sets training mode here and in every sub-module (matters for Dropout and BatchNorm)."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter's data, keyed by ``named_parameters`` names."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copies arrays into the parameters; names and shapes must match exactly."""
        own = dict(self.named_parameters())
        if set(own) != set(state):
            raise KeyError(f"state_dict keys differ: missing {sorted(set(own) - set(state))}, "
                           f"unexpected {sorted(set(state) - set(own))}")
        for name, p in own.items():
            value = np.asarray(state[name], dtype=np.float64)
            if value.shape != p.data.shape:
                raise ValueError(f"{name}: shape {value.shape} does not match {p.data.shape}")
            p.data[...] = value


def epochs(n: int, progress: bool = False, desc: str = "training") -> Iterable[int]:
    """``range(n)``, drawn as a progress bar (tqdm, a tick per epoch) when ``progress``: the
    notebooks ask for it, grading never does."""
    if not progress:
        return range(n)
    from tqdm.auto import trange

    return trange(n, desc=desc, unit="epoch")


def iterate_minibatches(n: int, batch_size: int,
                        rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index arrays that cover ``range(n)`` in batches of ``batch_size`` (the last may be smaller).

    With ``rng`` the order is a fresh random permutation (one epoch of shuffled SGD);
    without it, the natural order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
