"""The input check shared by the explanation tools: one image, in the model's dtype."""
from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor


def image_input(model, x) -> np.ndarray:
    """Validate one image (1, C, H, W) and return a float array in the model's dtype."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x)
    if data.ndim != 4 or data.shape[0] != 1:
        raise ValueError(f"explain: expected one image of shape (1, C, H, W), got an input of shape "
                         f"{tuple(data.shape)}; pass x[i:i+1] to explain image i of a batch")
    if data.dtype.kind not in "fiub":
        raise TypeError(f"explain: expected a numeric image, got dtype {data.dtype}")
    dtype = next((p.dtype for p in model.parameters()), np.float32)
    return np.array(data, dtype=dtype, copy=True)
