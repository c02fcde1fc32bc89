"""Elementwise arithmetic, matmul and reductions as tape nodes.

Binary ops broadcast like NumPy; their backward sums the gradient back over
the broadcast axes (:func:`unbroadcast`).
"""

from __future__ import annotations

import numpy as np

from ..autograd.function import Function
from ..kernels.dispatch import call, call_on


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape`` (the inverse of NumPy broadcasting)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


class AddOp(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return call("elementwise", "add", a, b)[0]

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (
            unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
            unbroadcast(g, sb) if ctx.needs_input_grad[1] else None,
        )


class AddReLUOp(Function):
    """``max(a + b, 0)`` for two same-shape arrays (a residual connection and its ReLU) as one
    node: one forward pass, and one backward pass whose masked gradient goes to both inputs
    (the engine sums gradients into new arrays, so sharing one is safe)."""

    @staticmethod
    def forward(ctx, a, b):
        out, ctx.backend = call("elementwise", "add_relu", a, b)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        gx = call_on(ctx.backend, "elementwise", "relu_backward", g, ctx.out)
        return (gx if ctx.needs_input_grad[0] else None, gx if ctx.needs_input_grad[1] else None)


class SubOp(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (
            unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
            unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None,
        )


class MulOp(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        return (
            unbroadcast(g * b, np.shape(a)) if ctx.needs_input_grad[0] else None,
            unbroadcast(g * a, np.shape(b)) if ctx.needs_input_grad[1] else None,
        )


class DivOp(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = unbroadcast(g / b, np.shape(a)) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), np.shape(b)) if ctx.needs_input_grad[1] else None
        return ga, gb


class NegOp(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return (-g,)


class PowOp(Function):
    """``a ** p`` for a constant exponent ``p`` (a scalar of a's dtype)."""

    @staticmethod
    def forward(ctx, a, p):
        ctx.a, ctx.p = a, p
        return a**p

    @staticmethod
    def backward(ctx, g):
        a, p = ctx.a, ctx.p
        return (g * p * a ** (p - 1), None)


class ExpOp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.out,)


class LogOp(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.log(a)

    @staticmethod
    def backward(ctx, g):
        return (g / ctx.a,)


class SqrtOp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx, g):
        return (g / (2 * ctx.out),)


class AbsOp(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return (g * np.sign(ctx.a),)


class ClampOp(Function):
    """Clip to [lo, hi]; the gradient passes where the input was inside (ends included)."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        ctx.mask = np.ones(a.shape, dtype=bool)
        if lo is not None:
            ctx.mask &= a >= lo
        if hi is not None:
            ctx.mask &= a <= hi
        return np.clip(a, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.mask, None, None)


class MatMulOp(Function):
    """``a @ b`` with NumPy's matmul rules (1-D, 2-D and batched).

    2-D products (forward and backward) run on the kernel threads (see
    :mod:`convscope.kernels.gemm`); the others through NumPy's matmul.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return _mm(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = gb = None
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(_mm(g2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = unbroadcast(_mm(np.swapaxes(a2, -1, -2), g2), b2.shape).reshape(b.shape)
        return ga, gb


def _mm(a, b):
    """a @ b: 2-D x 2-D on the kernel threads, anything else by NumPy."""
    return call("gemm", "matmul", a, b)[0] if a.ndim == 2 and b.ndim == 2 else a @ b


def _axes(dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, int):
        dim = (dim,)
    return tuple(d % ndim if ndim else 0 for d in dim)


class SumOp(Function):
    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        ctx.shape, ctx.axes, ctx.keepdim = a.shape, axes, keepdim
        return np.asarray(a.sum(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.axes)
        return (np.broadcast_to(g, ctx.shape),)


class MeanOp(Function):
    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False):
        axes = _axes(dim, a.ndim)
        ctx.shape, ctx.axes, ctx.keepdim = a.shape, axes, keepdim
        ctx.count = int(np.prod([a.shape[i] for i in axes])) if axes else 1
        return np.asarray(a.mean(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.axes)
        scale = np.asarray(1.0 / ctx.count, dtype=g.dtype)
        return (np.broadcast_to(g * scale, ctx.shape),)


class VarOp(Function):
    """Variance over ``dim`` with ``correction`` (1 = unbiased, as torch.var's default)."""

    @staticmethod
    def forward(ctx, a, dim=None, correction=1, keepdim=False):
        axes = _axes(dim, a.ndim)
        count = int(np.prod([a.shape[i] for i in axes])) if axes else 1
        mean = a.mean(axis=axes, keepdims=True)
        centred = a - mean
        ctx.centred, ctx.axes, ctx.keepdim = centred, axes, keepdim
        denom = max(count - correction, 0)
        ctx.denom = denom
        return np.asarray((centred * centred).sum(axis=axes, keepdims=keepdim) / a.dtype.type(denom))

    @staticmethod
    def backward(ctx, g):
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.axes)
        scale = np.asarray(2.0 / ctx.denom, dtype=g.dtype)
        return (g * scale * ctx.centred, None, None, None)


class MaxReduceOp(Function):
    """Max (or min) over one dim or all; the gradient goes to the first extreme element."""

    @staticmethod
    def forward(ctx, a, dim=None, keepdim=False, use_min=False):
        pick = np.argmin if use_min else np.argmax
        if dim is None:
            flat = a.reshape(-1)
            flat_idx = pick(flat)
            ctx.shape, ctx.dim, ctx.idx = a.shape, None, flat_idx
            return np.asarray(flat[flat_idx])
        dim = dim % a.ndim
        idx = np.expand_dims(pick(a, axis=dim), dim)
        out = np.take_along_axis(a, idx, axis=dim)
        ctx.shape, ctx.dim, ctx.idx = a.shape, dim, idx
        return out if keepdim else np.squeeze(out, dim), (idx if keepdim else np.squeeze(idx, dim))

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=g.dtype)
        if ctx.dim is None:
            grad.reshape(-1)[ctx.idx] = g
        else:
            g = g.reshape(ctx.idx.shape)
            np.put_along_axis(grad, ctx.idx, g, axis=ctx.dim)
        return (grad, None, None, None)
