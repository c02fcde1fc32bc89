"""Convolution and transposed convolution as tape nodes over the kernels of the active backend.

``ctx.backend`` names the backend that ran the forward (its backward runs there too, see
:mod:`convscope.kernels.dispatch`); ``ctx.geometry`` is the op's
:class:`~convscope.kernels.geometry.ConvGeometry` (what the summary reads);
``ctx.saved_conv`` is whatever the kernel's forward returned for its backward.
"""

from __future__ import annotations

from ..autograd.function import Function
from ..kernels.dispatch import Unsupported, active, backend_function, call, call_on
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


def conv2d_inference(x, weight, bias, stride, padding, dilation, groups, scale=None, shift=None, relu=False):
    """Conv2dOp's output, then ``* scale + shift`` per output channel (eval batch norm), then ReLU;
    arrays in, array out, nothing recorded (plain inference only, see ``nn.functional._fused``).

    On the native backend one kernel does all three (the epilogue runs while the conv tile is
    in cache); elsewhere, or for what it does not cover, the same kernels as the separate layers
    run in turn. Either way the result equals conv, then batch norm, then ReLU, bit for bit.

    Shape:
        x (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW), scale/shift (C_out,) or None
        -> (N, C_out, H_out, W_out).
    """
    if active() == "native":
        fused = backend_function("native", "conv", "conv2d_forward_fused")
        if fused is not None:
            try:
                return fused(x, weight, bias, stride, padding, dilation, groups, scale, shift, relu)
            except Unsupported:
                pass
    (out, _), _ = call("conv", "conv2d_forward", x, weight, bias, stride, padding, dilation, groups)
    if scale is not None:
        return call("batchnorm", "channel_affine_relu" if relu else "channel_affine", out, scale, shift)[0]
    return call("elementwise", "relu_forward", out)[0] if relu else out


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
