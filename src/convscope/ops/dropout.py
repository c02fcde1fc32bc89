"""Inverted dropout as a tape node: the mask is drawn in forward and reused in backward."""

from __future__ import annotations

from ..autograd.function import Function


class DropoutOp(Function):
    @staticmethod
    def forward(ctx, x, p, rng):
        keep = rng.random(x.shape, dtype=x.dtype) >= p
        scale = x.dtype.type(1.0 / (1.0 - p))
        mask = keep * scale  # same dtype as x
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.mask, None, None)
