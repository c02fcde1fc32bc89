"""SGD with optional momentum, dampening, Nesterov momentum, L2 weight decay and maximize."""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, check_number

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, with PyTorch's exact update rule.

    Args:
        params (iterable): Parameters or param-group dicts (see :class:`Optimizer`).
        lr (float, default 1e-3): learning rate, >= 0.
        momentum (float, default 0): momentum factor :math:`\mu`, >= 0.
        dampening (float, default 0): dampening :math:`\tau` of the momentum.
        weight_decay (float, default 0): L2 penalty :math:`\lambda`, >= 0.
        nesterov (bool, default False): Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize (bool, default False): ascend instead of descend.

    Update, at step t for each parameter :math:`\theta` with gradient :math:`g`::

        g   = -grad if maximize else grad
        g   = g + lambda * theta                      (if weight_decay != 0)
        b_1 = g                                       (first step: no dampening)
        b_t = mu * b_{t-1} + (1 - tau) * g            (t > 1; if momentum != 0)
        g   = g + mu * b_t if nesterov else b_t       (if momentum != 0)
        theta = theta - lr * g

    State per parameter: ``'momentum_buffer'`` (only when momentum != 0). All arithmetic stays
    in the parameter's dtype.

    Raises:
        ValueError: lr, momentum or weight_decay negative; nesterov without momentum or with
            dampening.

    Example:
        >>> opt = convscope.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        super()._check_options(options)
        check_number(self._name, "momentum", options["momentum"], 0.0)
        check_number(self._name, "weight_decay", options["weight_decay"], 0.0)
        check_number(self._name, "dampening", options["dampening"], float("-inf"))
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(
                f"{self._name}: nesterov=True needs momentum > 0 and dampening == 0, "
                f"got momentum={options['momentum']!r}, "
                f"dampening={options['dampening']!r}"
            )

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        cast = param.dtype.type  # Python/NumPy-float64 constants would upcast float32 arrays
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if weight_decay != 0:
            g = g + cast(weight_decay) * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)  # never alias p.grad
            else:
                buf *= cast(momentum)
                buf += cast(1 - group["dampening"]) * g
            g = g + cast(momentum) * buf if group["nesterov"] else buf
        param -= cast(group["lr"]) * g
