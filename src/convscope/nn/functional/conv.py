"""conv1d, conv2d and conv_transpose2d (torch.nn.functional names and defaults).

Beyond PyTorch: ``padding='same'`` works at any stride, defined as
TensorFlow does (``out = ceil(in / stride)``, an odd extra zero on the
bottom/right); PyTorch accepts it only at stride 1, where both agree. The
functional forms also take ``padding_mode`` (PyTorch has it only on the
layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...autograd.tensor import Tensor
from ...kernels.geometry import ConvGeometry, same_padding, window_too_large
from ...ops import conv as C
from ..common_types import PaddingArg, SizeArg
from ._checks import (
    Layer,
    as_batched,
    check_ndim,
    check_same_dtype,
    check_tensor,
    fmt_hw,
    nonnegative_tuple,
    positive_tuple,
    unbatch,
)
from ._empty import empty_result, is_empty
from .resample import _pad_impl

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def resolve_padding(
    padding: PaddingArg, size: tuple, kernel: tuple, stride: tuple, dilation: tuple, layer: Layer
) -> tuple:
    """Turn an int, a tuple, 'valid' or 'same' into ((before, after), ...) per spatial axis."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            return tuple(same_padding(size[i], kernel[i], stride[i], dilation[i]) for i in range(n))
        raise ValueError(
            f"{layer}: padding must be an int, a tuple of {n} ints, 'valid' or 'same', got {padding!r}"
        )
    pads = nonnegative_tuple(padding, n, "padding", layer)
    return tuple((p, p) for p in pads)


def _check_padding_arg(padding, n, layer):
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"{layer}: padding must be an int, a tuple of {n} ints, 'valid' or 'same', got {padding!r}"
            )
        return padding
    return nonnegative_tuple(padding, n, "padding", layer)


@dataclass(frozen=True)
class ConvArgs:
    """A convolution's checked, normalised arguments (tuples of ``nd`` ints)."""

    stride: tuple
    padding: Any  # a tuple of per-axis ints, or 'valid' / 'same' (not for transposed convolutions)
    dilation: tuple
    groups: int
    padding_mode: str
    output_padding: tuple


def check_conv_args(
    nd: int,
    layer: Layer,
    stride: SizeArg,
    padding: PaddingArg,
    dilation: SizeArg,
    groups: int,
    padding_mode: str = "zeros",
    output_padding: SizeArg | None = None,
    transposed: bool = False,
) -> ConvArgs:
    """The one argument check of the convolutions, shared by the layers' constructors
    (nn.Conv1d/Conv2d/ConvTranspose2d) and the functions (F.conv1d/conv2d/conv_transpose2d).

    Raises:
        ValueError: non-positive stride/dilation/groups, negative or unknown padding, an
            unknown padding_mode (or a non-zeros one on a transposed convolution), an
            output_padding not smaller than the stride or dilation.
        TypeError: a value that is neither an int nor a tuple of ints.
    """
    stride = positive_tuple(stride, nd, "stride", layer)
    dilation = positive_tuple(dilation, nd, "dilation", layer)
    if transposed:
        if isinstance(padding, str):
            raise ValueError(f"{layer}: padding must be an int or a tuple of {nd} ints, got {padding!r}")
        padding = nonnegative_tuple(padding, nd, "padding", layer)
    else:
        padding = _check_padding_arg(padding, nd, layer)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"{layer}: groups must be a positive int, got {groups!r}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{layer}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    if transposed and padding_mode != "zeros":
        raise ValueError(f"{layer}: only padding_mode='zeros' is supported, got {padding_mode!r}")
    output_padding = nonnegative_tuple(
        0 if output_padding is None else output_padding, nd, "output_padding", layer
    )
    if transposed:
        check_output_padding(output_padding, stride, dilation, layer)
    return ConvArgs(stride, padding, dilation, groups, padding_mode, output_padding)


