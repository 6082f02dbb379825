"""Inverted dropout, as ``torch.nn.Dropout``.

Convention: ``p`` is the probability to DROP an entry (PyTorch's; Keras' ``rate`` is the same,
some texts use the keep probability instead). In training, each entry is kept independently
with probability 1 - p and the kept entries are scaled by 1 / (1 - p), so the expected output
equals the input and eval needs no rescaling; in eval, dropout is the identity.
"""

from __future__ import annotations

import numpy as np

from .lab1 import Module


class Dropout(Module):
    """y = x * mask / (1 - p) in training (mask[i] = 1 with probability 1 - p), y = x in eval.

    The random numbers come from ``self.rng`` (a ``np.random.Generator``), never from the
    global ``np.random``, so that a model built with a seeded generator trains reproducibly.

    Shapes: any; y has the shape of x.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability p must be in [0, 1], got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Training: draw a mask of x's shape from self.rng, keep it for backward, scale the kept
        entries by 1 / (1 - p) (p = 1 drops everything: y = 0). Eval: return x unchanged (a copy
        or x itself). Never modify x.
        """
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Dropout.forward: not implemented yet")

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx = dL/dy * mask / (1 - p), with the SAME mask as the last forward (eval: dL/dy)."""
        # TODO: your code here (see the docstring above).
        raise NotImplementedError("Dropout.backward: not implemented yet")
