"""Max, average and adaptive pooling (torch.nn.functional names and defaults)."""

from __future__ import annotations

from typing import Literal, overload

from ...autograd.tensor import Tensor
from ...kernels.geometry import ConvGeometry, as_pads, window_too_large
from ...ops import pool as P
from ..common_types import OptSizeArg, SizeArg
from ._checks import (
    Layer,
    as_batched,
    check_float,
    check_ndim,
    check_tensor,
    fmt_hw,
    nonnegative_tuple,
    positive_tuple,
    unbatch,
)
from ._empty import empty_result, is_empty


def pool_geometry(
    kernel_size: SizeArg, stride: SizeArg | None, padding: SizeArg, dilation: SizeArg, layer: Layer
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Normalised (kernel, stride, padding, dilation) of a pooling window; stride None = kernel.

    Shared by the pooling layers' constructors and the functional ops.

    Raises:
        ValueError: non-positive kernel/stride/dilation, negative padding, or padding larger
            than half the kernel.
    """
    kernel = positive_tuple(kernel_size, 2, "kernel_size", layer)
    stride = (
        kernel
        if stride is None or (not isinstance(stride, int) and len(stride) == 0)
        else positive_tuple(stride, 2, "stride", layer)
    )
    padding = nonnegative_tuple(padding, 2, "padding", layer)
    dilation = positive_tuple(dilation, 2, "dilation", layer)
    for i in range(2):
        if padding[i] > kernel[i] // 2:
            raise ValueError(
                f"{layer}: padding {fmt_hw(padding)} must be at most half the kernel size {fmt_hw(kernel)}"
            )
    return kernel, stride, padding, dilation


def _check_nonempty(input, layer, channels: bool = True) -> None:
    """PyTorch's pooling rule: only the batch dim may be 0 (adaptive_avg_pool2d: also C)."""
    dims = input.shape[-3:] if channels else input.shape[-2:]
    if any(s == 0 for s in dims):
        what = "channel and spatial" if channels else "spatial"
        raise ValueError(
            f"{layer}: input of shape {tuple(input.shape)} has a zero-size {what} dim; expected "
            f"non-empty {what} dims (only the batch dim{'' if channels else ' or C'} may be 0)"
        )


def _pool_args(input, kernel_size, stride, padding, dilation, layer):
    check_tensor(input, layer)
    check_float(input, layer)
    check_ndim(input, (3, 4), layer, "(N, C, H, W)")
    _check_nonempty(input, layer)
    return pool_geometry(kernel_size, stride, padding, dilation, layer)


def _out_size(x, kernel, stride, padding, dilation, ceil_mode, layer):
    geom = ConvGeometry.conv(x.shape[-2:], kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    if not geom.fits:
        raise window_too_large(layer, geom, x.shape)
    return geom.out_size


def max_pool2d_impl(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None,
    padding: SizeArg,
    dilation: SizeArg,
    ceil_mode: bool,
    return_indices: bool,
    layer: Layer,
) -> Tensor | tuple[Tensor, Tensor]:
    kernel, stride, padding, dilation = _pool_args(input, kernel_size, stride, padding, dilation, layer)
    out_hw = _out_size(input, kernel, stride, padding, dilation, ceil_mode, layer)
    if is_empty(input):  # N = 0: no kernel runs (see ops/empty.py)
        out, idx = empty_result(tuple(input.shape[:-2]) + tuple(out_hw), [input], extra_int_output=True)
        return (out, idx) if return_indices else out
    x, added = as_batched(input)
    pads = as_pads(padding)
    result = P.MaxPool2dOp.apply(x, kernel, stride, pads, dilation, bool(ceil_mode), bool(return_indices))
    out, idx = unbatch(result if isinstance(result, tuple) else (result, None), added)
    return (out, idx) if return_indices else out


@overload
def max_pool2d(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None = None,
    padding: SizeArg = 0,
    dilation: SizeArg = 1,
    ceil_mode: bool = False,
    return_indices: Literal[False] = False,
) -> Tensor: ...
@overload
def max_pool2d(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None = None,
    padding: SizeArg = 0,
    dilation: SizeArg = 1,
    ceil_mode: bool = False,
    *,
    return_indices: Literal[True],
) -> tuple[Tensor, Tensor]: ...
@overload
def max_pool2d(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None = None,
    padding: SizeArg = 0,
    dilation: SizeArg = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]: ...
def max_pool2d(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None = None,
    padding: SizeArg = 0,
    dilation: SizeArg = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling; padding counts as -inf, tied maxima send the gradient to the first one.

    Args:
        input (Tensor): (N, C, H, W) or (C, H, W).
        kernel_size (int or (int, int)); stride (default kernel_size); padding (<= kernel/2);
        dilation; ceil_mode (bool): round the output size up; return_indices (bool): also
        return the flat h*W + w index of each maximum.

    Shape:
        H_out = floor((H + 2*padding - dilation*(KH-1) - 1) / stride) + 1 (ceil with ceil_mode).

    Example:
        >>> F.max_pool2d(convscope.randn(1, 6, 28, 28), 2).shape
        (1, 6, 14, 14)
    """
    return max_pool2d_impl(
        input, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d"
    )


def avg_pool2d_impl(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None,
    padding: SizeArg,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
    layer: Layer,
) -> Tensor:
    kernel, stride, padding, _ = _pool_args(input, kernel_size, stride, padding, 1, layer)
    out_hw = _out_size(input, kernel, stride, padding, (1, 1), ceil_mode, layer)
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override == 0):
        raise ValueError(f"{layer}: divisor_override must be a non-zero int, got {divisor_override!r}")
    if is_empty(input):  # N = 0
        return empty_result(tuple(input.shape[:-2]) + tuple(out_hw), [input])
    x, added = as_batched(input)
    out = P.AvgPool2dOp.apply(
        x, kernel, stride, as_pads(padding), bool(ceil_mode), bool(count_include_pad), divisor_override
    )
    return unbatch(out, added)


def avg_pool2d(
    input: Tensor,
    kernel_size: SizeArg,
    stride: SizeArg | None = None,
    padding: SizeArg = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling, as torch.nn.functional.avg_pool2d.

    ``count_include_pad`` decides whether zero padding counts in the divisor.

    Shape:
        H_out = floor((H + 2*padding - KH) / stride) + 1 (ceil with ceil_mode).
    """
    return avg_pool2d_impl(
        input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, "avg_pool2d"
    )


def _adaptive_size(input, output_size, layer, empty_channels: bool):
    """(H_out, W_out) from an int or a 2-sequence (None keeps that input size); 0 is allowed."""
    check_tensor(input, layer)
    check_float(input, layer)
    check_ndim(input, (3, 4), layer, "(N, C, H, W)")
    _check_nonempty(input, layer, channels=not empty_channels)
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(
                f"{layer}: output_size must be an int or a tuple of 2 ints (or None), got {output_size!r}"
            )
        output_size = tuple(
            input.shape[-2 + i] if output_size[i] is None else output_size[i] for i in range(2)
        )
    return nonnegative_tuple(output_size, 2, "output_size", layer)


def adaptive_avg_pool2d_impl(input: Tensor, output_size: OptSizeArg, layer: Layer) -> Tensor:
    size = _adaptive_size(input, output_size, layer, empty_channels=True)
    if is_empty(input) or 0 in size:
        return empty_result(tuple(input.shape[:-2]) + tuple(size), [input])
    x, added = as_batched(input)
    return unbatch(P.AdaptiveAvgPool2dOp.apply(x, size), added)


def adaptive_avg_pool2d(input: Tensor, output_size: OptSizeArg) -> Tensor:
    """Average pooling to a fixed (H_out, W_out); cell i covers [floor(i*H/H_out), ceil((i+1)*H/H_out)).

    Example:
        >>> F.adaptive_avg_pool2d(convscope.randn(2, 64, 8, 8), 1).shape
        (2, 64, 1, 1)
    """
    return adaptive_avg_pool2d_impl(input, output_size, "adaptive_avg_pool2d")


def adaptive_max_pool2d_impl(
    input: Tensor, output_size: OptSizeArg, return_indices: bool, layer: Layer
) -> Tensor | tuple[Tensor, Tensor]:
    size = _adaptive_size(input, output_size, layer, empty_channels=False)
    if is_empty(input) or 0 in size:
        out, idx = empty_result(tuple(input.shape[:-2]) + tuple(size), [input], extra_int_output=True)
        return (out, idx) if return_indices else out
    x, added = as_batched(input)
    out, idx = unbatch(P.AdaptiveMaxPool2dOp.apply(x, size), added)
    return (out, idx) if return_indices else out


@overload
def adaptive_max_pool2d(
    input: Tensor, output_size: OptSizeArg, return_indices: Literal[False] = False
) -> Tensor: ...
@overload
def adaptive_max_pool2d(
    input: Tensor, output_size: OptSizeArg, return_indices: Literal[True]
) -> tuple[Tensor, Tensor]: ...
@overload
def adaptive_max_pool2d(
    input: Tensor, output_size: OptSizeArg, return_indices: bool = False
) -> Tensor | tuple[Tensor, Tensor]: ...
def adaptive_max_pool2d(
    input: Tensor, output_size: OptSizeArg, return_indices: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling to a fixed (H_out, W_out), cells as in adaptive_avg_pool2d."""
    return adaptive_max_pool2d_impl(input, output_size, return_indices, "adaptive_max_pool2d")
