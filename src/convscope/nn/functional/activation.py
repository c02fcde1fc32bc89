"""Activation functions (torch.nn.functional names and defaults)."""

from __future__ import annotations

import numpy as np

from ...autograd.tensor import DTypeLike, Tensor
from ...ops import activation as A
from ._checks import check_float, check_tensor
from ._empty import empty_result, is_empty


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) elementwise. ``inplace`` is accepted for PyTorch compatibility and ignored."""
    check_tensor(input, "relu")
    return A.ReLUOp.apply(input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x (floating-point input, as in PyTorch)."""
    check_tensor(input, "leaky_relu")
    check_float(input, "leaky_relu")
    return A.LeakyReLUOp.apply(input, float(negative_slope))


def _float_input(input: Tensor, name: str) -> Tensor:
    """Integer or bool input becomes float32, PyTorch's default dtype (sigmoid, tanh)."""
    check_tensor(input, name)
    return input.to(np.float32) if input.dtype.kind in "biu" else input


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow; integer input gives float32."""
    return A.SigmoidOp.apply(_float_input(input, "sigmoid"))


def tanh(input: Tensor) -> Tensor:
    """tanh(x); integer input gives float32."""
    return A.TanhOp.apply(_float_input(input, "tanh"))


def _dim(input: Tensor, dim: int | None, name: str) -> int:
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if input.ndim in (0, 1, 3) else 1
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{name}: dim must be an int (or None), got {type(dim).__name__} {dim!r}")
    n = max(input.ndim, 1)  # a 0-d input has one dim, as in PyTorch: 0 or -1
    if not -n <= dim < n:
        raise ValueError(
            f"{name}: dim {dim} is out of range for a {input.ndim}-D input; expected one in [{-n}, {n - 1}]"
        )
    return dim % n


def _softmax_input(input: Tensor, dim: int | None, dtype: DTypeLike | None, name: str) -> tuple[Tensor, int]:
    check_tensor(input, name)
    if dtype is not None:  # PyTorch casts before the op (e.g. to float64 for accuracy)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(
                f"{name}: dtype must be a NumPy dtype such as convscope.float64, got {dtype!r}"
            ) from None
        input = input.to(dtype)
    check_float(input, name)
    return input, _dim(input, dim, name)


def softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: DTypeLike | None = None
) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (stable: the max is subtracted first).

    Args:
        input (Tensor): any shape, 0-d and empty included (an empty input gives an empty output).
        dim (int or None): the axis to normalise; None picks PyTorch's legacy default.
        _stacklevel (int): accepted for PyTorch compatibility and ignored.
        dtype (dtype or None): cast the input to this dtype first.

    Example:
        >>> F.softmax(convscope.randn(2, 10), dim=1).shape
        (2, 10)
    """
    input, dim = _softmax_input(input, dim, dtype, "softmax")
    if is_empty(input):
        return empty_result(input.shape, [input])
    return A.SoftmaxOp.apply(input, dim)


def log_softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: DTypeLike | None = None
) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably; arguments as :func:`softmax`."""
    input, dim = _softmax_input(input, dim, dtype, "log_softmax")
    if is_empty(input):
        return empty_result(input.shape, [input])
    return A.LogSoftmaxOp.apply(input, dim)
