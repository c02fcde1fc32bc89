"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and AdaptiveMaxPool2d layers (torch.nn names)."""

from __future__ import annotations

from ...autograd.tensor import Tensor
from ..common_types import OptSizeArg, SizeArg
from ..functional import pooling as P
from ._util import compact, kwargs_repr
from .module import Module


class _Pool2d(Module):
    def __init__(
        self, kernel_size: SizeArg, stride: SizeArg | None, padding: SizeArg, dilation: SizeArg = 1
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding, self.dilation = P.pool_geometry(
            kernel_size, stride, padding, dilation, type(self).__name__
        )


class MaxPool2d(_Pool2d):
    """Max over each KH x KW window (no parameters).

    Args:
        kernel_size; stride (default kernel_size); padding (default 0); dilation (default 1);
        return_indices (default False); ceil_mode (default False).

    Shape:
        H_out = floor((H + 2*padding - dilation*(KH-1) - 1) / stride) + 1 (ceil with ceil_mode).

    Example:
        >>> nn.MaxPool2d(2)(convscope.randn(1, 6, 28, 28)).shape
        (1, 6, 14, 14)
    """

    def __init__(
        self,
        kernel_size: SizeArg,
        stride: SizeArg | None = None,
        padding: SizeArg = 0,
        dilation: SizeArg = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation)
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return P.max_pool2d_impl(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
            self._layer_name(),
        )

    def extra_repr(self) -> str:
        text = f"kernel_size={compact(self.kernel_size)}"
        rest = kwargs_repr(
            [
                ("stride", self.stride, self.kernel_size),
                ("padding", self.padding, (0, 0)),
                ("dilation", self.dilation, (1, 1)),
                ("ceil_mode", self.ceil_mode, False),
            ]
        )
        return text + (", " + rest if rest else "")


class AvgPool2d(_Pool2d):
    """Average over each KH x KW window (no parameters).

    Args:
        kernel_size; stride (default kernel_size); padding; ceil_mode (default False);
        count_include_pad (default True); divisor_override (default None).
    """

    def __init__(
        self,
        kernel_size: SizeArg,
        stride: SizeArg | None = None,
        padding: SizeArg = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return P.avg_pool2d_impl(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
            self._layer_name(),
        )

    def extra_repr(self) -> str:
        text = f"kernel_size={compact(self.kernel_size)}"
        rest = kwargs_repr(
            [
                ("stride", self.stride, self.kernel_size),
                ("padding", self.padding, (0, 0)),
                ("ceil_mode", self.ceil_mode, False),
                ("count_include_pad", self.count_include_pad, True),
            ]
        )
        return text + (", " + rest if rest else "")


class AdaptiveAvgPool2d(Module):
    """Average-pool to a fixed output size (1 gives global average pooling).

    Example:
        >>> nn.AdaptiveAvgPool2d(1)(convscope.randn(2, 64, 8, 8)).shape
        (2, 64, 1, 1)
    """

    def __init__(self, output_size: OptSizeArg) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return P.adaptive_avg_pool2d_impl(input, self.output_size, self._layer_name())

    def extra_repr(self) -> str:
        return f"output_size={compact(self.output_size)}"


class AdaptiveAvgPool1d(Module):
    """Average-pool (N, C, L) sequences to a fixed length (1 gives global average pooling).

    Computed as the 2-D adaptive pool of the (N, C, 1, L) view, so its backward is that op's.

    Shape:
        (N, C, L) -> (N, C, output_size).

    Raises:
        ValueError: input that is not 3-D.

    Example:
        >>> nn.AdaptiveAvgPool1d(1)(convscope.randn(2, 64, 150)).shape
        (2, 64, 1)
    """

    def __init__(self, output_size: int):
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        if input.ndim != 3:
            raise ValueError(
                f"{self._layer_name()}: expected a 3-D input (N, C, L), got shape {tuple(input.shape)}"
            )
        out = P.adaptive_avg_pool2d_impl(input.unsqueeze(2), (1, self.output_size), self._layer_name())
        return out.squeeze(2)  # (N, C, 1, L_out) -> (N, C, L_out)

    def extra_repr(self):
        return f"output_size={compact(self.output_size)}"


class AdaptiveMaxPool2d(Module):
    """Max-pool to a fixed output size."""

    def __init__(self, output_size: OptSizeArg, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return P.adaptive_max_pool2d_impl(input, self.output_size, self.return_indices, self._layer_name())

    def extra_repr(self) -> str:
        return f"output_size={compact(self.output_size)}"
