"""Batch normalisation as one tape node with a fused, vectorised backward.

Statistics are per channel over every axis but axis 1: (N,) for (N, C) input,
(N, H, W) for (N, C, H, W).
"""
from __future__ import annotations

import numpy as np

from ..autograd.function import Function


def _channel_view(a: np.ndarray) -> np.ndarray:
    """(N, C, *) -> (N, C, L) view, L = prod(*) (1 for 2-D input)."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def _per_channel_sum(a3: np.ndarray) -> np.ndarray:
    """Sum of a (N, C, L) array over N and L -> (C,)."""
    return a3.sum(axis=2).sum(axis=0)


def _bcast(v: np.ndarray, ndim: int) -> np.ndarray:
    """(C,) -> (1, C, 1, ...) to broadcast against an ndim-dimensional input."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


class BatchNormTrain(Function):
    """Normalise with the batch's own mean and biased variance.

    Returns the output plus (mean, biased var) as extras so the caller can
    update the running statistics.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        x3 = _channel_view(x)                                   # (N, C, L)
        count = x3.shape[0] * x3.shape[2]
        mean = _per_channel_sum(x3) / x.dtype.type(count)       # (C,)
        centred = x - _bcast(mean, x.ndim)
        c3 = _channel_view(centred)
        var = _per_channel_sum(c3 * c3) / x.dtype.type(count)   # biased, (C,)
        invstd = 1 / np.sqrt(var + x.dtype.type(eps))
        xhat = centred * _bcast(invstd, x.ndim)
        out = xhat
        if weight is not None:
            out = xhat * _bcast(weight, x.ndim) + _bcast(bias, x.ndim)
        ctx.xhat, ctx.invstd, ctx.weight, ctx.count = xhat, invstd, weight, count
        return out, mean, var

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, w = ctx.xhat, ctx.invstd, ctx.weight
        nd = g.ndim
        g3 = _channel_view(g)
        gsum = _per_channel_sum(g3)                              # (C,) = dbias
        gxhat_sum = _per_channel_sum(g3 * _channel_view(xhat))   # (C,) = dweight
        gx = None
        if ctx.needs_input_grad[0]:
            scale = invstd if w is None else invstd * w
            m = g.dtype.type(ctx.count)
            gx = (g - _bcast(gsum / m, nd) - xhat * _bcast(gxhat_sum / m, nd)) * _bcast(scale, nd)
        gw = gxhat_sum if ctx.needs_input_grad[1] else None
        gb = gsum if ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


class BatchNormEval(Function):
    """Normalise with given (running) statistics: an affine map per channel."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, eps):
        invstd = 1 / np.sqrt(var + x.dtype.type(eps))
        scale = invstd if weight is None else invstd * weight
        shift = -mean * scale if bias is None else bias - mean * scale
        ctx.x, ctx.scale, ctx.invstd, ctx.mean = x, scale, invstd, mean
        return x * _bcast(scale, x.ndim) + _bcast(shift, x.ndim)

    @staticmethod
    def backward(ctx, g):
        nd = g.ndim
        gx = g * _bcast(ctx.scale, nd) if ctx.needs_input_grad[0] else None
        gw = gb = None
        if ctx.needs_input_grad[3]:
            xhat = (ctx.x - _bcast(ctx.mean, nd)) * _bcast(ctx.invstd, nd)
            gw = _per_channel_sum(_channel_view(g * xhat))
        if ctx.needs_input_grad[4]:
            gb = _per_channel_sum(_channel_view(g))
        return gx, None, None, gw, gb, None
