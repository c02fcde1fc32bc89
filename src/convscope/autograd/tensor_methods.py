"""Operators and math methods of :class:`Tensor`, attached in one place.

Python scalars take the tensor's dtype (a float scalar with an integer
tensor gives float32), so ``x * 0.5`` stays float32.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..ops import math as M
from ..ops import shape as S
from .tensor import Tensor, _key, float32


def _operand(self: Tensor, other):
    if isinstance(other, Tensor):
        return other
    if isinstance(other, numbers.Number) and not isinstance(other, np.ndarray):
        if self.dtype.kind != "f" and isinstance(other, float):
            return Tensor._wrap(np.asarray(other, dtype=float32), False)
        return Tensor._wrap(np.asarray(other, dtype=self.dtype), False)
    return Tensor._wrap(np.asarray(other), False)


def _int_to_float(a: Tensor, b: Tensor):
    """True division of integer tensors gives float32, as in PyTorch."""
    if a.dtype.kind != "f" and b.dtype.kind != "f":
        return a.to(float32), b.to(float32)
    return a, b


def _binary(op, swap=False):
    def method(self, other):
        other = _operand(self, other)
        return op.apply(other, self) if swap else op.apply(self, other)

    return method


def _div(self, other):
    a, b = _int_to_float(self, _operand(self, other))
    return M.DivOp.apply(a, b)


def _rdiv(self, other):
    a, b = _int_to_float(_operand(self, other), self)
    return M.DivOp.apply(a, b)


def _pow(self, exponent):
    if isinstance(exponent, Tensor):
        raise TypeError("tensor ** tensor is not supported; use exp(b * log(a))")
    return M.PowOp.apply(self, np.asarray(exponent, dtype=self.dtype))


def _compare(fn):
    def method(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(fn(self.data, other), False)

    return method


def _reshape(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return S.ReshapeOp.apply(self, shape)


def _permute(self, *dims):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return S.PermuteOp.apply(self, tuple(d % self.ndim for d in dims))


def _transpose(self, dim0, dim1):
    dims = list(range(self.ndim))
    dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
    return S.PermuteOp.apply(self, tuple(dims))


def _flatten(self, start_dim=0, end_dim=-1):
    if self.ndim == 0:
        return _reshape(self, 1)
    start, end = start_dim % self.ndim, end_dim % self.ndim
    merged = math.prod(self.shape[start : end + 1])  # explicit, not -1: an empty tensor has no -1
    shape = self.shape[:start] + (merged,) + self.shape[end + 1 :]
    return S.ReshapeOp.apply(self, shape)


def _unsqueeze(self, dim):
    dim = dim % (self.ndim + 1)
    return S.ReshapeOp.apply(self, self.shape[:dim] + (1,) + self.shape[dim:])


def _squeeze(self, dim=None):
    if dim is None:
        shape = tuple(n for n in self.shape if n != 1)
    else:
        dim = dim % self.ndim
        shape = self.shape if self.shape[dim] != 1 else self.shape[:dim] + self.shape[dim + 1 :]
    return S.ReshapeOp.apply(self, shape)


def _expand(self, *shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    lead = len(shape) - self.ndim
    full = tuple(self.shape[i - lead] if (n == -1 and i >= lead) else n for i, n in enumerate(shape))
    return S.ExpandOp.apply(self, full)


def _getitem(self, key):
    return S.IndexOp.apply(self, _key(key))


def _max(self, dim=None, keepdim=False):
    return M.MaxReduceOp.apply(self, dim=dim, keepdim=keepdim)


def _min(self, dim=None, keepdim=False):
    return M.MaxReduceOp.apply(self, dim=dim, keepdim=keepdim, use_min=True)


def _argmax(self, dim=None, keepdim=False):
    if dim is None:
        return Tensor._wrap(np.asarray(np.argmax(self.data)), False)
    return Tensor._wrap(np.argmax(self.data, axis=dim, keepdims=keepdim), False)


def _var(self, dim=None, unbiased=True, keepdim=False, correction=None):
    corr = (1 if unbiased else 0) if correction is None else correction
    return M.VarOp.apply(self, dim=dim, correction=corr, keepdim=keepdim)


def _std(self, dim=None, unbiased=True, keepdim=False):
    return _var(self, dim, unbiased, keepdim).sqrt()


def _nn(name):
    def method(self, *args, **kwargs):
        from ..nn import functional as F

        return getattr(F, name)(self, *args, **kwargs)

    method.__name__ = name
    return method


_METHODS = {
    "__add__": _binary(M.AddOp),
    "__radd__": _binary(M.AddOp, swap=True),
    "__sub__": _binary(M.SubOp),
    "__rsub__": _binary(M.SubOp, swap=True),
    "__mul__": _binary(M.MulOp),
    "__rmul__": _binary(M.MulOp, swap=True),
    "__matmul__": _binary(M.MatMulOp),
    "__rmatmul__": _binary(M.MatMulOp, swap=True),
    "__truediv__": _div,
    "__rtruediv__": _rdiv,
    "__neg__": lambda self: M.NegOp.apply(self),
    "__pos__": lambda self: self,
    "__pow__": _pow,
    "__lt__": _compare(np.less),
    "__le__": _compare(np.less_equal),
    "__gt__": _compare(np.greater),
    "__ge__": _compare(np.greater_equal),
    "__eq__": _compare(np.equal),
    "__ne__": _compare(np.not_equal),
    "__getitem__": _getitem,
    "add": _binary(M.AddOp),
    "sub": _binary(M.SubOp),
    "mul": _binary(M.MulOp),
    "div": _div,
    "matmul": _binary(M.MatMulOp),
    "pow": _pow,
    "exp": lambda self: M.ExpOp.apply(self),
    "log": lambda self: M.LogOp.apply(self),
    "sqrt": lambda self: M.SqrtOp.apply(self),
    "abs": lambda self: M.AbsOp.apply(self),
    "clamp": lambda self, min=None, max=None: M.ClampOp.apply(self, min, max),
    "sum": lambda self, dim=None, keepdim=False: M.SumOp.apply(self, dim=dim, keepdim=keepdim),
    "mean": lambda self, dim=None, keepdim=False: M.MeanOp.apply(self, dim=dim, keepdim=keepdim),
    "var": _var,
    "std": _std,
    "max": _max,
    "min": _min,
    "argmax": _argmax,
    "argmin": lambda self, dim=None, keepdim=False: Tensor._wrap(
        np.asarray(np.argmin(self.data, axis=dim, keepdims=keepdim if dim is not None else False)), False
    ),
    "reshape": _reshape,
    "view": _reshape,
    "permute": _permute,
    "transpose": _transpose,
    "flatten": _flatten,
    "unsqueeze": _unsqueeze,
    "squeeze": _squeeze,
    "expand": _expand,
    "relu": _nn("relu"),
    "sigmoid": _nn("sigmoid"),
    "tanh": _nn("tanh"),
    "softmax": _nn("softmax"),
    "log_softmax": _nn("log_softmax"),
}

for _name, _fn in _METHODS.items():
    setattr(Tensor, _name, _fn)
