"""Walking the objects that weights files hold: nested dicts/lists/tuples with arrays at the leaves."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from ..autograd.tensor import Tensor

SCALARS = (bool, int, float, str, type(None))


def as_array(value: Any) -> np.ndarray | None:
    """The NumPy array behind a Tensor or ndarray, or None for anything else."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    return None


def plain(obj: Any) -> Any:
    """What to save for ``obj``: a Module's or Optimizer's ``state_dict()``, else ``obj`` itself."""
    from ..nn.modules.module import Module
    from ..optim.optimizer import Optimizer

    if isinstance(obj, (Module, Optimizer)):
        return obj.state_dict()
    return obj


def is_flat_arrays(obj: Any) -> bool:
    """Whether ``obj`` is a mapping of str -> Tensor/array (a plain state dict)."""
    return isinstance(obj, dict) and all(
        isinstance(k, str) and as_array(v) is not None for k, v in obj.items()
    )


def wrap_arrays(obj: Any) -> Any:
    """Replace every ndarray in a nested structure by a Tensor (the type ``load`` returns)."""
    if isinstance(obj, np.ndarray):
        return Tensor._wrap(obj, False)
    if isinstance(obj, OrderedDict):
        return OrderedDict((k, wrap_arrays(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: wrap_arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [wrap_arrays(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(wrap_arrays(v) for v in obj)
    return obj


def scalar(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds; other values unchanged."""
    return value.item() if isinstance(value, np.generic) else value
