"""dtype conversion as a tape node (the gradient converts back)."""

from __future__ import annotations

from ..autograd.function import Function


class CastOp(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return (g.astype(ctx.dtype), None)
