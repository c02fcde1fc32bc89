"""Argument and input checks shared by the functional ops and the layers.

Every message names the layer (its repr, or the function name), what was
expected and what was received.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

import numpy as np

from ...autograd.tensor import Tensor
from ...kernels.geometry import InputTooSmallError, normalize_tuple

if TYPE_CHECKING:
    from ..modules.module import LayerName

__all__ = ["InputTooSmallError"]

#: The layer named in a message: a function's name, or a module's lazily built label.
Layer = Union[str, "LayerName"]


def check_tensor(x, layer: Layer, name: str = "input") -> Tensor:
    """Raise TypeError unless ``x`` is a Tensor."""
    if not isinstance(x, Tensor):
        hint = " (wrap arrays with convscope.tensor(...))" if isinstance(x, np.ndarray) else ""
        raise TypeError(f"{layer} expects a convscope Tensor as {name}, got {type(x).__name__}{hint}")
    return x


def check_ndim(x: Tensor, allowed: tuple, layer: Layer, layout: str) -> None:
    """Raise ValueError unless ``x.ndim`` is one of ``allowed``; ``layout`` names the axes."""
    if x.ndim not in allowed:
        want = " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(
            f"{layer} expects a {want} input {layout}, got {x.ndim}-D input of shape {tuple(x.shape)}"
        )


def check_float(x: Tensor, layer: Layer, name: str = "input") -> None:
    if x.dtype.kind != "f":
        raise TypeError(
            f"{layer} expects a floating-point {name}, got dtype {x.dtype} (convert with .float())"
        )


def check_same_dtype(x: Tensor, w: Tensor, layer: Layer) -> None:
    if x.dtype != w.dtype:
        raise TypeError(
            f"{layer}: input dtype {x.dtype} does not match weight dtype {w.dtype}; "
            f"convert the input (.float()/.double()) or the layer (.to(dtype))"
        )


def positive_tuple(value, n: int, name: str, layer: Layer) -> tuple:
    """An n-tuple of ints >= 1, or a ValueError naming the layer."""
    out = normalize_tuple(value, n, name, layer)
    if any(v < 1 for v in out):
        raise ValueError(f"{layer}: {name} must be positive, got {value!r}")
    return out


def nonnegative_tuple(value, n: int, name: str, layer: Layer) -> tuple:
    """An n-tuple of ints >= 0, or a ValueError naming the layer."""
    out = normalize_tuple(value, n, name, layer)
    if any(v < 0 for v in out):
        raise ValueError(f"{layer}: {name} must be non-negative, got {value!r}")
    return out


def check_finite(x: Tensor, layer: Layer, name: str = "input") -> None:
    """Raise ValueError when NaN or inf reaches ``layer`` (a loss), saying how many."""
    data = x.data
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        kinds = []
        if np.isnan(data).any():
            kinds.append("NaN")
        if np.isinf(data).any():
            kinds.append("inf")
        raise ValueError(
            f"{layer}: {name} contains {bad} non-finite value(s) ({'/'.join(kinds)}) "
            f"out of {data.size}; expected finite numbers (the model has likely diverged: "
            f"lower the learning rate)"
        )


def fmt_hw(t: tuple) -> str:
    return "x".join(str(v) for v in t)


def as_batched(input: Any, spatial_dims: int = 2) -> tuple[Any, bool]:
    """The one unbatched-input rule: a (C, *spatial) input gets a batch axis of 1.

    Returns:
        (input with a batch axis, whether one was added); undo with :func:`unbatch`.
    """
    if input.ndim == spatial_dims + 1:
        return input.unsqueeze(0), True
    return input, False


def unbatch(result, added: bool):
    """Drop the batch axis :func:`as_batched` added, from a Tensor or a tuple of Tensors/None."""
    if not added:
        return result
    if isinstance(result, tuple):
        return tuple(None if r is None else r.squeeze(0) for r in result)
    return result.squeeze(0)
