"""Linear, Flatten and Identity layers (torch.nn names and defaults)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...autograd.tensor import DTypeLike, Tensor
from .. import init
from ..functional._checks import check_tensor
from ..functional.linear import linear_impl
from ..parameter import Parameter
from .module import Module


class Linear(Module):
    """Fully connected layer ``y = x W^T + b``.

    Args:
        in_features, out_features (int); bias (bool, default True).

    Shape:
        (*, in_features) -> (*, out_features); parameters (in_features + 1) * out_features.

    Example:
        >>> nn.Linear(400, 120)(convscope.randn(4, 400)).shape
        (4, 120)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: str | None = None,
        dtype: DTypeLike | None = None,
    ) -> None:
        super().__init__()
        for arg, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Linear: {arg} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        dtype = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias from U(+-1/sqrt(in_features))."""
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return linear_impl(input, self.weight, self.bias, self._layer_name())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merge dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) with the defaults."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        check_tensor(input, self._layer_name())
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed classifier)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input
