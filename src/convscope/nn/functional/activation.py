"""Activation functions (torch.nn.functional names and defaults)."""

from __future__ import annotations

from ...ops import activation as A
from ._checks import check_float, check_tensor


def relu(input, inplace: bool = False):
    """max(x, 0) elementwise. ``inplace`` is accepted for PyTorch compatibility and ignored."""
    check_tensor(input, "relu")
    return A.ReLUOp.apply(input)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x where x > 0, else negative_slope * x."""
    check_tensor(input, "leaky_relu")
    return A.LeakyReLUOp.apply(input, float(negative_slope))


def sigmoid(input):
    """1 / (1 + exp(-x)), computed without overflow."""
    check_tensor(input, "sigmoid")
    check_float(input, "sigmoid")
    return A.SigmoidOp.apply(input)


def tanh(input):
    check_tensor(input, "tanh")
    check_float(input, "tanh")
    return A.TanhOp.apply(input)


def _dim(input, dim, name):
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if not -input.ndim <= dim < max(input.ndim, 1):
        raise ValueError(f"{name}: dim {dim} is out of range for a {input.ndim}-D input")
    return dim % max(input.ndim, 1)


def softmax(input, dim: int | None = None):
    """exp(x) / sum(exp(x)) along ``dim`` (stable: the max is subtracted first).

    Example:
        >>> F.softmax(convscope.randn(2, 10), dim=1).shape
        (2, 10)
    """
    check_tensor(input, "softmax")
    check_float(input, "softmax")
    return A.SoftmaxOp.apply(input, _dim(input, dim, "softmax"))


def log_softmax(input, dim: int | None = None):
    """log(softmax(x)) along ``dim``, computed stably."""
    check_tensor(input, "log_softmax")
    check_float(input, "log_softmax")
    return A.LogSoftmaxOp.apply(input, _dim(input, dim, "log_softmax"))
