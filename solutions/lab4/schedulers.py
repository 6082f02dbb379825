"""Learning-rate schedules, stepping as ``torch.optim.lr_scheduler`` does.

A scheduler owns ``optimizer.lr``. Creating one sets the lr for the first optimizer step
(k = 0); each ``scheduler.step()``, called AFTER ``optimizer.step()``, advances k by one and sets
the lr for the next optimizer step. So ``optimizer.lr`` after k calls of ``scheduler.step()``
is the schedule's value at k. In a training loop::

    for batch in batches:
        optimizer.zero_grad(); ...backward...; optimizer.step()
        scheduler.step()

``get_lr()`` returns the schedule's value at ``k = self.last_epoch`` from the closed form below
(PyTorch's names: ``last_epoch`` counts ``step()`` calls, epochs or iterations alike).
``base_lr`` is the optimizer's lr when the FIRST scheduler was attached to it (stored as
``optimizer.initial_lr``, as PyTorch does), so several schedulers on one optimizer (for
``SequentialLR``) share it. Setting ``optimizer.lr`` by hand while a scheduler runs is
overwritten at the next ``scheduler.step()``: the closed form does not see it (a simplification
of PyTorch, whose recursive formulas would carry the change on).
"""

from __future__ import annotations

import math  # noqa: F401 - for the cosine (the stub does not use it yet)
from collections.abc import Sequence
from typing import Any


class LRScheduler:
    """Base class: ``step()`` advances ``last_epoch`` and writes ``get_lr()`` into ``optimizer.lr``."""

    def __init__(self, optimizer: Any) -> None:
        self.optimizer = optimizer
        if not hasattr(optimizer, "initial_lr"):
            optimizer.initial_lr = optimizer.lr
        self.base_lr = float(optimizer.initial_lr)
        self.last_epoch = 0
        self.optimizer.lr = self.get_lr()

    def get_lr(self) -> float:
        """The lr after ``self.last_epoch`` calls of ``step()``."""
        raise NotImplementedError(f"{type(self).__name__}.get_lr")

    def step(self) -> None:
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()


class StepLR(LRScheduler):
    """Decays the lr by ``gamma`` every ``step_size`` steps.

        lr(k) = base_lr * gamma ** floor(k / step_size)

    e.g. step_size=3: k = 0, 1, 2 give base_lr; k = 3, 4, 5 give base_lr * gamma; ...
    """

    def __init__(self, optimizer: Any, step_size: int, gamma: float = 0.1) -> None:
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        ### BEGIN SOLUTION
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)
        ### END SOLUTION


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from base_lr down to ``eta_min`` over ``T_max`` steps.

        lr(k) = eta_min + (base_lr - eta_min) * (1 + cos(pi * k / T_max)) / 2

    lr(0) = base_lr, lr(T_max) = eta_min. For k > T_max the same formula goes on: the lr rises
    again (period 2 * T_max), as PyTorch's does; it is NOT held at eta_min.
    """

    def __init__(self, optimizer: Any, T_max: int, eta_min: float = 0.0) -> None:
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        ### BEGIN SOLUTION
        cosine = (1.0 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2.0
        return self.eta_min + (self.base_lr - self.eta_min) * cosine
        ### END SOLUTION


class LinearLR(LRScheduler):
    """Linear warm-up: the factor goes from ``start_factor`` to ``end_factor`` in ``total_iters`` steps.

        lr(k) = base_lr * (start_factor + (end_factor - start_factor) * min(k, total_iters) / total_iters)

    and stays at base_lr * end_factor after ``total_iters`` steps.
    """

    def __init__(self, optimizer: Any, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        if not (0 < start_factor <= 1 and 0 <= end_factor <= 1):
            raise ValueError("start_factor must be in (0, 1] and end_factor in [0, 1]")
        if total_iters < 1:
            raise ValueError(f"total_iters must be >= 1, got {total_iters}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = int(total_iters)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        ### BEGIN SOLUTION
        progress = min(self.last_epoch, self.total_iters) / self.total_iters
        return self.base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)
        ### END SOLUTION


class SequentialLR:
    """Runs ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` from ITS k = 0, and so on.

    With milestones m_1 < m_2 < ... and k the number of ``step()`` calls so far, the active
    scheduler is number j = (how many milestones are <= k), and it is evaluated at
    k - m_j (k itself for j = 0), i.e. each schedule restarts at its milestone, as PyTorch's
    SequentialLR does. Warm-up then cosine::

        warmup = LinearLR(opt, start_factor=0.1, total_iters=10)
        cosine = CosineAnnealingLR(opt, T_max=90)
        sched = SequentialLR(opt, [warmup, cosine], milestones=[10])
    """

    def __init__(self, optimizer: Any, schedulers: Sequence[Any], milestones: Sequence[int]) -> None:
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"{len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}")
        if list(milestones) != sorted(milestones) or any(m < 1 for m in milestones):
            raise ValueError(f"milestones must be increasing and >= 1, got {list(milestones)}")
        if any(s.optimizer is not optimizer for s in schedulers):
            raise ValueError("every scheduler must belong to the same optimizer")
        self.optimizer = optimizer
        self.schedulers, self.milestones = list(schedulers), [int(m) for m in milestones]
        self.last_epoch = 0
        self._activate()

    def _activate(self) -> None:
        """Sets ``optimizer.lr`` to the active scheduler's value at the current ``last_epoch``."""
        ### BEGIN SOLUTION
        k = self.last_epoch
        j = sum(1 for m in self.milestones if m <= k)
        active = self.schedulers[j]
        active.last_epoch = k - (self.milestones[j - 1] if j else 0)
        self.optimizer.lr = active.get_lr()
        ### END SOLUTION

    def step(self) -> None:
        self.last_epoch += 1
        self._activate()
