"""The result of an op whose input or output has no elements, as one tape node.

PyTorch answers an empty batch (or zero channels) without running a kernel: the output is
empty, or, when only the summed axis is empty (a convolution or linear map over zero input
channels/features), every output element is an empty sum, i.e. the bias. The functional ops
hand such calls to :class:`EmptyOp` instead of their kernels, so no backend ever sees a
zero-size array and every backend gives the same answer.

Gradients: every input gets zeros of its own shape (empty when it is empty), except the bias,
which collects the upstream gradient summed over every axis but ``bias_axis``.
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function


class EmptyOp(Function):
    """Forward: zeros of ``out_shape`` (plus the bias broadcast along ``bias_axis``), input's dtype.

    ``extra_int_output`` adds an int64 zeros tensor of the same shape (max-pool indices).
    """

    @staticmethod
    def forward(ctx, out_shape, bias_axis, extra_int_output, bias, *inputs):
        dtype = inputs[0].dtype
        out = np.zeros(out_shape, dtype)
        if bias is not None:
            view = [1] * len(out_shape)
            view[bias_axis] = -1
            out += bias.astype(dtype, copy=False).reshape(view)  # (C_out,) -> (1, C_out, 1, ...)
        ctx.shapes = [a.shape for a in inputs]
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.bias_axis = bias_axis
        if extra_int_output:
            return out, np.zeros(out_shape, np.int64)
        return out

    @staticmethod
    def backward(ctx, g):
        gb = None
        if ctx.bias_shape is not None and ctx.needs_input_grad[3]:
            axes = tuple(a for a in range(g.ndim) if a != ctx.bias_axis % g.ndim)
            gb = g.sum(axis=axes).astype(g.dtype, copy=False)
        grads = [np.zeros(s, g.dtype) for s in ctx.shapes]
        return (None, None, None, gb, *grads)
