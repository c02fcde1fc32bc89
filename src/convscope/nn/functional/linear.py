"""linear and flatten (torch.nn.functional / torch names)."""

from __future__ import annotations

from ...ops import linear as L
from ._checks import check_same_dtype, check_tensor


def linear_impl(input, weight, bias, layer):
    check_tensor(input, layer)
    check_tensor(weight, layer, "weight")
    check_same_dtype(input, weight, layer)
    if input.ndim < 1:
        raise ValueError(f"{layer} expects an input of shape (*, in_features), got a scalar")
    if input.shape[-1] != weight.shape[1]:
        hint = ""
        if input.ndim > 2:
            hint = " (flatten the feature maps first, e.g. nn.Flatten())"
        raise ValueError(
            f"{layer} expects {weight.shape[1]} input features in the last dim, got "
            f"{input.shape[-1]} in input of shape {tuple(input.shape)}{hint}"
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"{layer}: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    return L.LinearOp.apply(input, weight, bias)


def linear(input, weight, bias=None):
    """Fully connected map ``y = x W^T + b``.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,)
        -> (*, out_features).

    Example:
        >>> F.linear(convscope.randn(4, 400), convscope.randn(120, 400)).shape
        (4, 120)
    """
    return linear_impl(input, weight, bias, "linear")


def flatten(input, start_dim: int = 0, end_dim: int = -1):
    """Merge dims start_dim..end_dim into one, as torch.flatten."""
    check_tensor(input, "flatten")
    return input.flatten(start_dim, end_dim)
