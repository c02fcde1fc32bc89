"""Pooling, padding and resampling as tape nodes (pooling on the active backend's kernels)."""

from __future__ import annotations

from ..autograd.function import Function
from ..kernels import pad as KP
from ..kernels import resample as KR
from ..kernels.dispatch import call, call_on
from ..kernels.geometry import ConvGeometry


class MaxPool2dOp(Function):
    """Returns (out, indices) when the indices are asked for or backward needs them, else out;
    indices are flat h*W + w positions in each input plane. ``padding`` is
    ((top, bottom), (left, right)), symmetric."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, ceil_mode, return_indices=False):
        need = return_indices or ctx.needs_input_grad[0]
        (out, idx), ctx.backend = call(
            "pool", "max_pool2d_forward", x, kernel, stride, padding, dilation, ceil_mode, need
        )
        ctx.idx, ctx.shape = idx, x.shape
        ctx.geometry = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        return (out, idx) if need else out

    @staticmethod
    def backward(ctx, g):
        return (call_on(ctx.backend, "pool", "max_pool2d_backward", g, ctx.idx, ctx.shape),) + (None,) * 6


class AvgPool2dOp(Function):
    """``padding`` is ((top, bottom), (left, right)), symmetric."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
        ctx.args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
        ctx.shape = x.shape
        ctx.geometry = ConvGeometry.conv(x.shape[2:], kernel, stride, padding, ceil_mode=ceil_mode)
        out, ctx.backend = call("pool", "avg_pool2d_forward", x, *ctx.args)
        return out

    @staticmethod
    def backward(ctx, g):
        return (call_on(ctx.backend, "pool", "avg_pool2d_backward", g, ctx.shape, *ctx.args),) + (None,) * 6


class AdaptiveAvgPool2dOp(Function):
    @staticmethod
    def forward(ctx, x, output_size):
        ctx.shape = x.shape
        out, ctx.backend = call("pool", "adaptive_avg_pool2d_forward", x, output_size)
        return out

    @staticmethod
    def backward(ctx, g):
        return call_on(ctx.backend, "pool", "adaptive_avg_pool2d_backward", g, ctx.shape), None


class AdaptiveMaxPool2dOp(Function):
    @staticmethod
    def forward(ctx, x, output_size):
        (out, idx), ctx.backend = call("pool", "adaptive_max_pool2d_forward", x, output_size)
        ctx.idx, ctx.shape = idx, x.shape
        return out, idx

    @staticmethod
    def backward(ctx, g):
        return call_on(ctx.backend, "pool", "adaptive_max_pool2d_backward", g, ctx.idx, ctx.shape), None


class PadOp(Function):
    @staticmethod
    def forward(ctx, x, pads, mode, value):
        ctx.shape, ctx.pads, ctx.mode = x.shape, pads, mode
        return KP.pad_forward(x, pads, mode, value)

    @staticmethod
    def backward(ctx, g):
        return KP.pad_backward(g, ctx.shape, ctx.pads, ctx.mode), None, None, None


class InterpolateOp(Function):
    @staticmethod
    def forward(ctx, x, size, mode, align_corners, scale_factor):
        ctx.shape, ctx.args = x.shape, (size, mode, align_corners, scale_factor)
        return KR.interpolate_forward(x, size, mode, align_corners, scale_factor)

    @staticmethod
    def backward(ctx, g):
        return (KR.interpolate_backward(g, ctx.shape, *ctx.args),) + (None,) * 4
