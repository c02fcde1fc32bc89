"""Adam and AdamW (decoupled weight decay), with PyTorch's exact formulas."""

from __future__ import annotations

from typing import Any

import numpy as np

from .optimizer import Optimizer, ParamsT, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam: per-element step sizes from running averages of the gradient and its square.

    Args:
        params (iterable): Parameters or param-group dicts (see :class:`Optimizer`).
        lr (float, default 1e-3): learning rate :math:`\gamma`, >= 0.
        betas (tuple of 2 floats, default (0.9, 0.999)): decay rates :math:`\beta_1, \beta_2`
            of the running averages, each in [0, 1).
        eps (float, default 1e-8): added to the denominator, >= 0.
        weight_decay (float, default 0): L2 penalty :math:`\lambda` added to the gradient, >= 0.
        amsgrad (bool, default False): divide by the running maximum of the second moment.
        maximize (bool, default False): ascend instead of descend.

    Update, at step t = 1, 2, ... for each parameter :math:`\theta`::

        g   = -grad if maximize else grad
        g   = g + lambda * theta                       (Adam, if weight_decay != 0)
        m_t = m_{t-1} + (1 - beta1) * (g - m_{t-1})    (= beta1 m + (1 - beta1) g, as torch's lerp)
        v_t = beta2 * v_{t-1} + (1 - beta2) * g * g
        v^  = max(v^_{t-1}, v_t) if amsgrad else v_t
        theta = theta - lr / (1 - beta1^t) * m_t / (sqrt(v^) / sqrt(1 - beta2^t) + eps)

    Note eps is added *after* dividing sqrt(v) by the bias correction, as in PyTorch. State per
    parameter: ``'step'`` (int), ``'exp_avg'``, ``'exp_avg_sq'`` and, with amsgrad,
    ``'max_exp_avg_sq'``, all arrays in the parameter's dtype.

    Raises:
        ValueError: lr, eps or weight_decay negative, or a beta outside [0, 1).

    Example:
        >>> opt = convscope.optim.Adam(model.parameters(), lr=3e-4)
        >>> loss.backward(); opt.step(); opt.state[next(iter(opt.state))]["step"]
        1
    """

    _decoupled = False

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize
        )
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        super()._check_options(options)
        check_number(self._name, "eps", options["eps"], 0.0)
        check_number(self._name, "weight_decay", options["weight_decay"], 0.0)
        betas = options["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._name}: invalid betas: expected a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_number(self._name, f"betas[{i}]", beta, 0.0, 1.0)

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        cast = param.dtype.type  # Python/NumPy-float64 constants would upcast float32 arrays
        lr, (beta1, beta2), wd = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            if self._decoupled:
                param *= cast(1 - lr * wd)
            else:
                g = g + cast(wd) * param
        m, v = state["exp_avg"], state["exp_avg_sq"]
        # torch's lerp(m, g, w): two algebraically equal forms, chosen by |w| for accuracy
        w = cast(1 - beta1)
        if abs(w) < 0.5:
            m += w * (g - m)
        else:
            m[...] = g - (g - m) * (cast(1) - w)
        v *= cast(beta2)
        v += cast(1 - beta2) * g * g
        bias_correction1 = 1 - beta1**step  # Python floats, as torch computes them
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:  # amsgrad switched on mid-run
                state["max_exp_avg_sq"] = np.zeros_like(param)
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v) / cast(bias_correction2_sqrt)
        denom += cast(group["eps"])
        param += cast(-(lr / bias_correction1)) * m / denom


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay (the decay shrinks the weights, not the gradient).

    Args:
        params (iterable): Parameters or param-group dicts (see :class:`Optimizer`).
        lr (float, default 1e-3): learning rate :math:`\gamma`, >= 0.
        betas (tuple of 2 floats, default (0.9, 0.999)): each in [0, 1).
        eps (float, default 1e-8): added to the denominator, >= 0.
        weight_decay (float, default 1e-2): decoupled decay :math:`\lambda`, >= 0.
        amsgrad (bool, default False): divide by the running maximum of the second moment.
        maximize (bool, default False): ascend instead of descend.

    Update: first ``theta = theta * (1 - lr * lambda)``, then the :class:`Adam` step with no
    L2 term in the gradient. Same state as :class:`Adam`.

    Raises:
        ValueError: lr, eps or weight_decay negative, or a beta outside [0, 1).

    Example:
        >>> opt = convscope.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
        >>> opt.param_groups[0]["weight_decay"]
        0.05
    """

    _decoupled = True

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize
        )
