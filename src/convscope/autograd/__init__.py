"""Tensor, the tape and reverse-mode differentiation."""

from .function import Context, Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .tensor import Tensor, bool_, float32, float64, int64, tensor

__all__ = [
    "Tensor",
    "tensor",
    "Function",
    "Context",
    "no_grad",
    "enable_grad",
    "is_grad_enabled",
    "set_grad_enabled",
    "float32",
    "float64",
    "int64",
    "bool_",
]