def conv_nd(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: SizeArg,
    padding: PaddingArg,
    dilation: SizeArg,
    groups: int,
    padding_mode: str,
    layer: Layer,
    nd: int,
    epilogue: tuple | None = None,
) -> Tensor:
    """Shared body of conv1d/conv2d and the Conv layers (nd = 1 or 2 spatial axes).

    ``epilogue`` = (scale, shift, relu), only from ``nn.functional._fused`` in plain inference:
    the output then also gets ``* scale + shift`` per channel (eval batch norm, both may be None)
    and ReLU, in the conv's own pass where the backend can (:func:`convscope.ops.conv.conv2d_inference`).
    """
    check_tensor(input, layer)
    check_tensor(weight, layer, "weight")
    layout = "(N, C_in, L)" if nd == 1 else "(N, C_in, H, W)"
    check_ndim(input, (nd + 1, nd + 2), layer, layout)
    if weight.ndim != nd + 2:
        raise ValueError(
            f"{layer}: weight must be {nd + 2}-D (C_out, C_in/groups, "
            f"{'K' if nd == 1 else 'KH, KW'}), got shape {tuple(weight.shape)}"
        )
    check_same_dtype(input, weight, layer)
    args = check_conv_args(nd, layer, stride, padding, dilation, groups, padding_mode)
    x, added = as_batched(input, nd)
    c_out, c_per_group = weight.shape[0], weight.shape[1]
    _check_nonempty(x, weight, 0, "output", layer)
    if c_out % groups:
        raise ValueError(f"{layer}: groups={groups} must divide the {c_out} output channels")
    if x.shape[1] != c_per_group * groups:
        raise ValueError(
            f"{layer} expects {c_per_group * groups} input channels, got {x.shape[1]} "
            f"in input of shape {tuple(input.shape)}"
        )
    if bias is not None:
        check_tensor(bias, layer, "bias")
        if tuple(bias.shape) != (c_out,):
            raise ValueError(f"{layer}: bias must have shape ({c_out},), got {tuple(bias.shape)}")
    kernel = tuple(weight.shape[2:])
    pads = resolve_padding(args.padding, tuple(x.shape[2:]), kernel, args.stride, args.dilation, layer)
    if padding_mode != "zeros" and any(p for pair in pads for p in pair):
        flat = tuple(v for pair in reversed(pads) for v in pair)  # torch pad order: last axis first
        x = _pad_impl(x, flat, padding_mode.replace("zeros", "constant"), 0.0, layer)
        pads = ((0, 0),) * nd
    stride, dilation = args.stride, args.dilation
    if nd == 1:  # a 1-D conv is a 2-D conv over a height-1 image
        x, weight = x.unsqueeze(2), weight.unsqueeze(2)
        stride, dilation, pads = (1,) + stride, (1,) + dilation, ((0, 0),) + pads
    geom = ConvGeometry.conv(x.shape[2:], weight.shape[2:], stride, pads, dilation, groups)
    if not geom.fits:
        raise window_too_large(layer, geom, input.shape, spatial_dims=nd)
    if is_empty(x, weight):  # N = 0 or C_in = 0: no kernel runs (see ops/empty.py)
        out = empty_result((x.shape[0], c_out) + tuple(geom.out_size), [x, weight], bias)
        return unbatch(out.squeeze(2) if nd == 1 else out, added)
    if epilogue is not None:
        arrays = (x.data, weight.data, None if bias is None else bias.data)
        y = C.conv2d_inference(*arrays, stride, geom.padding, dilation, groups, *epilogue)
        out = Tensor._wrap(y, False)
    else:
        out = C.Conv2dOp.apply(x, weight, bias, stride, geom.padding, dilation, groups)
    if nd == 1:
        out = out.squeeze(2)
    return unbatch(out, added)


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: SizeArg = 1,
    padding: PaddingArg = 0,
    dilation: SizeArg = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """2-D cross-correlation, as torch.nn.functional.conv2d.

    Args:
        input (Tensor): (N, C_in, H, W) or unbatched (C_in, H, W).
        weight (Tensor): (C_out, C_in/groups, KH, KW): each filter spans the input's depth.
        bias (Tensor or None): (C_out,).
        stride (int or (int, int), default 1).
        padding (int, (int, int), 'valid' or 'same', default 0): 'same' at any stride (see module doc).
        dilation (int or (int, int), default 1).
        groups (int, default 1): split channels into independent groups.
        padding_mode (str, default 'zeros'): or 'reflect', 'replicate', 'circular'.

    Shape:
        H_out = floor((H + pad_top + pad_bottom - dilation*(KH-1) - 1) / stride) + 1, same for W.

    Raises:
        ValueError: wrong dimensions, channel mismatch, kernel larger than the padded input,
            non-positive stride/dilation, groups not dividing the channels.

    Example:
        >>> F.conv2d(convscope.randn(1, 3, 32, 32), convscope.randn(10, 3, 5, 5), padding=2).shape
        (1, 10, 32, 32)
    """
    return conv_nd(input, weight, bias, stride, padding, dilation, groups, padding_mode, "conv2d", 2)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: SizeArg = 1,
    padding: PaddingArg = 0,
    dilation: SizeArg = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """1-D cross-correlation over (N, C_in, L) input with a (C_out, C_in/groups, K) weight.

    Shape:
        L_out = floor((L + 2*padding - dilation*(K-1) - 1) / stride) + 1.
    """
    return conv_nd(input, weight, bias, stride, padding, dilation, groups, padding_mode, "conv1d", 1)


