"""Conv1d, Conv2d and ConvTranspose2d layers (torch.nn names, arguments and defaults)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...autograd.tensor import DTypeLike, Tensor
from .. import init
from ..common_types import PaddingArg, SizeArg
from ..functional._checks import positive_tuple
from ..functional.conv import check_conv_args, conv_nd, conv_transpose_nd
from ..parameter import Parameter
from ._util import compact, kwargs_repr
from .module import Module


class _ConvNd(Module):
    _nd = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SizeArg,
        stride: SizeArg,
        padding: PaddingArg,
        dilation: SizeArg,
        groups: int,
        bias: bool,
        padding_mode: str,
        output_padding: SizeArg = 0,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        n = self._nd
        args = check_conv_args(
            n, name, stride, padding, dilation, groups, padding_mode, output_padding, self._transposed
        )
        if in_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels}")
        if out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = positive_tuple(kernel_size, n, "kernel_size", name)
        self.stride, self.padding, self.dilation = args.stride, args.padding, args.dilation
        self.output_padding = args.output_padding
        self.groups, self.padding_mode = groups, padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        dtype = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_channels,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: U(+-1/sqrt(fan_in)) for weight and bias."""
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return conv_nd(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
            self._layer_name(),
            self._nd,
        )

    def extra_repr(self) -> str:
        zeros = (0,) * self._nd
        ones = (1,) * self._nd
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={compact(self.kernel_size)}"
        rest = kwargs_repr(
            [
                ("stride", self.stride, ones),
                ("padding", self.padding, zeros),
                ("output_padding", self.output_padding, zeros),
                ("dilation", self.dilation, ones),
                ("groups", self.groups, 1),
                ("bias", self.bias is not None, True),
                ("padding_mode", self.padding_mode, "zeros"),
            ]
        )
        return text + (", " + rest if rest else "")


class Conv2d(_ConvNd):
    """2-D convolution layer: ``out_channels`` filters, each as deep as the input (C_in/groups).

    Args:
        in_channels, out_channels (int); kernel_size (int or (int, int));
        stride (default 1); padding (int, tuple, 'valid' or 'same', default 0; 'same' works at
        any stride, beyond PyTorch, see functional.conv2d); dilation (default 1);
        groups (default 1); bias (default True); padding_mode ('zeros', 'reflect', 'replicate',
        'circular').

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out),
        H_out = floor((H + 2*padding - dilation*(KH-1) - 1) / stride) + 1.
        Parameters: (KH*KW*C_in/groups + 1) * C_out, whatever the input size.

    Example:
        >>> nn.Conv2d(3, 10, 5, padding=2)(convscope.randn(1, 3, 32, 32)).shape
        (1, 10, 32, 32)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SizeArg,
        stride: SizeArg = 1,
        padding: PaddingArg = 0,
        dilation: SizeArg = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype=dtype,
        )


class Conv1d(_ConvNd):
    """1-D convolution layer over (N, C_in, L) sequences.

    Shape:
        L_out = floor((L + 2*padding - dilation*(K-1) - 1) / stride) + 1.
    """

    _nd = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SizeArg,
        stride: SizeArg = 1,
        padding: PaddingArg = 0,
        dilation: SizeArg = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            dtype=dtype,
        )


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution ("deconvolution"), the learnable upsampling of segmentation nets.

    Shape:
        (N, C_in, H, W) -> (N, C_out, H_out, W_out),
        H_out = (H - 1)*stride - 2*padding + dilation*(KH-1) + output_padding + 1.
        weight: (C_in, C_out/groups, KH, KW).

    Example:
        >>> nn.ConvTranspose2d(8, 4, 2, stride=2)(convscope.randn(1, 8, 4, 4)).shape
        (1, 4, 8, 8)
    """

    _transposed = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: SizeArg,
        stride: SizeArg = 1,
        padding: SizeArg = 0,
        output_padding: SizeArg = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: SizeArg = 1,
        padding_mode: str = "zeros",
        device: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            padding_mode,
            output_padding=output_padding,
            dtype=dtype,
        )

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        output_padding = self.output_padding
        if output_size is not None:
            output_padding = self._output_padding_for(input, output_size)
        return conv_transpose_nd(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
            self._layer_name(),
        )

    def _output_padding_for(self, input: Tensor, output_size: Sequence[int]) -> tuple[int, ...]:
        """The output_padding that produces ``output_size`` (H_out, W_out), as PyTorch does."""
        from ...kernels.geometry import conv_transpose_output_size

        size = tuple(output_size)[-2:]
        pads = []
        for i in range(2):
            smallest = conv_transpose_output_size(
                input.shape[-2 + i], self.kernel_size[i], self.stride[i], self.padding[i], self.dilation[i], 0
            )
            extra = size[i] - smallest
            if not 0 <= extra < max(self.stride[i], self.dilation[i]):
                raise ValueError(
                    f"{self._layer_name()}: output_size {tuple(size)} is not reachable from "
                    f"input {tuple(input.shape)}; expected sizes from {smallest} to "
                    f"{smallest + max(self.stride[i], self.dilation[i]) - 1} along axis {i}"
                )
            pads.append(extra)
        return tuple(pads)
