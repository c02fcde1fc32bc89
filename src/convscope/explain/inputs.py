"""What the explanation tools share: the check of their one-image input (in the model's
dtype) and a forward pass with hooks on chosen layers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor

if TYPE_CHECKING:
    from ..nn import Module


def image_input(model: Module, x: Tensor | npt.NDArray[Any]) -> np.ndarray:
    """Validate one image (1, C, H, W) and return a float array in the model's dtype."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError(
            f"explain: expected one image of shape (1, C, H, W), got an input of shape "
            f"{tuple(data.shape)}; pass x[i:i+1] to explain image i of a batch"
        )
    if data.dtype.kind not in "fiub":
        raise TypeError(f"explain: expected a numeric image, got dtype {data.dtype}")
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    return np.array(data, dtype=dtype, copy=True)


def run_with_hooks(
    model: Module, x: Tensor | npt.NDArray[Any], hooks: Iterable[tuple[Module, Callable[..., Any]]]
) -> None:
    """Run ``model`` on one image ``x`` (1, C, H, W) in eval mode without a tape, with
    forward hooks ``[(module, fn(module, inputs, output)), ...]``; the hooks are removed
    and every submodule's mode restored afterwards, whatever happens."""
    handles = [module.register_forward_hook(fn) for module, fn in hooks]
    try:
        with no_grad(), model.evaluating():
            model(Tensor._wrap(image_input(model, x), False))
    finally:
        for h in handles:
            h.remove()