def _check_nonempty(x: Tensor, weight: Tensor, channel_axis: int, role: str, layer: Layer) -> None:
    """PyTorch's rule: a conv takes an empty batch or zero channels, but no zero-size spatial
    dim, and its weight needs at least one {role} channel (axis ``channel_axis``)."""
    if weight.shape[channel_axis] == 0:
        raise ValueError(
            f"{layer}: weight of shape {tuple(weight.shape)} has no {role} channels; expected "
            f"at least 1 along dim {channel_axis}"
        )
    if any(s == 0 for s in x.shape[2:]):
        raise ValueError(
            f"{layer}: input of shape {tuple(x.shape)} has a zero-size spatial dim; expected "
            f"non-empty spatial dims (only the batch or channel dim may be 0)"
        )


def check_output_padding(
    output_padding: Sequence[int], stride: Sequence[int], dilation: Sequence[int], layer: Layer
) -> None:
    """output_padding only picks among the sizes one stride (or dilation) step apart: it must be smaller."""
    for i in range(len(output_padding)):
        if output_padding[i] >= max(stride[i], dilation[i]):
            raise ValueError(
                f"{layer}: output_padding {output_padding} must be smaller than "
                f"stride {stride} or dilation {dilation}"
            )


def conv_transpose_nd(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: SizeArg,
    padding: SizeArg,
    output_padding: SizeArg,
    groups: int,
    dilation: SizeArg,
    layer: Layer,
) -> Tensor:
    """Shared body of conv_transpose2d and ConvTranspose2d."""
    check_tensor(input, layer)
    check_tensor(weight, layer, "weight")
    check_ndim(input, (3, 4), layer, "(N, C_in, H, W)")
    if weight.ndim != 4:
        raise ValueError(
            f"{layer}: weight must be 4-D (C_in, C_out/groups, KH, KW), got shape {tuple(weight.shape)}"
        )
    check_same_dtype(input, weight, layer)
    args = check_conv_args(
        2, layer, stride, padding, dilation, groups, "zeros", output_padding, transposed=True
    )
    x, added = as_batched(input)
    _check_nonempty(x, weight, 0, "input", layer)
    _check_nonempty(x, weight, 1, "output", layer)
    if weight.shape[0] % groups:
        raise ValueError(f"{layer}: groups={groups} must divide the {weight.shape[0]} input channels")
    if x.shape[1] != weight.shape[0]:
        raise ValueError(
            f"{layer} expects {weight.shape[0]} input channels, got {x.shape[1]} in "
            f"input of shape {tuple(input.shape)}"
        )
    c_out = weight.shape[1] * groups
    if bias is not None:
        check_tensor(bias, layer, "bias")
        if tuple(bias.shape) != (c_out,):
            raise ValueError(f"{layer}: bias must have shape ({c_out},), got {tuple(bias.shape)}")
    geom = ConvGeometry.transpose(
        x.shape[2:], weight.shape[2:], args.stride, args.padding, args.output_padding, args.dilation, groups
    )
    if not geom.fits:
        raise ValueError(
            f"{layer}: padding {args.padding} removes the whole output (size "
            f"{fmt_hw(geom.out_size)}) for input {fmt_hw(x.shape[2:])}; expected a smaller padding"
        )
    if is_empty(x):  # N = 0: no kernel runs (see ops/empty.py)
        return unbatch(empty_result((x.shape[0], c_out) + tuple(geom.out_size), [x, weight], bias), added)
    out = C.ConvTranspose2dOp.apply(
        x, weight, bias, args.stride, geom.padding, args.output_padding, args.dilation, groups
    )
    return unbatch(out, added)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: SizeArg = 1,
    padding: SizeArg = 0,
    output_padding: SizeArg = 0,
    groups: int = 1,
    dilation: SizeArg = 1,
) -> Tensor:
    """2-D transposed convolution (the gradient of conv2d with respect to its input).

    Args:
        input (Tensor): (N, C_in, H, W).
        weight (Tensor): (C_in, C_out/groups, KH, KW).
        bias (Tensor or None): (C_out,).
        stride, padding, output_padding, dilation (int or (int, int)); groups (int).

    Shape:
        H_out = (H - 1)*stride - 2*padding + dilation*(KH-1) + output_padding + 1.

    Example:
        >>> F.conv_transpose2d(convscope.randn(1, 8, 4, 4), convscope.randn(8, 4, 2, 2), stride=2).shape
        (1, 4, 8, 8)
    """
    return conv_transpose_nd(
        input, weight, bias, stride, padding, output_padding, groups, dilation, "conv_transpose2d"
    )
