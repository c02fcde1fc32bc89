"""The fully connected layer ``y = x W^T + b`` as one tape node."""

from __future__ import annotations

from ..autograd.function import Function
from ..kernels.dispatch import call


def matmul(a, b):
    """2-D ``a @ b`` on the active backend."""
    return call("gemm", "matmul", a, b)[0]


class LinearOp(Function):
    """Shape: x (*, in_features), weight (out_features, in_features), bias (out_features,)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.x, ctx.weight, ctx.has_bias = x, weight, bias is not None
        # (*, in) -> (N*, in) @ (in, out) -> (*, out)
        out = matmul(x.reshape(-1, x.shape[-1]), weight.T).reshape(x.shape[:-1] + (weight.shape[0],))
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.x, ctx.weight
        need_x, need_w, need_b = ctx.needs_input_grad
        g2 = g.reshape(-1, g.shape[-1])  # (*, out) -> (N*, out_features)
        gx = matmul(g2, w).reshape(x.shape) if need_x else None
        gw = gb = None
        if need_w:
            x2 = x.reshape(-1, x.shape[-1])  # (N*, in_features)
            gw = matmul(g2.T, x2)  # (out_features, in_features)
        if need_b and ctx.has_bias:
            gb = g2.sum(axis=0)
        return gx, gw, gb
