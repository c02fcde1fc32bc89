"""Parameter: a Tensor that a Module registers as trainable."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor with ``requires_grad=True`` that Modules list in ``parameters()``.

    Args:
        data (Tensor or array): the initial values (float32 unless already another float dtype).
        requires_grad (bool, default True).
    """

    __slots__ = ()

    def __init__(self, data: Tensor | npt.ArrayLike | None = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        array = data.data if isinstance(data, Tensor) else np.asarray(data)
        if array.dtype.kind != "f":
            array = array.astype(np.float32)
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
