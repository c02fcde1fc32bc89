"""linear and flatten (torch.nn.functional / torch names)."""

from __future__ import annotations

from ...autograd.tensor import Tensor
from ...ops import linear as L
from ._checks import Layer, check_same_dtype, check_tensor
from ._empty import empty_result, is_empty


def linear_impl(input: Tensor, weight: Tensor, bias: Tensor | None, layer: Layer) -> Tensor:
    check_tensor(input, layer)
    check_tensor(weight, layer, "weight")
    check_same_dtype(input, weight, layer)
    if input.ndim < 1:
        raise ValueError(f"{layer} expects an input of shape (*, in_features), got a scalar")
    if weight.ndim == 1:  # PyTorch's (in_features,) weight: one output feature, dropped
        if bias is not None and bias.ndim != 0:
            raise ValueError(f"{layer}: a 1-D weight takes a 0-d bias, got bias of shape {tuple(bias.shape)}")
        out = linear_impl(input, weight.unsqueeze(0), None if bias is None else bias.reshape(1), layer)
        return out.squeeze(-1)
    if weight.ndim != 2:
        raise ValueError(
            f"{layer}: weight must be (out_features, in_features) or (in_features,), got shape "
            f"{tuple(weight.shape)}"
        )
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
    if is_empty(input, weight):  # N = 0, in_features = 0 or out_features = 0
        return empty_result(input.shape[:-1] + (weight.shape[0],), [input, weight], bias, bias_axis=-1)
    return L.LinearOp.apply(input, weight, bias)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Fully connected map ``y = x W^T + b``.

    Shape:
        input (*, in_features), weight (out_features, in_features), bias (out_features,)
        -> (*, out_features).

    Example:
        >>> F.linear(convscope.randn(4, 400), convscope.randn(120, 400)).shape
        (4, 120)
    """
    return linear_impl(input, weight, bias, "linear")


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one, as torch.flatten."""
    check_tensor(input, "flatten")
    n = max(input.ndim, 1)  # a 0-d input counts as 1-D, as in PyTorch
    for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
        if not -n <= d < n:
            raise ValueError(
                f"flatten: {name} {d} is out of range for a {input.ndim}-D input; expected one "
                f"in [{-n}, {n - 1}]"
            )
    if (start_dim % n) > (end_dim % n):
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return input.flatten(start_dim, end_dim)
