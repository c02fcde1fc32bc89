"""Learning-rate schedulers: LRScheduler, StepLR, MultiStepLR, CosineAnnealingLR.

They reproduce PyTorch's lr sequences exactly, including its *recursive* forms: each
``step()`` rescales the optimizer's current ``group['lr']`` rather than recomputing it from
``base_lrs``, so schedulers can be chained and outside changes to the lr persist. Call
``scheduler.step()`` once per epoch, after ``optimizer.step()``.
"""

from __future__ import annotations

import math
import numbers
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: sets ``group['lr']`` of every param group at each :meth:`step`.

    Args:
        optimizer (Optimizer): the optimizer whose learning rates are set.
        last_epoch (int, default -1): index of the last epoch; -1 starts fresh and sets
            ``group['initial_lr'] = group['lr']`` where not already set. Other values resume a
            run and need ``'initial_lr'`` in every group.

    Attributes:
        base_lrs (list of float): each group's ``initial_lr``.
        last_epoch (int): epochs stepped so far (0 right after construction).

    The constructor calls :meth:`step` once (epoch -1 -> 0), like PyTorch.
    Subclasses implement ``get_lr()`` (recursive form) and ``_get_closed_form_lr()``.

    Example:
        >>> sched = convscope.optim.lr_scheduler.StepLR(opt, step_size=30)
        >>> for epoch in range(90):
        ...     train_one_epoch(); sched.step()
    """

    optimizer: Optimizer
    base_lrs: list[float]
    last_epoch: int
    _step_count: int
    _is_initial: bool
    _last_lr: list[float]

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        if not isinstance(last_epoch, numbers.Integral) or last_epoch < -1:
            raise ValueError(
                f"{type(self).__name__}: invalid last_epoch: expected an integer >= -1, got {last_epoch!r}"
            )
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(
                        f"{type(self).__name__}: param_groups[{i}] has no "
                        f"'initial_lr'; expected it when resuming with "
                        f"last_epoch={last_epoch} (load the optimizer state first)"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = int(last_epoch)
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The lrs for epoch ``last_epoch``, from the groups' current lrs (subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def get_last_lr(self) -> list[float]:
        """The lrs set by the most recent :meth:`step` (one float per param group)."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch and write the new lrs into the optimizer's param groups.

        Args:
            epoch (int or None, default None): deprecated in PyTorch; if given, jump to this
                epoch and use the closed-form lr (``base_lr`` based) where the scheduler has one.
        """
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = int(epoch)
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current_lrs(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, as JSON-able Python values (lists, numbers)."""
        return {
            k: (list(v) if isinstance(v, (list, tuple)) else v)
            for k, v in self.__dict__.items()
            if k != "optimizer"
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (does not touch the optimizer's lrs)."""
        self.__dict__.update(state_dict)


def _check_int(owner: str, name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{owner}: invalid {name}: expected an integer >= {low}, got {value!r}")


def _check_real(owner: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{owner}: invalid {name}: expected a number, got {value!r}")


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` epochs.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        step_size (int): period of the decay, >= 1.
        gamma (float, default 0.1): multiplicative factor.
        last_epoch (int, default -1): see :class:`LRScheduler`.

    Rule (recursive, as torch): ``lr_e = lr_{e-1} * gamma`` if ``e > 0`` and
    ``e % step_size == 0``, else ``lr_e = lr_{e-1}``; alone, ``lr_e = base_lr *
    gamma ** (e // step_size)``.

    Example:
        >>> sched = StepLR(opt, step_size=2, gamma=0.5)   # opt lr 1.0
        >>> [sched.get_last_lr()[0] for _ in range(5) if sched.step() is None]
        [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        _check_int("StepLR", "step_size", step_size, 1)
        _check_real("StepLR", "gamma", gamma)
        self.step_size = int(step_size)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` at each milestone epoch.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        milestones (iterable of int): epochs at which to decay; a milestone listed n times
            decays by ``gamma ** n``.
        gamma (float, default 0.1): multiplicative factor.
        last_epoch (int, default -1): see :class:`LRScheduler`.

    Rule (recursive, as torch): ``lr_e = lr_{e-1} * gamma ** count(e in milestones)``; alone,
    ``lr_e = base_lr * gamma ** (number of milestones <= e)``.

    Example:
        >>> sched = MultiStepLR(opt, milestones=[30, 80], gamma=0.1)   # opt lr 0.05
        >>> # lr = 0.05 for epochs 0-29, 0.005 for 30-79, 0.0005 from 80
    """

    def __init__(
        self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1, last_epoch: int = -1
    ) -> None:
        milestones = list(milestones)
        for m in milestones:
            _check_int("MultiStepLR", "milestones", m, 0)
        _check_real("MultiStepLR", "gamma", gamma)
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch) for base in self.base_lrs]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())  # JSON-able (repeats kept)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        milestones = state.get("milestones", self.milestones)
        state["milestones"] = (
            Counter({int(k): v for k, v in milestones.items()})
            if isinstance(milestones, dict)
            else Counter(int(m) for m in milestones)
        )
        super().load_state_dict(state)


class CosineAnnealingLR(LRScheduler):
    r"""Anneal the lr from ``base_lr`` to ``eta_min`` along a half cosine over ``T_max`` epochs.

    Args:
        optimizer (Optimizer): the wrapped optimizer.
        T_max (int): half-period in epochs, >= 1.
        eta_min (float, default 0): the minimum lr.
        last_epoch (int, default -1): see :class:`LRScheduler`.

    Closed form: ``lr_e = eta_min + (base_lr - eta_min) * (1 + cos(pi * e / T_max)) / 2``.
    Like PyTorch, each step uses the recursive form

    .. math:: \eta_e = \eta_{min} + (\eta_{e-1} - \eta_{min})
              \frac{1 + \cos(\pi e / T_{max})}{1 + \cos(\pi (e - 1) / T_{max})}

    except where the denominator is 0 (``(e - 1 - T_max) % (2 T_max) == 0``, just past each
    minimum), where it adds ``(base_lr - eta_min) * (1 - cos(pi / T_max)) / 2``. There is no
    restart: past ``T_max`` the lr climbs back to ``base_lr`` by ``2 T_max`` and keeps oscillating.

    Example:
        >>> sched = CosineAnnealingLR(opt, T_max=100, eta_min=1e-5)
        >>> for epoch in range(100):
        ...     train_one_epoch(); sched.step()
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        _check_real("CosineAnnealingLR", "eta_min", eta_min)
        self.T_max = int(T_max)
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        e, t_max, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and e > 0:
            return [
                eta_min + (base - eta_min) * (1 + math.cos(e * math.pi / t_max)) / 2 for base in self.base_lrs
            ]
        if (e - 1 - t_max) % (2 * t_max) == 0:
            return [
                lr + (base - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                for base, lr in zip(self.base_lrs, self._current_lrs(), strict=True)
            ]
        ratio = (1 + math.cos(math.pi * e / t_max)) / (1 + math.cos(math.pi * (e - 1) / t_max))
        return [ratio * (lr - eta_min) + eta_min for lr in self._current_lrs()]

    def _get_closed_form_lr(self) -> list[float]:
        return [
            self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
            for base in self.base_lrs
        ]
