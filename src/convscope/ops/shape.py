"""Shape and indexing ops as tape nodes: reshape, permute, index, cat, stack, expand."""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from .math import unbroadcast


class ReshapeOp(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return (g.reshape(ctx.shape), None)


class PermuteOp(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.inverse = tuple(np.argsort(dims))
        return a.transpose(dims)

    @staticmethod
    def backward(ctx, g):
        return (g.transpose(ctx.inverse), None)


class ExpandOp(Function):
    """Broadcast to a larger shape (a read-only view); backward sums back."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx, g):
        return (unbroadcast(g, ctx.shape), None)


class IndexOp(Function):
    """``a[key]`` for basic and advanced NumPy indexing."""

    @staticmethod
    def forward(ctx, a, key):
        ctx.shape, ctx.dtype, ctx.key = a.shape, a.dtype, key
        return a[key]

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        if _is_basic(ctx.key):
            grad[ctx.key] = g
        else:  # repeated advanced indices must accumulate
            np.add.at(grad, ctx.key, g)
        return (grad, None)


def _is_basic(key) -> bool:
    items = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (int, np.integer, slice)) or k is None or k is Ellipsis for k in items)


class CatOp(Function):
    """Concatenate along ``dim``; inputs are the tensors themselves (variadic)."""

    @staticmethod
    def forward(ctx, *arrays, dim=0):
        dim = dim % arrays[0].ndim
        ctx.dim = dim
        ctx.bounds = np.cumsum([0] + [a.shape[dim] for a in arrays])
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        out: list[np.ndarray | None] = []
        for i, need in enumerate(ctx.needs_input_grad):
            if not need:
                out.append(None)
                continue
            sl = [slice(None)] * g.ndim
            sl[ctx.dim] = slice(int(ctx.bounds[i]), int(ctx.bounds[i + 1]))
            out.append(g[tuple(sl)])
        return tuple(out)


class StackOp(Function):
    @staticmethod
    def forward(ctx, *arrays, dim=0):
        out = np.stack(arrays, axis=dim)
        ctx.dim = dim % out.ndim
        return out

    @staticmethod
    def backward(ctx, g):
        return tuple(
            np.take(g, i, axis=ctx.dim) if need else None for i, need in enumerate(ctx.needs_input_grad)
        )


class WhereOp(Function):
    """``where(cond, a, b)``: elementwise choice; gradients follow the choice."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.sa, ctx.sb = cond, np.shape(a), np.shape(b)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        zero = np.zeros((), dtype=g.dtype)
        ga = unbroadcast(np.where(ctx.cond, g, zero), ctx.sa) if ctx.needs_input_grad[1] else None
        gb = unbroadcast(np.where(ctx.cond, zero, g), ctx.sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb
