"""Route calls whose input or output has no elements to :class:`convscope.ops.empty.EmptyOp`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ...autograd.tensor import Tensor
from ...ops.empty import EmptyOp


def empty_result(
    out_shape: Sequence[int],
    inputs: Iterable[object],
    bias: Tensor | None = None,
    bias_axis: int = 1,
    extra_int_output: bool = False,
) -> Any:
    """Record an :class:`EmptyOp` over ``inputs`` (Tensors; the first one sets the dtype).

    Args:
        out_shape (tuple): the op's output shape.
        inputs (sequence of Tensor): the op's differentiable inputs other than the bias.
        bias (Tensor or None): added along ``bias_axis`` (C_out of a conv, out_features of linear).
        extra_int_output (bool): also return int64 zeros (indices) of ``out_shape``.

    Returns:
        Tensor, or (Tensor, int64 Tensor) with ``extra_int_output``.
    """
    inputs = [t for t in inputs if isinstance(t, Tensor)]
    return EmptyOp.apply(tuple(int(v) for v in out_shape), bias_axis, bool(extra_int_output), bias, *inputs)


def is_empty(*tensors: Tensor | None) -> bool:
    """Whether any of ``tensors`` (None skipped) has no elements."""
    return any(t is not None and t.data.size == 0 for t in tensors)
