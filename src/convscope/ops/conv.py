"""Convolution and transposed convolution as tape nodes over the kernels of the active backend.

``ctx.backend`` names the backend that ran the forward (its backward runs there too, see
:mod:`convscope.kernels.dispatch`); ``ctx.geometry`` is the op's
:class:`~convscope.kernels.geometry.ConvGeometry` (what the summary reads);
``ctx.saved_conv`` is whatever the kernel's forward returned for its backward.
"""

from __future__ import annotations

from ..autograd.function import Function
from ..kernels.dispatch import call, call_on
from ..kernels.geometry import ConvGeometry


class Conv2dOp(Function):
    """Shape: x (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW) -> (N, C_out, H_out, W_out).

    ``padding`` is ((top, bottom), (left, right)) zeros, already resolved.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        (out, saved), ctx.backend = call(
            "conv", "conv2d_forward", x, weight, bias, stride, padding, dilation, groups
        )
        ctx.saved_conv = saved
        geom = getattr(saved, "geom", None)  # the NumPy and reference kernels made it already
        if not isinstance(geom, ConvGeometry):
            geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, padding, dilation, groups)
        ctx.geometry = geom
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = call_on(
            ctx.backend, "conv", "conv2d_backward", g, ctx.saved_conv, need_x, need_w, need_b
        )
        return gx, gw, gb, None, None, None, None


class ConvTranspose2dOp(Function):
    """Shape: x (N, C_in, H, W), weight (C_in, C_out/groups, KH, KW) -> (N, C_out, H_out, W_out).

    ``padding`` is ((top, bottom), (left, right)), symmetric.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, output_padding, dilation, groups):
        (out, saved), ctx.backend = call(
            "conv",
            "conv_transpose2d_forward",
            x,
            weight,
            bias,
            stride,
            padding,
            output_padding,
            dilation,
            groups,
        )
        ctx.saved_conv = saved
        ctx.geometry = ConvGeometry.transpose(
            x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, groups
        )
        return out

    @staticmethod
    def backward(ctx, g):
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = call_on(
            ctx.backend, "conv", "conv_transpose2d_backward", g, ctx.saved_conv, need_x, need_w, need_b
        )
        return gx, gw, gb, None, None, None, None, None
