"""Activation functions as tape nodes (each backward uses the saved output where it can)."""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..kernels.dispatch import call


class ReLUOp(Function):
    @staticmethod
    def forward(ctx, x):
        out = call("elementwise", "relu_forward", x)[0]
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        return (call("elementwise", "relu_backward", g, ctx.out)[0],)


class LeakyReLUOp(Function):
    @staticmethod
    def forward(ctx, x, negative_slope):
        slope = x.dtype.type(negative_slope)
        ctx.x, ctx.slope = x, slope
        return np.where(x > 0, x, x * slope)

    @staticmethod
    def backward(ctx, g):
        return (np.where(ctx.x > 0, g, g * ctx.slope), None)


class SigmoidOp(Function):
    @staticmethod
    def forward(ctx, x):
        # split by sign so exp never overflows
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1 / (1 + np.exp(-x[pos]))
        e = np.exp(x[~pos])
        out[~pos] = e / (1 + e)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.out
        return (g * out * (1 - out),)


class TanhOp(Function):
    @staticmethod
    def forward(ctx, x):
        out = np.tanh(x)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.out
        return (g * (1 - out * out),)


class SoftmaxOp(Function):
    @staticmethod
    def forward(ctx, x, dim):
        shifted = x - x.max(axis=dim, keepdims=True)
        e = np.exp(shifted)
        out = e / e.sum(axis=dim, keepdims=True)
        ctx.out, ctx.dim = out, dim
        return out

    @staticmethod
    def backward(ctx, g):
        out = ctx.out
        return (out * (g - (g * out).sum(axis=ctx.dim, keepdims=True)), None)


class LogSoftmaxOp(Function):
    @staticmethod
    def forward(ctx, x, dim):
        shifted = x - x.max(axis=dim, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.out, ctx.dim = out, dim
        return out

    @staticmethod
    def backward(ctx, g):
        return (g - np.exp(ctx.out) * g.sum(axis=ctx.dim, keepdims=True), None)
