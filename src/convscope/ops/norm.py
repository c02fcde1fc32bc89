"""Batch normalisation as one tape node with a fused backward (kernels in kernels/batchnorm.py).

Statistics are per channel over every axis but axis 1: (N,) for (N, C) input,
(N, H, W) for (N, C, H, W).
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..kernels.dispatch import call, call_on


class BatchNormTrainOp(Function):
    """Normalise with the batch's own mean and biased variance; with ``relu`` (a BatchNorm2d
    followed by a ReLU, see :mod:`convscope.nn.functional._fused`) the ReLU too, in the same
    passes forward and backward.

    Returns the output plus (mean, biased var) as extras so the caller can
    update the running statistics.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps, relu=False):
        (out, mean, var, invstd), ctx.backend = call(
            "batchnorm", "batch_norm_train_forward", x, weight, bias, eps, relu
        )
        ctx.x, ctx.mean, ctx.invstd, ctx.weight = x, mean, invstd, weight
        ctx.relu_out = out if relu else None
        return out, mean, var

    @staticmethod
    def backward(ctx, g):
        gx, gw, gb = call_on(
            ctx.backend,
            "batchnorm",
            "batch_norm_train_backward",
            g,
            ctx.x,
            ctx.mean,
            ctx.invstd,
            ctx.weight,
            ctx.needs_input_grad[0],
            ctx.relu_out,
        )
        need = ctx.needs_input_grad
        return (gx, gw if need[1] else None, gb if need[2] else None, None, None)


def eval_affine(dtype, mean, var, weight, bias, eps):
    """(scale, shift, invstd) of eval-mode batch norm: ``out = x * scale + shift`` per channel."""
    invstd = 1 / np.sqrt(var + dtype.type(eps))
    scale = invstd if weight is None else invstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return scale, shift, invstd


class BatchNormEvalOp(Function):
    """Normalise with given (running) statistics: an affine map per channel."""

    @staticmethod
    def forward(ctx, x, mean, var, weight, bias, eps):
        scale, shift, invstd = eval_affine(x.dtype, mean, var, weight, bias, eps)
        ctx.x, ctx.scale, ctx.invstd, ctx.mean = x, scale, invstd, mean
        return call("batchnorm", "channel_affine", x, scale, shift)[0]

    @staticmethod
    def backward(ctx, g):
        gx = g * ctx.scale.reshape((1, -1) + (1,) * (g.ndim - 2)) if ctx.needs_input_grad[0] else None
        gw = gb = None
        if ctx.needs_input_grad[3]:
            xhat = call("batchnorm", "channel_affine", ctx.x, ctx.invstd, -ctx.mean * ctx.invstd)[0]
            gw = call("batchnorm", "channel_sums", g, xhat)[0]
        if ctx.needs_input_grad[4]:
            gb = call("batchnorm", "channel_sums", g)[0]
        return gx, None, None, gw, gb, None
