"""Tensor factories (zeros, ones, randn, ...) and joining functions (cat, stack, where)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import random as _random
from ..ops import shape as S
from .tensor import DTypeLike, Tensor, float32


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:  # (ints...) or (a sequence of ints,)
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _make(array, dtype, requires_grad):
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape: int | Sequence[int], dtype: DTypeLike = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape: int | Sequence[int], dtype: DTypeLike = float32, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad)


def full(
    shape: Sequence[int], fill_value: float, dtype: DTypeLike = float32, requires_grad: bool = False
) -> Tensor:
    return Tensor(np.full(tuple(shape), fill_value, dtype=dtype), requires_grad)


def zeros_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(t.data), requires_grad)


def ones_like(t: Tensor, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(t.data), requires_grad)


def randn(
    *shape: int | Sequence[int],
    dtype: DTypeLike = float32,
    requires_grad: bool = False,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Standard normal samples from the global (or given) generator."""
    rng = generator or _random.default_generator()
    return _make(
        rng.standard_normal(_shape(shape), dtype=np.float32 if dtype == float32 else np.float64),
        dtype,
        requires_grad,
    )


def rand(
    *shape: int | Sequence[int],
    dtype: DTypeLike = float32,
    requires_grad: bool = False,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Uniform [0, 1) samples."""
    rng = generator or _random.default_generator()
    return _make(
        rng.random(_shape(shape), dtype=np.float32 if dtype == float32 else np.float64), dtype, requires_grad
    )


def randint(low: int, high: int, size: Sequence[int], generator: np.random.Generator | None = None) -> Tensor:
    rng = generator or _random.default_generator()
    return Tensor(rng.integers(low, high, size=tuple(size), dtype=np.int64))


def arange(*args: float, dtype: DTypeLike | None = None) -> Tensor:
    array = np.arange(*args)
    if dtype is None:
        dtype = np.int64 if array.dtype.kind in "iu" else float32
    return Tensor(array.astype(dtype))


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap an array without copying, keeping its dtype (as torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a NumPy array, got {type(array).__name__}")
    return Tensor._wrap(array, False)


def cat(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat() needs at least one tensor")
    return S.CatOp.apply(*tensors, dim=dim)


def stack(tensors: Iterable[Tensor], dim: int = 0) -> Tensor:
    """Join along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    return S.StackOp.apply(*tensors, dim=dim)


def where(condition: Tensor | npt.ArrayLike, a: Tensor | float, b: Tensor | float) -> Tensor:
    """Elementwise ``a`` where ``condition`` else ``b``."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if not isinstance(a, Tensor):
        a = Tensor._wrap(np.asarray(a, dtype=b.dtype if isinstance(b, Tensor) else float32), False)
    if not isinstance(b, Tensor):
        b = Tensor._wrap(np.asarray(b, dtype=a.dtype), False)
    return S.WhereOp.apply(cond, a, b)
